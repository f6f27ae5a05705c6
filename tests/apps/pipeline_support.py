"""Helpers of the pipeline's tests: apps configured through the services, a turn run to its
end on this thread (so the ORM calls stay in the test's transaction), and a task's stream read
back from Redis."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

from asgiref.sync import async_to_sync

from apps.config import AppConfig, dump
from apps.models import App, EndUser, Message, Source
from apps.pipeline import Request, Task, execute, prepare
from apps.services.apps import app_publish, app_update, runnable
from apps.services.end_users import end_user_for
from tests.workflows.conftest import make_edge, make_node
from workflows import streams

FAKE_MODEL = {"provider": "openai", "name": "gpt-4o-mini", "mode": "chat", "completion_params": {}}


def config(**fields: Any) -> dict[str, Any]:
    """A chat app's config (the fake LLM's model unless `model` says otherwise)."""
    return dump(AppConfig.model_validate({"model": FAKE_MODEL, **fields}))


def configure(app: App, **fields: Any) -> App:
    """Change a chat, agent or completion app's config and publish it."""
    app_update(tenant=app.tenant, app=app, config=config(**fields))
    app_publish(tenant=app.tenant, app=app)
    app.refresh_from_db()
    return app


def user_of(app: App, session_id: str = "alice") -> EndUser:
    return end_user_for(app=app, session_id=session_id)


def request(app: App, end_user: EndUser | None, **fields: Any) -> Request:
    fields.setdefault("source", Source.API)
    return Request(app=app, runnable=runnable(app), end_user=end_user, **fields)


def read_events(task_id: str, timeout: float = 10.0) -> list[dict[str, Any]]:
    """Every event of a task's stream, up to the one marked last."""

    async def collect() -> list[dict[str, Any]]:
        found = []

        async def read() -> None:
            async for _id, body in streams.read(task_id, block_ms=200):
                if body is not None:
                    found.append(json.loads(body))

        await asyncio.wait_for(read(), timeout)
        return found

    return async_to_sync(collect)()


def run_task(task: Task) -> list[dict[str, Any]]:
    """Execute the task here, to its end; its events."""
    async_to_sync(execute)(task, wait_follow_ups=True)
    return read_events(task.task_id)


def ask(app: App, end_user: EndUser | None, query: str = "Hello there", **fields: Any):
    """Prepare and run one turn; (task, events, message)."""
    task = prepare(request(app, end_user, query=query, **fields))
    events = run_task(task)
    message = Message.dangerously_unscoped.get(pk=task.message_id) if task.message_id else None
    return task, events, message


def names(events: list[dict[str, Any]]) -> list[str]:
    return [event["event"] for event in events]


def answer_of(events: list[dict[str, Any]]) -> str:
    """The answer as a client puts it together from the stream."""
    text = ""
    for event in events:
        if event["event"] in ("message", "agent_message"):
            text += event["answer"]
        elif event["event"] == "message_replace":
            text = event["answer"]
    return text


def chain(*ids: str) -> list[dict]:
    return [make_edge(a, b) for a, b in itertools.pairwise(ids)]


def counting_chatflow() -> dict:
    """start → llm (memory; the turn count in its system prompt) → assign (count += 1,
    topics += query) → answer."""
    nodes = [
        make_node("start", "start", variables=[]),
        make_node(
            "llm",
            "llm",
            model=FAKE_MODEL,
            prompt_template=[{"role": "system", "text": "Turns so far: {{#conversation.count#}}"}],
            memory={"window": {"enabled": True, "size": 5}, "query_prompt_template": ""},
            context={"enabled": False, "variable_selector": []},
        ),
        make_node(
            "assign",
            "assigner",
            version="2",
            items=[
                {
                    "variable_selector": ["conversation", "count"],
                    "operation": "+=",
                    "input_type": "constant",
                    "value": 1,
                },
                {
                    "variable_selector": ["conversation", "topics"],
                    "operation": "append",
                    "input_type": "variable",
                    "value": ["sys", "query"],
                },
            ],
        ),
        make_node("answer", "answer", answer="{{#llm.text#}}"),
    ]
    return {
        "graph": {"nodes": nodes, "edges": chain("start", "llm", "assign", "answer")},
        "features": {},
        "conversation_variables": [
            {"id": "v-count", "name": "count", "value_type": "number", "value": 0},
            {"id": "v-topics", "name": "topics", "value_type": "array[string]", "value": []},
        ],
    }
