"""Workflow services and runs against the real database and Redis: drafts and secrets,
publish / diff / rollback, Dify DSL import with model mapping, runs recorded and streamed,
stop, the watchdog."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

import pytest
from asgiref.sync import async_to_sync
from django.utils import timezone

from providers import crypto
from tenants.context import tenant_context
from tenants.exceptions import Conflict, InvalidInput, NotFound
from workflows import services, streams
from workflows.dsl import WorkflowSpec
from workflows.engine import REGISTRY, NodeContext, NodeExecutor, NodeResult
from workflows.models import NodeExecution, WorkflowRun, WorkflowVersion
from workflows.runner import run_create, run_execute, run_stop
from workflows.tasks import fail_orphaned_runs

from .conftest import llm_data, make_document, make_edge, make_node

pytestmark = pytest.mark.django_db


def spec(*, extra_node: dict | None = None, env: list | None = None) -> WorkflowSpec:
    nodes = [
        make_node(
            "start",
            "start",
            variables=[{"variable": "q", "label": "Q", "type": "text-input", "required": True}],
        ),
        make_node("end", "end", outputs=[{"variable": "echo", "value_selector": ["start", "q"]}]),
    ]
    edges = [make_edge("start", "end")]
    if extra_node is not None:
        nodes.append(extra_node)
    return WorkflowSpec.model_validate(
        {"graph": {"nodes": nodes, "edges": edges}, "environment_variables": env or []}
    )


SECRET = [{"name": "api_key", "value_type": "secret", "value": "sk-very-secret-value-1234"}]


def test_secrets_are_encrypted_at_rest_masked_when_shown_and_kept_when_sent_back(tenant):
    workflow = services.workflow_create(tenant=tenant, name="W", spec=spec(env=SECRET))
    stored = workflow.environment_variables[0]["value"]
    assert "sk-very" not in json.dumps(workflow.environment_variables)
    assert crypto.decrypt(stored) == "sk-very-secret-value-1234"
    shown = services.spec_of(workflow).environment_variables[0].value
    assert shown.endswith("1234") and "very" not in shown
    # The editor sends the masked value back: the secret stays.
    again = spec(env=[{**SECRET[0], "value": shown}])
    workflow = services.workflow_update(tenant=tenant, workflow=workflow, spec=again)
    assert workflow.environment_variables[0]["value"] == stored
    exported = services.workflow_export(workflow)
    assert "sk-very" not in exported
    assert "sk-very-secret-value-1234" in services.workflow_export(workflow, include_secrets=True)


def test_names_and_concurrent_edits(tenant, other_tenant):
    workflow = services.workflow_create(tenant=tenant, name="Same", spec=spec())
    with pytest.raises(Conflict):
        services.workflow_create(tenant=tenant, name="Same")
    services.workflow_create(tenant=other_tenant, name="Same")  # names are per tenant
    with pytest.raises(InvalidInput):
        services.workflow_create(tenant=tenant, name="  ")
    seen = workflow.draft_checksum
    services.workflow_update(tenant=tenant, workflow=workflow, spec=spec(), expected_checksum=seen)
    changed = spec(extra_node=make_node("lonely", "answer", answer="x"))
    services.workflow_update(tenant=tenant, workflow=workflow, spec=changed)
    with pytest.raises(Conflict, match="someone else"):
        services.workflow_update(
            tenant=tenant, workflow=workflow, spec=spec(), expected_checksum=seen
        )
    with pytest.raises(NotFound):
        services.workflow_update(tenant=other_tenant, workflow=workflow, name="Mine")


def test_publish_validates_numbers_diffs_and_rolls_back(tenant):
    broken = WorkflowSpec.model_validate(
        {"graph": {"nodes": [make_node("end", "end", outputs=[])], "edges": []}}
    )
    workflow = services.workflow_create(tenant=tenant, name="W", spec=broken)
    with pytest.raises(services.WorkflowInvalid) as caught:
        services.workflow_publish(tenant=tenant, workflow=workflow)
    assert any(error.code for error in caught.value.errors)
    assert "start" in str(caught.value)

    services.workflow_update(tenant=tenant, workflow=workflow, spec=spec())
    v1 = services.workflow_publish(tenant=tenant, workflow=workflow, note="first")
    assert v1.number == 1
    assert services.workflow_publish(tenant=tenant, workflow=workflow).pk == v1.pk

    bigger = spec()
    bigger.graph.nodes[1].data.outputs[0].variable = "renamed"
    workflow.refresh_from_db()
    services.workflow_update(tenant=tenant, workflow=workflow, spec=bigger)
    v2 = services.workflow_publish(tenant=tenant, workflow=workflow)
    assert v2.number == 2
    diff = services.version_diff(v1, v2)
    assert [change.node.node_id for change in diff.nodes_changed] == ["end"]
    assert "renamed" in diff.render()

    v3 = services.workflow_rollback(tenant=tenant, workflow=workflow, version=v1)
    assert (v3.number, v3.restored_from) == (3, 1)
    assert services.version_diff(v1, v3).is_empty()
    workflow.refresh_from_db()
    assert workflow.graph == v1.graph and workflow.draft_checksum == v3.checksum
    with pytest.raises(Exception, match="cannot be changed"):
        v1.note = "edited"
        v1.save()
    with tenant_context(tenant):
        assert list(WorkflowVersion.objects.values_list("number", flat=True)) == [3, 2, 1]


def test_import_maps_models_the_tenant_lacks_and_export_round_trips(tenant):
    nodes = [
        make_node("start", "start", variables=[]),
        make_node("llm", "llm", **llm_data("Say hi")),
        make_node("end", "end", outputs=[{"variable": "text", "value_selector": ["llm", "text"]}]),
    ]
    document = make_document(nodes, [make_edge("start", "llm"), make_edge("llm", "end")])
    import yaml

    result = services.workflow_import(tenant=tenant, content=yaml.safe_dump(document))
    mapped = [w for w in result.report.warnings if w.code == "model_mapped"]
    assert [(w.node_id, w.field) for w in mapped] == [("llm", "data.model")]
    assert "openai/gpt-4o" in mapped[0].message
    model = services.spec_of(result.workflow).graph.node("llm").data.model
    assert (model.provider, model.name) == ("offline", "weft-offline-chat")
    exported = services.workflow_export(result.workflow)
    again = services.workflow_import(tenant=tenant, content=exported, name="Again")
    assert services.workflow_export(again.workflow).replace("Again", "Test") == exported.replace(
        result.workflow.name, "Test"
    )
    assert not [w for w in again.report.warnings if w.code == "model_mapped"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("workflow: [unclosed", "line"),
        ("version: '1.0.0'\nkind: app\napp: {mode: workflow}\nworkflow: {}", "1.0.0"),
        ("kind: app\napp: {mode: chat, name: c}\nmodel_config: {}", "chat"),
    ],
)
def test_import_refuses_bad_files_clearly(tenant, content, message):
    with pytest.raises(InvalidInput, match=message):
        services.workflow_import(tenant=tenant, content=content)


def test_run_is_recorded_in_batches_and_streamed_in_difys_shape(
    tenant, django_assert_max_num_queries
):
    workflow = services.workflow_create(tenant=tenant, name="W", spec=spec())
    with pytest.raises(InvalidInput, match=r"inputs\.q is required"):
        run_create(tenant=tenant, workflow=workflow, inputs={})
    run = run_create(tenant=tenant, workflow=workflow, inputs={"q": "hi", "extra": 1})
    assert run.inputs == {"q": "hi"}
    # Load, claim, mark started, one batch of node rows, the run's end.
    with django_assert_max_num_queries(7):
        row = async_to_sync(run_execute)(run.pk)
    assert row.status == "succeeded"
    run.refresh_from_db()
    assert (run.status, run.outputs, run.total_steps) == ("succeeded", {"echo": "hi"}, 2)
    assert run.finished_at is not None and run.heartbeat_at is None
    with tenant_context(tenant):
        rows = list(NodeExecution.objects.filter(run=run).order_by("index"))
    assert [(r.node_id, r.status) for r in rows] == [("start", "succeeded"), ("end", "succeeded")]
    assert rows[1].outputs == {"echo": "hi"} and rows[1].predecessor_node_id == "start"

    async def read_all():
        return [body async for _, body in streams.read(str(run.pk)) if body]

    bodies = [json.loads(b) for b in async_to_sync(read_all)()]
    assert [b["event"] for b in bodies] == [
        "workflow_started",
        "node_started",
        "node_finished",
        "node_started",
        "node_finished",
        "workflow_finished",
    ]
    assert all(b["task_id"] == str(run.pk) == b["workflow_run_id"] for b in bodies)
    assert bodies[-1]["data"]["outputs"] == {"echo": "hi"}
    assert bodies[2]["data"]["execution_metadata"]["total_tokens"] == 0
    # Running it again does nothing: the run is finished.
    assert async_to_sync(run_execute)(run.pk).status == "succeeded"
    with tenant_context(tenant):
        assert NodeExecution.objects.filter(run=run).count() == 2


class SlowEnd(NodeExecutor):
    types = ("end",)

    async def run(self, ctx: NodeContext) -> NodeResult:
        await asyncio.sleep(30)
        return NodeResult()


def test_stop_reaches_the_run_through_redis(tenant, monkeypatch):
    monkeypatch.setitem(REGISTRY, "end", SlowEnd)
    workflow = services.workflow_create(tenant=tenant, name="W", spec=spec())
    run = run_create(tenant=tenant, workflow=workflow, inputs={"q": "hi"})

    async def run_and_stop():
        task = asyncio.create_task(run_execute(run.pk))
        await asyncio.sleep(0.5)
        await run_stop(tenant=tenant, run=run)
        return await asyncio.wait_for(task, 5)

    assert async_to_sync(run_and_stop)().status == "stopped"
    with tenant_context(tenant):
        end = NodeExecution.objects.get(run=run, node_id="end")
    assert end.status == "stopped"


def test_watchdog_fails_orphaned_runs_only(tenant):
    workflow = services.workflow_create(tenant=tenant, name="W", spec=spec())
    old = timezone.now() - dt.timedelta(minutes=5)
    orphan = run_create(tenant=tenant, workflow=workflow, inputs={"q": "a"})
    alive = run_create(tenant=tenant, workflow=workflow, inputs={"q": "b"})
    WorkflowRun.dangerously_unscoped.filter(pk=orphan.pk).update(heartbeat_at=old)
    WorkflowRun.dangerously_unscoped.filter(pk=alive.pk).update(heartbeat_at=timezone.now())
    assert fail_orphaned_runs() == 1
    orphan.refresh_from_db()
    alive.refresh_from_db()
    assert orphan.status == "failed" and "stopped before it finished" in orphan.error
    assert alive.status == "running"


def test_publish_refuses_nodes_of_the_other_mode(tenant):
    chat = services.workflow_create(tenant=tenant, name="Chat", mode="advanced-chat", spec=spec())
    with pytest.raises(services.WorkflowInvalid) as caught:
        services.workflow_publish(tenant=tenant, workflow=chat)
    assert [(e.code, e.node_id) for e in caught.value.errors] == [("wrong_mode", "end")]
    with pytest.raises(InvalidInput, match="end nodes belong in workflows"):
        run_create(tenant=tenant, workflow=chat, inputs={"q": "x"})


def human_spec() -> WorkflowSpec:
    ask = make_node(
        "ask",
        "human-input",
        form_content="Approve {{#start.q#}}?",
        inputs=[{"type": "paragraph", "output_variable_name": "comment"}],
        user_actions=[{"id": "approve", "title": "Approve"}, {"id": "reject", "title": "No"}],
        error_strategy="fail-branch",
    )
    nodes = [
        make_node(
            "start", "start", variables=[{"variable": "q", "label": "Q", "type": "text-input"}]
        ),
        ask,
        make_node(
            "yes", "end", outputs=[{"variable": "said", "value_selector": ["ask", "comment"]}]
        ),
        make_node(
            "no", "end", outputs=[{"variable": "no", "value_selector": ["ask", "action_id"]}]
        ),
        make_node(
            "late", "end", outputs=[{"variable": "why", "value_selector": ["ask", "error_type"]}]
        ),
    ]
    edges = [
        make_edge("start", "ask"),
        make_edge("ask", "yes", "approve"),
        make_edge("ask", "no", "reject"),
        make_edge("ask", "late", "fail-branch"),
    ]
    return WorkflowSpec.model_validate({"graph": {"nodes": nodes, "edges": edges}})


def test_human_input_pauses_the_run_and_the_answer_resumes_it(tenant):
    from workflows.runner import run_resume_prepare

    workflow = services.workflow_create(tenant=tenant, name="H", spec=human_spec())
    run = run_create(tenant=tenant, workflow=workflow, inputs={"q": "the budget"})
    assert async_to_sync(run_execute)(run.pk).status == "paused"
    run.refresh_from_db()
    assert run.paused_state["form"]["form_content"] == "Approve the budget?"
    with pytest.raises(InvalidInput, match="approve, reject"):
        run_resume_prepare(tenant=tenant, run=run, outputs={"comment": "ok", "action": "maybe"})
    resume = run_resume_prepare(
        tenant=tenant, run=run, outputs={"comment": "fine by me", "action": "approve"}
    )
    with pytest.raises(Conflict):
        run_resume_prepare(tenant=tenant, run=run, outputs={"action": "approve"})
    row = async_to_sync(run_execute)(run.pk, resume=resume)
    assert (row.status, row.outputs) == ("succeeded", {"said": "fine by me"})
    assert row.total_steps == 3


def test_a_form_nobody_answers_in_time_fails_the_node_into_its_fail_branch(tenant, monkeypatch):
    from workflows import tasks

    workflow = services.workflow_create(tenant=tenant, name="H", spec=human_spec())
    run = run_create(tenant=tenant, workflow=workflow, inputs={"q": "x"})
    async_to_sync(run_execute)(run.pk)
    run.refresh_from_db()
    state = run.paused_state
    state["form"]["expires_at"] = 1
    WorkflowRun.dangerously_unscoped.filter(pk=run.pk).update(paused_state=state)
    queued = []
    monkeypatch.setattr(tasks.resume_workflow, "delay", lambda *args: queued.append(args))
    assert tasks.expire_human_input() == 1
    assert tasks.expire_human_input() == 0  # taken once only
    assert tasks.resume_workflow(*queued[0]) == "partial-succeeded"
    run.refresh_from_db()
    assert run.outputs == {"why": "timeout"}


def test_a_task_closes_the_redis_client_its_loop_opened():
    import asyncio

    from workflows import streams

    async def ping():
        loop = asyncio.get_running_loop()
        assert await streams.client().ping()
        return loop

    loop = streams.run_sync(ping)
    assert loop not in streams._clients
