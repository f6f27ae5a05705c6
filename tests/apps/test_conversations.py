"""Conversations as their users manage them (find, rename or have named, delete, variables)
and ratings of answers."""

from __future__ import annotations

import pytest

from apps.models import App, Conversation, MessageFeedback
from apps.pipeline import prepare
from apps.services.conversations import (
    conversation_delete,
    conversation_get,
    conversation_rename,
    conversation_variable_update,
    conversation_variables,
)
from apps.services.feedback import feedback_set
from tenants.context import tenant_context
from tenants.exceptions import InvalidInput, NotFound
from tests.providers import conftest as provider_fixtures
from workflows.services.definitions import parse_spec

from .pipeline_support import ask, configure, counting_chatflow, request, user_of

pytestmark = pytest.mark.django_db

runtime_state = provider_fixtures.runtime_state
credential = provider_fixtures.credential


@pytest.fixture
def app(tenant, make_app):
    return make_app(tenant, App.Mode.CHAT)  # the built-in model


def started(app, end_user, query="How do looms work?"):
    task = prepare(request(app, end_user, query=query, auto_generate_name=False))
    return Conversation.dangerously_unscoped.get(pk=task.conversation_id)


def test_get_answers_the_same_404_for_every_conversation_not_yours(
    tenant, other_tenant, make_app, app, make_member
):
    alice, bob = user_of(app, "alice"), user_of(app, "bob")
    mine = started(app, alice)
    assert conversation_get(app=app, conversation_id=str(mine.pk), end_user=alice).pk == mine.pk
    other_app = make_app(tenant, App.Mode.CHAT, name="other")
    foreign = make_app(other_tenant, App.Mode.CHAT)
    for conversation_id, end_user, in_app in (
        ("nope", alice, app),
        (str(mine.pk), bob, app),
        (str(mine.pk), user_of(other_app, "alice"), other_app),
        (str(started(foreign, user_of(foreign)).pk), alice, app),
    ):
        with pytest.raises(NotFound, match=r"Conversation Not Exists\."):
            conversation_get(app=in_app, conversation_id=conversation_id, end_user=end_user)
    conversation_delete(conversation=mine)
    with pytest.raises(NotFound):
        conversation_get(app=app, conversation_id=str(mine.pk), end_user=alice)
    mine.refresh_from_db()
    assert mine.is_deleted  # kept for the logs
    member = make_member(tenant)
    with tenant_context(tenant):
        debugging = prepare(
            request(app, None, user=member, query="console", auto_generate_name=False)
        )
        found = conversation_get(
            app=app, conversation_id=debugging.conversation_id, end_user=None, user=member
        )
    assert str(found.pk) == debugging.conversation_id


def test_rename_by_hand(app):
    conversation = started(app, user_of(app))
    assert conversation_rename(conversation=conversation, name="  Looms  ").name == "Looms"
    conversation.refresh_from_db()
    assert conversation.name == "Looms"
    for bad in ("", "   ", None, "x" * 256):
        with pytest.raises(InvalidInput):
            conversation_rename(conversation=conversation, name=bad)


def test_auto_generated_name_from_the_model(tenant, make_app, credential, fake_llm):
    credential()
    app = configure(make_app(tenant, App.Mode.CHAT, name="fake"))
    task, _, _ = ask(app, user_of(app), "How do looms work?", auto_generate_name=False)
    conversation = Conversation.dangerously_unscoped.get(pk=task.conversation_id)
    fake_llm.script("Title: How Looms Work")
    conversation_rename(conversation=conversation, auto_generate=True)
    conversation.refresh_from_db()
    assert conversation.name == "How Looms Work"
    assert fake_llm.requests[-1].json["messages"][-1]["content"] == "How do looms work?"


def test_auto_generated_name_without_a_writing_model_is_the_first_words(app):
    conversation = started(app, user_of(app), "Which yarn suits a beginner knitting socks?")
    conversation_rename(conversation=conversation, auto_generate=True)
    assert conversation.name == "Which yarn suits a beginner knitting socks?"
    empty = Conversation.dangerously_unscoped.create(tenant=app.tenant, app=app)
    with pytest.raises(InvalidInput, match="no message"):
        conversation_rename(conversation=empty, auto_generate=True)


# --- Conversation variables ------------------------------------------------------------------


@pytest.fixture
def chatflow(tenant, make_app):
    spec = counting_chatflow()
    spec["graph"]["nodes"][1]["data"]["model"] = {"provider": "weft", "name": "weft-offline-chat"}
    return make_app(tenant, App.Mode.CHATFLOW, spec=parse_spec(spec))


def test_variables_show_declared_defaults_then_their_values(chatflow):
    alice = user_of(chatflow)
    task, _, _ = ask(chatflow, alice, "first", auto_generate_name=False)
    conversation = conversation_get(
        app=chatflow, conversation_id=task.conversation_id, end_user=alice
    )
    shown = conversation_variables(conversation=conversation)
    assert [(v["id"], v["name"], v["value_type"], v["value"]) for v in shown] == [
        ("v-count", "count", "number", 1),
        ("v-topics", "topics", "array[string]", ["first"]),
    ]
    fresh = started(chatflow, user_of(chatflow, "bob"), "x")
    assert [v["value"] for v in conversation_variables(conversation=fresh)] == [0, []]


def test_variable_update_checks_the_type(chatflow):
    alice = user_of(chatflow)
    task, _, _ = ask(chatflow, alice, "first", auto_generate_name=False)
    conversation = conversation_get(
        app=chatflow, conversation_id=task.conversation_id, end_user=alice
    )
    updated = conversation_variable_update(
        conversation=conversation, variable_id="v-count", value=7
    )
    assert updated["value"] == 7
    conversation_variable_update(conversation=conversation, variable_id="topics", value=["a"])
    conversation.refresh_from_db()
    assert conversation.variables == {"count": 7, "topics": ["a"]}
    for variable_id, value in (("v-count", "7"), ("v-count", True), ("v-topics", ["a", 1])):
        with pytest.raises(InvalidInput, match="value: the variable"):
            conversation_variable_update(
                conversation=conversation, variable_id=variable_id, value=value
            )
    with pytest.raises(NotFound, match=r"Conversation Variable Not Exists\."):
        conversation_variable_update(conversation=conversation, variable_id="nope", value=1)
    # The next turn starts from what the API set.
    ask(chatflow, alice, "second", conversation_id=task.conversation_id)
    conversation.refresh_from_db()
    assert conversation.variables == {"count": 8, "topics": ["a", "second"]}


def test_a_chat_app_has_no_conversation_variables(app):
    conversation = started(app, user_of(app))
    assert conversation_variables(conversation=conversation) == []
    with pytest.raises(NotFound):
        conversation_variable_update(conversation=conversation, variable_id="x", value=1)


# --- Feedback --------------------------------------------------------------------------------


def test_the_end_user_rates_their_answer_and_takes_it_back(app):
    alice = user_of(app)
    _, _, message = ask(app, alice, "hi", auto_generate_name=False)
    liked = feedback_set(message=message, rating="like", end_user=alice)
    assert liked.rating == "like" and liked.app_id == app.pk
    assert liked.conversation_id == message.conversation_id
    disliked = feedback_set(message=message, rating="dislike", content="Too short", end_user=alice)
    assert disliked.pk == liked.pk and disliked.content == "Too short"
    assert feedback_set(message=message, rating=None, end_user=alice) is None
    assert not MessageFeedback.dangerously_unscoped.filter(message=message).exists()
    assert feedback_set(message=message, rating=None, end_user=alice) is None  # nothing to clear


def test_feedback_is_refused_on_others_messages_and_bad_ratings(tenant, app, make_member):
    alice, bob = user_of(app, "alice"), user_of(app, "bob")
    _, _, message = ask(app, alice, "hi", auto_generate_name=False)
    with pytest.raises(NotFound, match=r"Message Not Exists\."):
        feedback_set(message=message, rating="like", end_user=bob)
    for rating in ("love", 1, ""):
        with pytest.raises(InvalidInput, match="rating"):
            feedback_set(message=message, rating=rating, end_user=alice)
    with pytest.raises(InvalidInput, match="content"):
        feedback_set(message=message, rating="like", content="x" * 10_001, end_user=alice)
    member = make_member(tenant)
    review = feedback_set(
        message=message, rating="dislike", source=MessageFeedback.From.ADMIN, user=member
    )
    user_rating = feedback_set(message=message, rating="like", end_user=alice)
    assert review.pk != user_rating.pk  # one per source
    with pytest.raises(InvalidInput, match="member"):
        feedback_set(message=message, rating="like", source=MessageFeedback.From.ADMIN)
