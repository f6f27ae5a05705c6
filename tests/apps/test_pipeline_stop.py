"""Stopping a task mid-stream: the model call is cancelled, the partial answer saved with
status stopped, and the stream still ends with message_end; another user's stop does
nothing."""

from __future__ import annotations

import asyncio
import json

import pytest
from asgiref.sync import async_to_sync

from apps.models import App, Message
from apps.pipeline import execute, prepare, stop
from tests.providers import conftest as provider_fixtures
from workflows import streams

from .pipeline_support import answer_of, configure, names, read_events, request, user_of

pytestmark = pytest.mark.django_db

runtime_state = provider_fixtures.runtime_state
credential = provider_fixtures.credential
WORDS = 200


@pytest.fixture
def slow_chat(tenant, make_app, credential, fake_llm):
    credential()
    fake_llm.latency_per_token = 0.02
    fake_llm.script(" ".join(f"w{i}" for i in range(WORDS)))
    return configure(make_app(tenant, App.Mode.CHAT))


def stop_after_first_text(app, task, stopper) -> None:
    """Run the task; once its first text is in the stream, ask `stopper` to stop it."""

    async def go():
        running = asyncio.ensure_future(execute(task))
        async for _id, body in streams.read(task.task_id, block_ms=200):
            if body is not None and json.loads(body)["event"] == "message":
                break
        await stop(app=app, task_id=task.task_id, end_user=stopper)
        await asyncio.wait_for(running, 20)

    async_to_sync(go)()


def test_stop_mid_stream_keeps_the_partial_answer(slow_chat, fake_llm):
    alice = user_of(slow_chat)
    task = prepare(request(slow_chat, alice, query="count", auto_generate_name=False))
    stop_after_first_text(slow_chat, task, alice)
    events = read_events(task.task_id)
    message = Message.dangerously_unscoped.get(pk=task.message_id)
    assert names(events)[-1] == "message_end"
    assert message.status == Message.Status.STOPPED
    produced = message.answer.split()
    assert 0 < len(produced) < WORDS
    assert answer_of(events) == message.answer
    assert message.answer_tokens > 0  # counted although the provider never sent its usage
    assert events[-1]["metadata"]["usage"]["completion_tokens"] == message.answer_tokens
    fake_llm.wait_until(lambda: fake_llm.cancelled >= 1)  # the model call was cut off


def test_a_stop_from_another_user_does_nothing(slow_chat):
    alice, bob = user_of(slow_chat, "alice"), user_of(slow_chat, "bob")
    task = prepare(request(slow_chat, alice, query="count", auto_generate_name=False))
    stop_after_first_text(slow_chat, task, bob)
    message = Message.dangerously_unscoped.get(pk=task.message_id)
    assert message.status == Message.Status.NORMAL
    assert len(message.answer.split()) == WORDS


def test_stopping_unknown_tasks_does_nothing(tenant, make_app):
    app = make_app(tenant, App.Mode.CHAT)
    for task_id in ("nope", "3f1ee6a5-5b4c-4c39-a7b4-8f6f1c1c9e1d"):
        async_to_sync(stop)(app=app, task_id=task_id, end_user=user_of(app))
