"""The Service API over a real WebSocket (`/ws/v1/`) against a running Daphne: both ways to
authenticate, starting chat, completion and workflow tasks, following one started elsewhere
from an event on (`last_event_id`), stopping, and refusals that leave the connection open."""

from __future__ import annotations

import json
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from apps.models import App, Message
from tenants.models import ApiKey
from tests.apps import live
from tests.apps.live import read_sse, wait_for
from tests.apps.pipeline_support import configure
from tests.factories import api_key
from tests.providers import conftest as provider_fixtures

pytestmark = [pytest.mark.django_db(transaction=True)]

daphne_server = live.daphne_server
service_api = live.service_api
runtime_state = provider_fixtures.runtime_state
credential = provider_fixtures.credential

WORDS = " ".join(f"w{i}" for i in range(40))


def open_socket(server, key: str | None = None):
    headers = {"Authorization": f"Bearer {key}"} if key else None
    return connect(f"{server.ws_url}/ws/v1/", additional_headers=headers, open_timeout=10)


def receive(socket, timeout: float = 15.0) -> dict[str, Any]:
    return json.loads(socket.recv(timeout=timeout))


def until(socket, name: str) -> list[dict[str, Any]]:
    """Every message up to and including the first named `name`."""
    seen = []
    while True:
        message = receive(socket)
        seen.append(message)
        if message.get("event") == name:
            return seen


@pytest.fixture
def chat(tenant, make_app, app_key):
    app = make_app(tenant, name="Socket chat")
    return app, app_key(app)


def test_header_auth_and_a_chat_task_streams_its_events(daphne_server, chat):
    app, key = chat
    with open_socket(daphne_server, key) as socket:
        ready = receive(socket)
        assert ready == {"event": "ready", "app_id": str(app.pk), "mode": "chat"}
        body = {"inputs": {}, "query": "Hello", "user": "alice"}
        socket.send(json.dumps({"action": "chat-messages", "body": body, "request_id": 7}))
        started = receive(socket)
        assert started["event"] == "task_started" and started["request_id"] == 7
        events = until(socket, "message_end")
    assert all(e["task_id"] == started["task_id"] for e in events)
    assert {e["event"] for e in events[:-1]} == {"message"}
    assert all(e["event_id"] for e in events)  # the stream id, as SSE's `id:`
    assert events[0]["id"] == started["message_id"]  # Dify's own `id` is left alone
    saved = Message.dangerously_unscoped.get(pk=started["message_id"])
    assert saved.answer == "".join(e["answer"] for e in events if e["event"] == "message")


def test_first_message_auth_and_the_same_events_as_sse(daphne_server, chat, service_api):
    app, key = chat
    with open_socket(daphne_server) as socket:
        socket.send(json.dumps({"authorization": f"Bearer {key}"}))
        assert receive(socket)["event"] == "ready"
        body = {"inputs": {}, "query": "Hello", "user": "alice"}
        socket.send(json.dumps({"action": "chat-messages", "body": body}))
        task_id = receive(socket)["task_id"]
        events = until(socket, "message_end")
    api = service_api(app)
    with api.stream("GET", f"/chat-messages/{task_id}/events", params={"user": "alice"}) as r:
        sse = read_sse(r)
    assert [e.data for e in sse] == [
        {k: v for k, v in e.items() if k != "event_id"} for e in events
    ]
    assert [e.id for e in sse] == [e["event_id"] for e in events]


@pytest.mark.parametrize(
    ("kind", "code", "close"),
    [(None, "unauthorized", 4401), (ApiKey.Kind.DATASET, "wrong_key_kind", 4403)],
)
def test_refused_keys_close_the_socket(daphne_server, tenant, kind, code, close):
    raw = api_key(tenant, kind=kind)[1] if kind else "app-" + "x" * 32
    with open_socket(daphne_server, raw) as socket:
        error = receive(socket)
        assert error["event"] == "error" and error["code"] == code
        with pytest.raises(ConnectionClosed) as closed:
            socket.recv(timeout=5)
    assert closed.value.rcvd.code == close


def test_a_first_message_that_is_not_auth_closes_the_socket(daphne_server):
    with open_socket(daphne_server) as socket:
        socket.send(json.dumps({"action": "chat-messages", "body": {}}))
        assert receive(socket)["code"] == "unauthorized"
        with pytest.raises(ConnectionClosed) as closed:
            socket.recv(timeout=5)
    assert closed.value.rcvd.code == 4401


def test_bad_actions_answer_errors_and_the_socket_stays_open(daphne_server, chat):
    _, key = chat
    with open_socket(daphne_server, key) as socket:
        receive(socket)
        socket.send("not json")
        assert receive(socket)["code"] == "invalid_param"
        socket.send(json.dumps({"action": "dance", "request_id": "a"}))
        error = receive(socket)
        assert (error["code"], error["request_id"]) == ("invalid_param", "a")
        socket.send(json.dumps({"action": "chat-messages", "body": {"query": "hi"}}))
        assert receive(socket)["code"] == "invalid_param"  # no user
        socket.send(
            json.dumps({"action": "workflows/run", "body": {"inputs": {}, "user": "alice"}})
        )
        assert receive(socket)["code"] == "not_workflow_app"
        socket.send(json.dumps({"action": "subscribe", "task_id": "nope", "user": "alice"}))
        assert receive(socket)["code"] == "not_found"
        body = {"inputs": {}, "query": "Still here", "user": "alice"}
        socket.send(json.dumps({"action": "chat-messages", "body": body}))
        assert receive(socket)["event"] == "task_started"
        assert until(socket, "message_end")[-1]["event"] == "message_end"


def test_subscribe_from_an_event_on(daphne_server, chat, service_api):
    app, key = chat
    api = service_api(app)
    with api.stream(
        "POST",
        "/chat-messages",
        json={"inputs": {}, "query": "Hi", "user": "alice", "response_mode": "streaming"},
    ) as response:
        sse = read_sse(response)
    task_id = sse[0].data["task_id"]
    with open_socket(daphne_server, key) as socket:
        receive(socket)
        socket.send(
            json.dumps(
                {
                    "action": "subscribe",
                    "task_id": task_id,
                    "user": "alice",
                    "last_event_id": sse[0].id,
                }
            )
        )
        assert receive(socket) == {"event": "subscribed", "request_id": None, "task_id": task_id}
        rest = until(socket, "message_end")
        assert [e["event_id"] for e in rest] == [e.id for e in sse[1:]]
        socket.send(json.dumps({"action": "subscribe", "task_id": task_id, "user": "bob"}))
        assert receive(socket)["code"] == "not_found"


def test_stop_over_the_socket(daphne_server, tenant, make_app, app_key, credential, fake_llm):
    credential()
    fake_llm.latency_per_token = 0.05
    fake_llm.script(WORDS)
    app = configure(make_app(tenant, App.Mode.CHAT, name="Slow socket"))
    with open_socket(daphne_server, app_key(app)) as socket:
        receive(socket)
        body = {"inputs": {}, "query": "Count", "user": "alice", "auto_generate_name": False}
        socket.send(json.dumps({"action": "chat-messages", "body": body}))
        task_id = receive(socket)["task_id"]
        assert receive(socket)["event"] == "message"
        socket.send(json.dumps({"action": "stop", "task_id": task_id, "user": "alice"}))
        events = until(socket, "message_end")
        assert {"event": "stopped", "request_id": None, "task_id": task_id} in events
    saved = wait_for(
        lambda: (
            (m := Message.dangerously_unscoped.get(pk=task_id)).status != Message.Status.RUNNING
            and m
        )
    )
    assert saved.status == Message.Status.STOPPED and saved.answer != WORDS


def test_closing_the_socket_does_not_stop_the_task(
    daphne_server, tenant, make_app, app_key, credential, fake_llm
):
    credential()
    fake_llm.latency_per_token = 0.05
    fake_llm.script(WORDS)
    app = configure(make_app(tenant, App.Mode.CHAT, name="Left socket"))
    with open_socket(daphne_server, app_key(app)) as socket:
        receive(socket)
        body = {"inputs": {}, "query": "Count", "user": "alice", "auto_generate_name": False}
        socket.send(json.dumps({"action": "chat-messages", "body": body}))
        task_id = receive(socket)["task_id"]
        receive(socket)
    saved = wait_for(
        lambda: (
            (m := Message.dangerously_unscoped.get(pk=task_id)).status != Message.Status.RUNNING
            and m
        ),
        timeout=20,
    )
    assert saved.status == Message.Status.NORMAL and saved.answer == WORDS


def test_workflow_and_completion_tasks(daphne_server, tenant, make_app, app_key):
    workflow = make_app(tenant, App.Mode.WORKFLOW, name="Socket workflow")
    completion = make_app(tenant, App.Mode.COMPLETION, name="Socket completion")
    with open_socket(daphne_server, app_key(workflow)) as socket:
        receive(socket)
        body = {"inputs": {"query": "hi"}, "user": "alice"}
        socket.send(json.dumps({"action": "workflows/run", "body": body}))
        started = receive(socket)
        assert started["workflow_run_id"] == started["task_id"]
        events = until(socket, "workflow_finished")
        assert events[0]["event"] == "workflow_started"
        assert events[-1]["data"]["status"] == "succeeded"
    with open_socket(daphne_server, app_key(completion)) as socket:
        receive(socket)
        body = {"inputs": {}, "query": "A haiku", "user": "alice"}
        socket.send(json.dumps({"action": "completion-messages", "body": body}))
        assert receive(socket)["event"] == "task_started"
        assert until(socket, "message_end")[-1]["metadata"]["usage"]
