"""The reads behind the Service API's lists: Dify's cursor pages and a fixed number of
queries per page, however long."""

from __future__ import annotations

import pytest

from apps import selectors
from apps.models import Conversation, Message, MessageAgentThought, MessageFeedback
from apps.services.end_users import end_user_for
from tenants.context import tenant_context
from tenants.exceptions import InvalidInput, NotFound
from workflows.models import WorkflowRun
from workflows.runner import run_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def chat(tenant, make_app):
    app = make_app(tenant)
    alice = end_user_for(app=app, session_id="alice")
    with tenant_context(tenant):
        conversation = Conversation.objects.create(app=app, end_user=alice, name="c")
        messages = [
            Message.objects.create(
                app=app, conversation=conversation, end_user=alice, query=f"q{n}", answer="a"
            )
            for n in range(6)
        ]
        for message in messages:
            MessageFeedback.objects.create(
                message=message, app=app, conversation=conversation, rating="like", end_user=alice
            )
            MessageAgentThought.objects.create(message=message, position=1, thought="hmm")
    return app, alice, conversation, messages


def test_message_pages_cost_the_same_whatever_their_length(chat, tenant, django_assert_num_queries):
    _, _, conversation, messages = chat
    with tenant_context(tenant):
        # messages, their user feedbacks, their agent thoughts
        with django_assert_num_queries(3):
            page = selectors.message_page(conversation=conversation, limit=5)
            for message in page.data:
                assert message.user_feedbacks[0].rating == "like"
                assert len(message.agent_thoughts.all()) == 1
        assert [m.pk for m in page.data] == [m.pk for m in messages[1:]] and page.has_more
        with django_assert_num_queries(4):  # and the message `first_id` names
            older = selectors.message_page(
                conversation=conversation, first_id=str(messages[1].pk), limit=5
            )
        assert [m.pk for m in older.data] == [messages[0].pk] and not older.has_more


def test_conversation_pages_cost_one_query(chat, tenant, django_assert_num_queries):
    app, alice, _, _ = chat
    with tenant_context(tenant):
        for n in range(4):
            Conversation.objects.create(app=app, end_user=alice, name=f"more {n}")
        with django_assert_num_queries(1):
            page = selectors.conversation_page(app=app, end_user=alice, limit=3)
        assert len(page.data) == 3 and page.has_more
        with django_assert_num_queries(2):
            rest = selectors.conversation_page(
                app=app, end_user=alice, limit=3, last_id=str(page.data[-1].pk)
            )
        assert len(rest.data) == 2 and not rest.has_more
        assert not {c.pk for c in page.data} & {c.pk for c in rest.data}
        with pytest.raises(NotFound):
            selectors.conversation_page(app=app, end_user=alice, last_id="nope")
        with pytest.raises(InvalidInput):
            selectors.conversation_page(app=app, end_user=alice, sort_by="name")
        assert selectors.conversation_page(app=app, end_user=None).data == []


def test_feedback_pages_cost_one_query(chat, tenant, django_assert_num_queries):
    app = chat[0]
    with tenant_context(tenant), django_assert_num_queries(1):
        assert len(selectors.feedback_page(app=app, limit=4)) == 4


def test_workflow_log_pages_cost_two_queries(tenant, make_app, django_assert_num_queries):
    app = make_app(tenant, "workflow")
    alice = end_user_for(app=app, session_id="alice")
    for n in range(5):
        run_create(
            tenant=tenant,
            workflow=app.workflow,
            inputs={"query": f"q{n}"},
            version=app.published_version.workflow_version,
            triggered_from=WorkflowRun.TriggeredFrom.APP_RUN,
            end_user=str(alice.pk),
        )
    with tenant_context(tenant):
        with django_assert_num_queries(2):  # the count, and the page with versions
            page = selectors.workflow_log_page(app=app, limit=2)
            assert [run.version.number for run in page.data] == [1, 1]
        assert page.total == 5 and page.has_more
        with django_assert_num_queries(1):
            found = selectors.end_users_by_id(app, [run.created_by_end_user for run in page.data])
        assert set(found) == {str(alice.pk)}
        assert selectors.workflow_log_page(app=app, keyword="alice").total == 5
        assert selectors.workflow_log_page(app=app, keyword="q3").total == 1
