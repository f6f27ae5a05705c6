"""Workflow and chatflow apps over real HTTP against a running Daphne: `workflows/run`
(blocking, streaming, a pinned version), `workflows/run/{id}`, `workflows/logs`,
`workflows/tasks/{id}/stop`, `workflow/{run_id}/events` (resume and expiry), and chatflow
conversations with their variables."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
import redis
from django.conf import settings
from django.utils import timezone

from apps.models import App, Message
from apps.services.apps import app_publish, starter_spec
from tenants.context import tenant_context
from tests.apps import live
from tests.apps.live import envelope, read_sse, wait_for
from tests.apps.pipeline_support import FAKE_MODEL
from tests.providers import conftest as provider_fixtures
from workflows import streams
from workflows.models import WorkflowRun
from workflows.services.definitions import parse_spec, workflow_update

pytestmark = [pytest.mark.django_db(transaction=True)]

daphne_server = live.daphne_server
service_api = live.service_api
runtime_state = provider_fixtures.runtime_state
credential = provider_fixtures.credential

WORDS = " ".join(f"w{i}" for i in range(40))
RUN_FIELDS = {
    "id",
    "workflow_id",
    "status",
    "outputs",
    "error",
    "elapsed_time",
    "total_tokens",
    "total_steps",
    "created_at",
    "finished_at",
}


def edit_graph(app: App, change: Any, **spec_fields: Any) -> App:
    """Change the app's workflow draft (`change(nodes)` edits the nodes in place) and
    publish it."""
    spec = starter_spec(app.mode).model_dump(mode="json", by_alias=True, exclude_none=True)
    nodes = spec["graph"]["nodes"]
    change({node["id"]: node["data"] for node in nodes})
    spec.update(spec_fields)
    workflow_update(tenant=app.tenant, workflow=app.workflow, spec=parse_spec(spec))
    app_publish(tenant=app.tenant, app=app)
    app.refresh_from_db()
    return app


def on_fake_model(data: dict[str, Any]) -> None:
    data["llm"]["model"] = {**FAKE_MODEL}


def run(api, inputs=None, user="alice", path="/workflows/run", **fields):
    return api.post(
        path, {"inputs": {"query": "hello"} if inputs is None else inputs, "user": user, **fields}
    )


def stream(api, path, body=None, **kwargs):
    method = "GET" if body is None else "POST"
    options = {"json": body} if body is not None else {}
    with api.stream(method, path, **options, **kwargs) as response:
        assert response.status_code == 200, response.read()
        return read_sse(response)


def run_row(run_id) -> WorkflowRun:
    return WorkflowRun.dangerously_unscoped.get(pk=run_id)


@pytest.fixture
def workflow_api(service_api):
    return service_api(mode=App.Mode.WORKFLOW)


@pytest.fixture
def slow_workflow(tenant, make_app, credential, fake_llm):
    """A workflow app whose LLM node is the fake LLM, answering 40 words 50 ms apart."""
    credential()
    fake_llm.latency_per_token = 0.05
    fake_llm.script(WORDS, times=3)
    return edit_graph(make_app(tenant, App.Mode.WORKFLOW), on_fake_model)


# --- Runs ------------------------------------------------------------------------------------


def test_blocking_run_answers_in_difys_shape(workflow_api):
    response = run(workflow_api)
    assert response.status_code == 200
    body = response.json()
    assert body["task_id"] == body["workflow_run_id"] == body["data"]["id"]
    assert set(body["data"]) == RUN_FIELDS
    assert body["data"]["status"] == "succeeded" and body["data"]["outputs"]["text"]
    assert body["data"]["total_steps"] == 3 and body["data"]["error"] is None
    row = run_row(body["workflow_run_id"])
    assert row.status == WorkflowRun.Status.SUCCEEDED
    assert row.triggered_from == WorkflowRun.TriggeredFrom.APP_RUN


def test_streaming_run_sends_the_workflow_events(workflow_api):
    events = stream(
        workflow_api,
        "/workflows/run",
        {"inputs": {"query": "hi"}, "user": "alice", "response_mode": "streaming"},
    )
    names = [e.name for e in events]
    assert names[0] == "workflow_started" and names[-1] == "workflow_finished"
    assert {"node_started", "node_finished", "text_chunk"} <= set(names)
    run_id = events[0].data["workflow_run_id"]
    assert all(e.data["workflow_run_id"] == e.data["task_id"] == run_id for e in events)
    assert events[-1].data["data"]["status"] == "succeeded"
    assert all(e.id for e in events)


def test_a_pinned_version_runs_as_it_was_published(tenant, make_app, service_api):
    app = make_app(tenant, App.Mode.WORKFLOW)
    first = app.published_version

    def rename_output(data):
        data["end"]["outputs"] = [{"variable": "answer", "value_selector": ["llm", "text"]}]

    edit_graph(app, rename_output)
    api = service_api(app)
    assert set(run(api).json()["data"]["outputs"]) == {"answer"}
    for pin in (first.workflow_version_id, first.pk):  # a workflow version's id, or the app's
        pinned = run(api, path=f"/workflows/{pin}/run").json()
        assert set(pinned["data"]["outputs"]) == {"text"}
    unknown = run(api, path="/workflows/not-a-version/run")
    assert envelope(unknown) == (404, "not_found")


def test_run_detail_and_who_may_read_it(workflow_api, service_api, tenant, other_tenant, make_app):
    run_id = run(workflow_api, {"query": "détail"}).json()["workflow_run_id"]
    detail = workflow_api.get(f"/workflows/run/{run_id}").json()
    assert set(detail) == {*RUN_FIELDS, "inputs"}
    assert json.loads(detail["inputs"]) == {"query": "détail"}  # a JSON string, as Dify's
    assert detail["status"] == "succeeded" and detail["outputs"]["text"]
    assert envelope(workflow_api.get("/workflows/run/nope")) == (404, "not_found")
    # Another app of the tenant, and another tenant, see nothing.
    other_app = service_api(mode=App.Mode.WORKFLOW)
    assert envelope(other_app.get(f"/workflows/run/{run_id}")) == (404, "not_found")
    foreign = service_api(make_app(other_tenant, App.Mode.WORKFLOW))
    assert envelope(foreign.get(f"/workflows/run/{run_id}")) == (404, "not_found")
    assert envelope(service_api().get(f"/workflows/run/{run_id}")) == (400, "not_workflow_app")


def test_logs_filter_and_page_as_difys(workflow_api):
    ids = [run(workflow_api, {"query": word}).json()["workflow_run_id"] for word in "abc"]
    failed = run(workflow_api, {"query": "zebra"}).json()["workflow_run_id"]
    WorkflowRun.dangerously_unscoped.filter(pk=failed).update(status="failed", error="boom")
    logs = workflow_api.get("/workflows/logs").json()
    assert (logs["page"], logs["limit"], logs["total"], logs["has_more"]) == (1, 20, 4, False)
    assert [item["id"] for item in logs["data"]] == [failed, *reversed(ids)]
    item = logs["data"][-1]
    assert item["workflow_run"]["status"] == "succeeded"
    assert item["workflow_run"]["triggered_from"] == "app-run"
    assert item["created_from"] == "service-api" and item["created_by_role"] == "end_user"
    assert item["created_by_end_user"]["session_id"] == "alice"

    assert [
        i["id"] for i in workflow_api.get("/workflows/logs", status="failed").json()["data"]
    ] == [failed]
    assert workflow_api.get("/workflows/logs", keyword="zebra").json()["total"] == 1
    assert workflow_api.get("/workflows/logs", keyword="alice").json()["total"] == 4
    page = workflow_api.get("/workflows/logs", page=2, limit=3).json()
    assert page["total"] == 4 and len(page["data"]) == 1 and page["has_more"] is False
    assert workflow_api.get("/workflows/logs", page=1, limit=3).json()["has_more"] is True
    later = (timezone.now() + timedelta(minutes=5)).isoformat()
    assert workflow_api.get("/workflows/logs", created_at__after=later).json()["total"] == 0
    assert workflow_api.get("/workflows/logs", created_at__before=later).json()["total"] == 4
    for params in ({"status": "weird"}, {"limit": 0}, {"limit": 101}, {"page": "x"}):
        assert envelope(workflow_api.get("/workflows/logs", **params)) == (400, "invalid_param")
    response = workflow_api.get("/workflows/logs", created_at__before="yesterday")
    assert envelope(response) == (400, "invalid_param")


# --- Bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"inputs": {}, "user": "a"},  # the required input is missing
        {"inputs": {"query": 3}, "user": "a"},  # of the wrong type
        {"inputs": "x", "user": "a"},
        {"user": "a"},
        {"inputs": {"query": "hi"}},  # no user
    ],
)
def test_bad_run_bodies_write_nothing(workflow_api, tenant, body):
    assert envelope(workflow_api.post("/workflows/run", body)) == (400, "invalid_param")
    with tenant_context(tenant):
        assert not WorkflowRun.objects.exists()


# --- Stop and events -------------------------------------------------------------------------


def test_stop_a_running_workflow(service_api, slow_workflow, fake_llm):
    slow_workflow_fake = fake_llm
    api = service_api(slow_workflow)
    body = {"inputs": {"query": "count"}, "user": "alice", "response_mode": "streaming"}
    with api.stream("POST", "/workflows/run", json=body) as response:
        lines = response.iter_lines()
        (started,) = read_sse(lines, stop_after=1)
        task_id = started.data["task_id"]
        stopped = api.post(f"/workflows/tasks/{task_id}/stop", {"user": "alice"})
        assert stopped.status_code == 200 and stopped.json() == {"result": "success"}
        rest = read_sse(lines)
    assert rest[-1].name == "workflow_finished"
    assert len(slow_workflow_fake.requests) == 1, [r.path for r in slow_workflow_fake.requests]
    assert rest[-1].data["data"]["status"] == "stopped", [e.data for e in rest]
    assert wait_for(lambda: run_row(task_id).status == WorkflowRun.Status.STOPPED)


def test_resume_a_run_with_last_event_id_while_it_runs(service_api, slow_workflow):
    api = service_api(slow_workflow)
    body = {"inputs": {"query": "count"}, "user": "alice", "response_mode": "streaming"}
    with api.stream("POST", "/workflows/run", json=body) as response:
        first = read_sse(response, stop_after=5)  # the client drops the connection
    run_id = first[0].data["workflow_run_id"]
    assert run_row(run_id).status == WorkflowRun.Status.RUNNING
    rest = stream(
        api,
        f"/workflow/{run_id}/events",
        params={"user": "alice"},
        headers={"Last-Event-ID": first[-1].id},
    )
    assert rest[-1].name == "workflow_finished"
    assert rest[-1].data["data"]["outputs"]["text"] == WORDS
    chunks = "".join(e.data["data"]["text"] for e in first + rest if e.name == "text_chunk")
    assert chunks == WORDS
    assert len({e.id for e in first + rest}) == len(first + rest)


def test_run_events_for_their_user_only_and_after_expiry(workflow_api):
    run_id = run(workflow_api).json()["workflow_run_id"]
    path = f"/workflow/{run_id}/events"
    kept = stream(workflow_api, path, params={"user": "alice"})
    assert kept[0].name == "workflow_started" and kept[-1].name == "workflow_finished"
    assert envelope(workflow_api.get(path, user="bob")) == (404, "not_found")
    assert envelope(workflow_api.get(path)) == (400, "invalid_param")
    redis.Redis.from_url(settings.REDIS_URL).delete(streams.events_key(run_id))
    # Gone: a client starting over gets the run's end, as Dify answers for a finished run...
    (finished,) = stream(workflow_api, path, params={"user": "alice"})
    assert finished.name == "workflow_finished" and finished.id is None
    assert finished.data["data"]["status"] == "succeeded"
    assert finished.data["data"]["outputs"] == kept[-1].data["data"]["outputs"]
    # ...and one resuming from an event gets 410.
    expired = workflow_api.get(path, user="alice", last_event_id=kept[1].id)
    assert envelope(expired) == (410, "events_expired")


# --- Chatflow --------------------------------------------------------------------------------


CONVERSATION_VARIABLES = [
    {"id": "v-topic", "name": "topic", "value_type": "string", "value": "wool", "description": "t"},
    {"id": "v-count", "name": "count", "value_type": "number", "value": 0, "description": ""},
    {"id": "v-tags", "name": "tags", "value_type": "array[string]", "value": [], "description": ""},
]


def test_chatflow_streams_workflow_and_message_events(service_api):
    api = service_api(mode=App.Mode.CHATFLOW)
    events = stream(
        api,
        "/chat-messages",
        {"inputs": {}, "query": "hello", "user": "alice", "response_mode": "streaming"},
    )
    names = [e.name for e in events]
    assert names[0] == "workflow_started" and "message" in names
    assert names[-2:] in (
        ["message_end", "workflow_finished"],
        ["workflow_finished", "message_end"],
    )
    message_id = events[0].data["message_id"]
    run_id = events[0].data["workflow_run_id"]
    assert all(e.data["task_id"] == message_id for e in events)
    saved = Message.dangerously_unscoped.get(pk=message_id)
    assert str(saved.workflow_run_id) == run_id and saved.status == Message.Status.NORMAL
    # The run's own events resume by the run's id (a chatflow's stream is its message's).
    again = stream(api, f"/workflow/{run_id}/events", params={"user": "alice"})
    assert [e.id for e in again] == [e.id for e in events]
    assert envelope(api.get(f"/workflow/{run_id}/events", user="bob")) == (404, "not_found")
    assert api.get(f"/workflows/run/{run_id}").json()["status"] == "succeeded"


def test_conversation_variables_of_a_chatflow(service_api, tenant, make_app):
    app = edit_graph(
        make_app(tenant, App.Mode.CHATFLOW),
        lambda nodes: None,
        conversation_variables=CONVERSATION_VARIABLES,
    )
    api = service_api(app)
    conversation_id = api.post(
        "/chat-messages", {"inputs": {}, "query": "hi", "user": "alice"}
    ).json()["conversation_id"]
    path = f"/conversations/{conversation_id}/variables"
    listed = api.get(path, user="alice").json()
    assert listed["has_more"] is False
    by_name = {item["name"]: item for item in listed["data"]}
    assert set(by_name) == {"topic", "count", "tags"}
    assert by_name["topic"]["value"] == "wool" and by_name["topic"]["value_type"] == "string"
    assert by_name["count"]["value"] == "0" and by_name["tags"]["value"] == "[]"  # JSON text
    page = api.get(path, user="alice", limit=2).json()
    assert len(page["data"]) == 2 and page["has_more"] is True
    rest = api.get(path, user="alice", last_id=page["data"][-1]["id"]).json()
    assert [i["name"] for i in page["data"] + rest["data"]] == ["topic", "count", "tags"]
    assert [
        i["name"] for i in api.get(path, user="alice", variable_name="count").json()["data"]
    ] == ["count"]

    updated = api.put(f"{path}/v-count", {"value": 7, "user": "alice"})
    assert updated.status_code == 200 and updated.json()["value"] == "7"
    assert api.put(f"{path}/tags", {"value": ["a", "b"], "user": "alice"}).json()["value"] == (
        '["a", "b"]'
    )
    by_name = {i["name"]: i for i in api.get(path, user="alice").json()["data"]}
    assert by_name["count"]["value"] == "7"
    assert envelope(api.put(f"{path}/v-count", {"value": "seven", "user": "alice"})) == (
        400,
        "invalid_param",
    )
    assert envelope(api.put(f"{path}/nope", {"value": 1, "user": "alice"})) == (404, "not_found")
    assert envelope(api.put(f"{path}/v-count", {"user": "alice"})) == (400, "invalid_param")
    assert envelope(api.get(path, user="bob")) == (404, "not_found")
    assert envelope(api.put(f"{path}/v-count", {"value": 1, "user": "bob"})) == (404, "not_found")
    assert envelope(api.get(path, user="alice", last_id="nope")) == (404, "not_found")


def test_a_chatflow_message_finishes_after_its_client_leaves(
    service_api, tenant, make_app, credential, fake_llm
):
    credential()
    fake_llm.latency_per_token = 0.05
    fake_llm.script(WORDS, times=2)
    app = edit_graph(make_app(tenant, App.Mode.CHATFLOW), on_fake_model)
    api = service_api(app)
    body = {
        "inputs": {},
        "query": "count",
        "user": "alice",
        "response_mode": "streaming",
        "auto_generate_name": False,
    }
    with api.stream("POST", "/chat-messages", json=body) as response:
        (first,) = read_sse(response, stop_after=1)
    message_id = first.data["message_id"]
    saved = wait_for(
        lambda: (
            (m := Message.dangerously_unscoped.get(pk=message_id)).status != Message.Status.RUNNING
            and m
        ),
        timeout=20,
    )
    assert saved.status == Message.Status.NORMAL and saved.answer == WORDS
