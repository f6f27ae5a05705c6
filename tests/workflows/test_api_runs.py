"""The workflows API, async part, on the ASGI path (AsyncClient): runs blocking and streamed
in Dify's shapes, detached from the client, the SSE stream read back from Redis (in order,
resumed after Last-Event-ID, pinged while quiet), stop, pause and resume, bad input, and the
async `wk-` key check answering as the DRF endpoints do."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient

from tenants.models import ApiKey, Tenant
from tenants.roles import Role
from tests.factories import api_key
from workflows import services, streams
from workflows.api import runs as run_views
from workflows.engine import REGISTRY, NodeContext, NodeExecutor, NodeResult, PauseRequested
from workflows.models import WorkflowRun
from workflows.nodes.io import EndExecutor

from .conftest import make_edge, make_node
from .test_api import BASE, echo_graph, make_workflow

pytestmark = pytest.mark.django_db


def run_async(coroutine_function):
    return async_to_sync(coroutine_function)()


@pytest.fixture
def headers(tenant):
    return {"Authorization": f"Bearer {api_key(tenant, role=Role.OPERATOR)[1]}"}


async def post(client: AsyncClient, url: str, body: Any, headers: dict) -> Any:
    return await client.post(
        url, json.dumps(body), content_type="application/json", headers=headers
    )


def parse_sse(raw: bytes) -> list[dict]:
    """Events of an SSE body: {"id", "data"} per event, {"ping": True} per keep-alive."""
    events = []
    for block in raw.decode().split("\n\n"):
        if not block:
            continue
        fields = dict(line.split(": ", 1) for line in block.split("\n"))
        if fields.get("event") == "ping":
            events.append({"ping": True})
        else:
            events.append({"id": fields["id"], "data": json.loads(fields["data"])})
    return events


async def read_sse(response) -> list[dict]:
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "text/event-stream"
    return parse_sse(b"".join([chunk async for chunk in response.streaming_content]))


async def settled(run_id, timeout: float = 10.0) -> WorkflowRun:
    """The run once it no longer runs (its detached task has written its end)."""
    deadline = time.monotonic() + timeout
    while True:
        run = await WorkflowRun.dangerously_unscoped.aget(pk=run_id)
        if run.status != WorkflowRun.Status.RUNNING:
            return run
        assert time.monotonic() < deadline, "the run did not end"
        await asyncio.sleep(0.05)


def names(events: list[dict]) -> list[str]:
    return [event["data"]["event"] for event in events if "data" in event]


def entry(event_id: str) -> tuple[int, int]:
    millis, sequence = event_id.split("-")
    return int(millis), int(sequence)


class SlowEnd(EndExecutor):
    """The end node, after a pause long enough to act on a running run."""

    seconds = 0.6

    async def run(self, ctx: NodeContext) -> NodeResult:
        await asyncio.sleep(self.seconds)
        return await super().run(ctx)


class Ask(NodeExecutor):
    """A human-input node that always asks (the real executor is not this module's concern)."""

    types = ("human-input",)

    async def run(self, ctx: NodeContext) -> NodeResult:
        raise PauseRequested({"question": "Approve?"})


@pytest.fixture
def slow_end(monkeypatch):
    monkeypatch.setitem(REGISTRY, "end", SlowEnd)
    return SlowEnd


@pytest.fixture
def asking(monkeypatch, tenant):
    """A workflow start → ask (human input) → end, whose end shows the answer."""
    monkeypatch.setitem(REGISTRY, "human-input", Ask)
    graph = echo_graph()
    graph["nodes"].insert(
        1,
        make_node(
            "ask",
            "human-input",
            inputs=[{"type": "text_input", "output_variable_name": "decision"}],
        ),
    )
    graph["nodes"][2]["data"]["outputs"].append(
        {"variable": "decision", "value_selector": ["ask", "decision"]}
    )
    graph["edges"] = [make_edge("start", "ask"), make_edge("ask", "end")]
    return make_workflow(tenant, "Approval", graph=graph)


# --- Running ------------------------------------------------------------------------------


def test_a_blocking_run_answers_in_difys_shape(tenant, headers):
    workflow = make_workflow(tenant)
    services.workflow_publish(tenant=tenant, workflow=workflow)
    services.workflow_update(
        tenant=tenant,
        workflow=workflow,
        spec=services.parse_spec({"graph": echo_graph(output="said")}),
    )
    url = f"{BASE}/{workflow.pk}/run"

    async def go():
        client = AsyncClient()
        draft = await post(client, url, {"inputs": {"q": "hi"}}, headers)
        published = await post(
            client, url, {"inputs": {"q": "hi"}, "version": 1, "response_mode": "blocking"}, headers
        )
        return draft, published

    draft, published = run_async(go)
    assert draft.status_code == 200, draft.content
    body = draft.json()
    run_id = body["workflow_run_id"]
    assert body["task_id"] == run_id and set(body) == {"task_id", "workflow_run_id", "data"}
    data = body["data"]
    assert set(data) == {
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
    assert (data["id"], data["workflow_id"]) == (run_id, str(workflow.pk))
    assert (data["status"], data["outputs"], data["error"]) == ("succeeded", {"said": "hi"}, None)
    assert (data["total_steps"], data["total_tokens"]) == (2, 0)
    assert isinstance(data["created_at"], int) and data["finished_at"] >= data["created_at"]
    row = WorkflowRun.dangerously_unscoped.get(pk=run_id)
    assert (row.triggered_from, row.version_id, row.status) == ("api", None, "succeeded")
    assert published.json()["data"]["outputs"] == {"echo": "hi"}
    version_run = WorkflowRun.dangerously_unscoped.get(pk=published.json()["workflow_run_id"])
    assert version_run.version.number == 1


def test_a_streamed_run_sends_its_events_in_order_and_a_reconnect_only_the_later_ones(
    tenant, headers
):
    workflow = make_workflow(tenant)

    async def go():
        client = AsyncClient()
        response = await post(
            client,
            f"{BASE}/{workflow.pk}/run",
            {"inputs": {"q": "hi"}, "response_mode": "streaming"},
            headers,
        )
        assert response["Cache-Control"] == "no-cache"
        events = await read_sse(response)
        run_id = events[0]["data"]["workflow_run_id"]
        url = f"{BASE}/runs/{run_id}/events"
        again = await read_sse(await client.get(url, headers=headers))
        after = await read_sse(
            await client.get(url, headers={**headers, "Last-Event-ID": events[2]["id"]})
        )
        by_query = await read_sse(
            await client.get(f"{url}?last_event_id={events[4]['id']}", headers=headers)
        )
        at_end = await read_sse(
            await client.get(url, headers={**headers, "Last-Event-ID": events[-1]["id"]})
        )
        return events, again, after, by_query, at_end

    events, again, after, by_query, at_end = run_async(go)
    assert names(events) == [
        "workflow_started",
        "node_started",
        "node_finished",
        "node_started",
        "node_finished",
        "workflow_finished",
    ]
    ids = [entry(event["id"]) for event in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    run_id = events[0]["data"]["workflow_run_id"]
    assert all(e["data"]["task_id"] == run_id == e["data"]["workflow_run_id"] for e in events)
    assert events[-1]["data"]["data"]["outputs"] == {"echo": "hi"}
    assert again == events
    assert after == events[3:] and by_query == events[5:]
    assert at_end == []


def test_a_quiet_stream_is_pinged_and_a_client_leaving_does_not_stop_the_run(
    tenant, headers, slow_end, monkeypatch
):
    monkeypatch.setattr(run_views, "KEEPALIVE_SECONDS", 0.1)
    workflow = make_workflow(tenant)

    async def go():
        client = AsyncClient()
        response = await post(
            client,
            f"{BASE}/{workflow.pk}/run",
            {"inputs": {"q": "hi"}, "response_mode": "streaming"},
            headers,
        )
        received = b""
        async for chunk in response.streaming_content:
            received += chunk
            if chunk == run_views.PING:
                break
        await response.streaming_content.aclose()  # the client goes away mid-run
        seen = parse_sse(received)
        run = await settled(seen[0]["data"]["workflow_run_id"])
        kept = await read_sse(await client.get(f"{BASE}/runs/{run.pk}/events", headers=headers))
        return seen, run, kept

    seen, run, kept = run_async(go)
    assert seen[-1] == {"ping": True}
    assert "workflow_finished" not in names(seen)
    assert (run.status, run.outputs) == ("succeeded", {"echo": "hi"})
    assert names(kept)[-1] == "workflow_finished"
    assert [e for e in seen if "data" in e] == kept[: len(seen) - 1]


def test_a_blocking_client_that_goes_away_leaves_the_run_running(tenant, headers, slow_end):
    workflow = make_workflow(tenant)

    async def go():
        request = asyncio.create_task(
            post(AsyncClient(), f"{BASE}/{workflow.pk}/run", {"inputs": {"q": "hi"}}, headers)
        )
        while not await WorkflowRun.dangerously_unscoped.aexists():
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)
        request.cancel()  # as Django does when the client disconnects
        await asyncio.gather(request, return_exceptions=True)
        run = await WorkflowRun.dangerously_unscoped.aget()
        return request, await settled(run.pk)

    request, run = run_async(go)
    assert request.cancelled()
    assert (run.status, run.outputs) == ("succeeded", {"echo": "hi"})


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        ({"inputs": {"q": 5}}, "invalid_param", "inputs.q: expected text."),
        ({"inputs": {}}, "invalid_param", "inputs.q is required."),
        (
            {"inputs": {"q": "hi"}, "version": 7},
            "invalid_param",
            "version: this workflow has no version 7.",
        ),
        (
            {"inputs": {"q": "hi"}, "version": 10**20},
            "invalid_param",
            "version: Ensure this value is less than or equal to 999999999.",
        ),
        (
            {"inputs": ["hi"]},
            "invalid_param",
            'inputs: Expected a dictionary of items but got type "list".',
        ),
        (
            {"inputs": {"q": "hi"}, "response_mode": "sse"},
            "invalid_param",
            'response_mode: "sse" is not a valid choice.',
        ),
    ],
)
def test_bad_runs_are_refused_before_anything_runs(tenant, headers, body, code, message):
    workflow = make_workflow(tenant)

    async def go():
        return await post(AsyncClient(), f"{BASE}/{workflow.pk}/run", body, headers)

    response = run_async(go)
    assert response.status_code == 400
    assert response.json() == {"code": code, "message": message, "status": 400}
    assert not WorkflowRun.dangerously_unscoped.exists()


def test_a_body_that_is_not_json_is_refused(tenant, headers):
    workflow = make_workflow(tenant)

    async def go():
        client = AsyncClient()
        broken = await client.post(
            f"{BASE}/{workflow.pk}/run", "{inputs", content_type="application/json", headers=headers
        )
        form = await client.post(f"{BASE}/{workflow.pk}/run", {"inputs": "x"}, headers=headers)
        return broken, form

    broken, form = run_async(go)
    assert broken.status_code == 400 and broken.json()["code"] == "invalid_request"
    assert broken.json()["message"].startswith("JSON parse error")
    assert form.status_code == 415 and form.json()["code"] == "unsupported_media_type"


def test_a_draft_that_cannot_run_is_refused_with_every_error(tenant, headers):
    graph = echo_graph()
    graph["nodes"].append(make_node("weird", "no-such-type"))
    graph["edges"].append(make_edge("start", "weird"))
    workflow = make_workflow(tenant, graph=graph)

    async def go():
        return await post(
            AsyncClient(), f"{BASE}/{workflow.pk}/run", {"inputs": {"q": "x"}}, headers
        )

    response = run_async(go)
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "workflow_invalid"
    assert any(error["node_id"] == "weird" for error in body["errors"])
    assert not WorkflowRun.dangerously_unscoped.exists()


# --- Stop, pause and resume ---------------------------------------------------------------


def test_stop_ends_a_running_run_and_a_finished_one_answers_409(tenant, headers, slow_end):
    slow_end.seconds = 30
    workflow = make_workflow(tenant)

    async def go():
        client = AsyncClient()
        response = await post(
            client,
            f"{BASE}/{workflow.pk}/run",
            {"inputs": {"q": "hi"}, "response_mode": "streaming"},
            headers,
        )
        events, stopped = [], None
        async for chunk in response.streaming_content:
            events += parse_sse(chunk)
            if stopped is None and names(events)[-1:] == ["node_started"] and len(events) == 4:
                run_id = events[0]["data"]["workflow_run_id"]
                stopped = await client.post(f"{BASE}/runs/{run_id}/stop", headers=headers)
        again = await client.post(f"{BASE}/runs/{run_id}/stop", headers=headers)
        return events, stopped, again

    events, stopped, again = run_async(go)
    run_id = events[0]["data"]["workflow_run_id"]
    assert stopped.status_code == 202, stopped.content
    assert stopped.json() == {"result": "success", "workflow_run_id": run_id, "status": "stopping"}
    assert events[-1]["data"]["event"] == "workflow_finished"
    assert events[-1]["data"]["data"]["status"] == "stopped"
    assert WorkflowRun.dangerously_unscoped.get(pk=run_id).status == "stopped"
    assert again.status_code == 409
    assert again.json() == {
        "code": "run_finished",
        "message": "This run has already ended (stopped): there is nothing to stop.",
        "status": 409,
    }


def test_a_paused_run_shows_its_form_and_resumes_with_the_answer(tenant, headers, asking):
    url = f"{BASE}/{asking.pk}/run"

    async def go():
        client = AsyncClient()
        paused = await post(client, url, {"inputs": {"q": "hi"}}, headers)
        run_id = paused.json()["workflow_run_id"]
        detail = await client.get(f"{BASE}/runs/{run_id}", headers=headers)
        resumed = await post(
            client, f"{BASE}/runs/{run_id}/resume", {"inputs": {"decision": "yes"}}, headers
        )
        run = await settled(run_id)
        events_url = f"{BASE}/runs/{run_id}/events"
        until_pause = await read_sse(await client.get(events_url, headers=headers))
        after_pause = await read_sse(
            await client.get(
                events_url, headers={**headers, "Last-Event-ID": until_pause[-1]["id"]}
            )
        )
        twice = await post(client, f"{BASE}/runs/{run_id}/resume", {"inputs": {}}, headers)
        return paused, detail, resumed, run, until_pause, after_pause, twice

    paused, detail, resumed, run, until_pause, after_pause, twice = run_async(go)
    assert paused.json()["data"]["status"] == "paused"
    assert paused.json()["data"]["finished_at"] is None
    body = detail.json()
    assert body["status"] == "paused"
    assert body["paused"] == {"node_id": "ask", "form": {"question": "Approve?"}}
    assert [row["node_id"] for row in body["node_executions"]] == ["start", "ask"]
    assert resumed.status_code == 202, resumed.content
    assert resumed.json() == {
        "result": "success",
        "workflow_run_id": str(run.pk),
        "status": "running",
    }
    assert (run.status, run.outputs) == ("succeeded", {"echo": "hi", "decision": "yes"})
    assert names(until_pause)[-1] == "workflow_paused"
    assert names(after_pause)[-1] == "workflow_finished"
    assert twice.status_code == 409
    assert twice.json()["message"] == "This run is not waiting for an answer."


def test_a_blocking_resume_answers_with_the_end_and_a_paused_run_can_be_stopped(
    tenant, headers, asking
):
    url = f"{BASE}/{asking.pk}/run"

    async def go():
        client = AsyncClient()
        first = (await post(client, url, {"inputs": {"q": "a"}}, headers)).json()
        second = (await post(client, url, {"inputs": {"q": "b"}}, headers)).json()
        resumed = await post(
            client,
            f"{BASE}/runs/{first['workflow_run_id']}/resume",
            {"inputs": {"decision": "no"}, "response_mode": "blocking"},
            headers,
        )
        stopped = await client.post(
            f"{BASE}/runs/{second['workflow_run_id']}/stop", headers=headers
        )
        return resumed, stopped, second["workflow_run_id"]

    resumed, stopped, second_id = run_async(go)
    assert resumed.status_code == 200, resumed.content
    data = resumed.json()["data"]
    assert (data["status"], data["outputs"]) == ("succeeded", {"echo": "a", "decision": "no"})
    assert stopped.status_code == 200
    assert stopped.json()["status"] == "stopped"
    assert WorkflowRun.dangerously_unscoped.get(pk=second_id).status == "stopped"


def test_events_of_an_old_run_are_gone_and_bad_event_ids_refused(tenant, headers):
    workflow = make_workflow(tenant)

    async def go():
        client = AsyncClient()
        done = await post(client, f"{BASE}/{workflow.pk}/run", {"inputs": {"q": "hi"}}, headers)
        run_id = done.json()["workflow_run_id"]
        url = f"{BASE}/runs/{run_id}/events"
        bad_id = await client.get(url, headers={**headers, "Last-Event-ID": "latest"})
        await streams.client().delete(streams.events_key(run_id))  # as an hour later
        gone = await client.get(url, headers=headers)
        return bad_id, gone, run_id

    bad_id, gone, run_id = run_async(go)
    assert bad_id.status_code == 400
    assert bad_id.json()["message"] == "Last-Event-ID: “latest” is not an event id of this stream."
    assert gone.status_code == 410
    assert gone.json()["code"] == "events_expired"
    assert f"GET /api/workflows/runs/{run_id}" in gone.json()["message"]


# --- The async key check answers as DRF does ---------------------------------------------


@pytest.mark.parametrize(
    "kind",
    ["none", "scheme", "unknown", "app key", "suspended"],
)
def test_the_async_endpoints_refuse_keys_as_the_drf_ones_do(client, tenant, kind):
    workflow = make_workflow(tenant)
    header = {
        "none": None,
        "scheme": "Token abc",
        "unknown": "Bearer wk-" + "x" * 32,
        "app key": f"Bearer {api_key(tenant, kind=ApiKey.Kind.APP)[1]}",
        "suspended": f"Bearer {api_key(tenant)[1]}",
    }[kind]
    if kind == "suspended":
        Tenant.objects.filter(pk=tenant.pk).update(status=Tenant.Status.SUSPENDED)
    headers = {"Authorization": header} if header else {}

    async def go():
        return await post(AsyncClient(), f"{BASE}/{workflow.pk}/run", {}, headers)

    async_answer = run_async(go)
    drf_answer = client.get(f"{BASE}/", headers=headers)
    assert async_answer.status_code == drf_answer.status_code in (401, 403)
    assert async_answer.json() == drf_answer.json()
    assert async_answer.get("WWW-Authenticate") == drf_answer.get("WWW-Authenticate")
    assert not WorkflowRun.dangerously_unscoped.exists()


def test_the_async_key_check_records_use_and_an_unserved_method_is_405(tenant):
    key, raw = api_key(tenant, role=Role.OPERATOR)
    workflow = make_workflow(tenant)

    async def go():
        return await AsyncClient().get(
            f"{BASE}/{workflow.pk}/run", headers={"Authorization": f"Bearer {raw}"}
        )

    response = run_async(go)
    assert response.status_code == 405 and response.json()["code"] == "method_not_allowed"
    key.refresh_from_db()
    assert key.last_used_at is not None
