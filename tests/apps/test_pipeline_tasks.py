"""The Celery side: `async` tasks executed by `apps.tasks.execute_task` (idempotent), and the
watchdog that ends messages whose process died."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from apps.models import App, Message
from apps.pipeline import enqueue, prepare
from apps.tasks import DIED, NEVER_STARTED, execute_task, fail_orphaned_messages
from config.celery import app as celery_app

from .pipeline_support import names, read_events, request, user_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def eager():
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


def test_an_async_task_runs_on_celery_and_names_its_conversation(tenant, make_app, eager):
    app = make_app(tenant, App.Mode.CHAT)  # the built-in model
    task = prepare(request(app, user_of(app), query="What is a loom for weaving?"))
    enqueue(task)
    message = Message.dangerously_unscoped.get(pk=task.message_id)
    assert message.status == Message.Status.NORMAL and message.answer
    assert names(read_events(task.task_id))[-1] == "message_end"
    # The built-in model writes no names: the first words are the name.
    assert message.conversation.name == "What is a loom for weaving?"


def test_a_task_delivered_again_does_nothing(tenant, make_app):
    app = make_app(tenant, App.Mode.CHAT)
    task = prepare(request(app, user_of(app), query="hello"))
    execute_task(**task.fields())
    message = Message.dangerously_unscoped.get(pk=task.message_id)
    answered_at = message.updated_at
    execute_task(**task.fields())
    message.refresh_from_db()
    assert message.updated_at == answered_at
    assert names(read_events(task.task_id)).count("message_end") == 1


def test_a_workflow_task_runs_on_celery(tenant, make_app):
    app = make_app(tenant, App.Mode.WORKFLOW)
    task = prepare(request(app, user_of(app), inputs={"query": "hi"}))
    execute_task(**task.fields())
    assert names(read_events(task.task_id))[-1] == "workflow_finished"


def test_orphaned_messages_fail_with_a_reason_and_their_streams_end(tenant, make_app):
    app = make_app(tenant, App.Mode.CHAT)
    alice = user_of(app)
    died = prepare(request(app, alice, query="one"))
    queued = prepare(request(app, alice, query="two"))
    alive = prepare(request(app, alice, query="three"))
    fresh = prepare(request(app, alice, query="four"))
    long_ago = timezone.now() - dt.timedelta(hours=2)
    Message.dangerously_unscoped.filter(pk=died.message_id).update(
        heartbeat_at=timezone.now() - dt.timedelta(minutes=5)
    )
    Message.dangerously_unscoped.filter(pk=queued.message_id).update(created_at=long_ago)
    Message.dangerously_unscoped.filter(pk=alive.message_id).update(heartbeat_at=timezone.now())
    assert fail_orphaned_messages() == 2
    rows = {
        task.message_id: Message.dangerously_unscoped.get(pk=task.message_id)
        for task in (died, queued, alive, fresh)
    }
    assert (rows[died.message_id].status, rows[died.message_id].error) == ("error", DIED)
    assert rows[queued.message_id].error == NEVER_STARTED
    assert rows[alive.message_id].status == rows[fresh.message_id].status == "running"
    events = read_events(died.task_id)
    assert events == [
        {
            "event": "error",
            "task_id": died.task_id,
            "message_id": died.message_id,
            "conversation_id": died.conversation_id,
            "status": 500,
            "code": "internal_server_error",
            "message": DIED,
        }
    ]
    assert fail_orphaned_messages() == 0
