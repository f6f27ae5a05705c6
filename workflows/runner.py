"""Starting runs and carrying them to their end.

`run_create` checks the inputs and the graph and writes the run's row; then `run_execute`
runs it on the current event loop, feeding its events to the recorder (PostgreSQL), the
run's Redis stream and telemetry. Interactive runs (API, console) are detached asyncio tasks
of the web process (`run_detached`): they outlive the request that started them, and any web
process can stream them from Redis. Scheduled and webhook runs go to Celery (workflows.tasks)
with the same engine. A run heartbeats on its row; the watchdog fails runs whose process died.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import sync_to_async
from django.db import transaction
from django.utils import timezone

from billing import quota
from billing.models import Metric
from tenants.aio import detach
from tenants.context import tenant_context
from tenants.exceptions import Conflict, InvalidInput, NotFound
from tenants.models import Tenant, User

from . import nodes as _nodes  # noqa: F401 - registers the executors
from . import streams
from .dsl import Graph, HumanInputData, WorkflowSpec
from .engine import RunContext, RuntimeGraph, VariablePool, WorkflowRun
from .engine.events import Event, WorkflowFinished, WorkflowPaused
from .models import Workflow, WorkflowVersion
from .models import WorkflowRun as RunRow
from .nodes.human import submission
from .nodes.io import InputError, check_inputs
from .recorder import Recorder, TelemetrySink, run_finished
from .services.definitions import spec_of, start_of
from .services.versions import check_runnable

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 10.0
STOP_POLL_SECONDS = 0.25


@dataclass(frozen=True)
class Resume:
    """A person's answer to a paused run's human-input node, or (expired) none in time."""

    outputs: dict[str, Any]
    handle: str | None = None
    expired: bool = False


def run_create(
    *,
    tenant: Tenant,
    workflow: Workflow,
    inputs: Mapping[str, Any] | None = None,
    version: WorkflowVersion | None = None,
    triggered_from: str = RunRow.TriggeredFrom.DEBUGGING,
    user: User | None = None,
    end_user: str = "",
    system: Mapping[str, Any] | None = None,
    inputs_checked: bool = False,
) -> RunRow:
    """A run of the draft (or of `version`) waiting to execute; bad inputs or a graph that
    cannot run raise InvalidInput here, before anything runs. `inputs_checked` takes the
    inputs as they are: a conversation's, checked on its first turn against the form of
    that time, which a later version may have changed."""
    if workflow.tenant_id != tenant.pk or (version and version.workflow_id != workflow.pk):
        raise NotFound("No such workflow.")
    source: Workflow | WorkflowVersion = version or workflow
    check_runnable(source)
    if inputs_checked:
        checked = dict(inputs or {})
    else:
        start = start_of(source)
        try:
            checked = check_inputs(start, inputs) if start is not None else {}
        except InputError as exc:
            raise InvalidInput(str(exc)) from None
    with transaction.atomic(), tenant_context(tenant):
        quota.consume(tenant, Metric.WORKFLOW_RUNS, app_id=(system or {}).get("app_id"))
        return RunRow.objects.create(
            workflow=workflow,
            version=version,
            graph=source.graph,
            inputs={**checked, "__system": dict(system or {})} if system else checked,
            triggered_from=triggered_from,
            created_by=user if user is not None and user.is_authenticated else None,
            created_by_end_user=end_user,
        )


def _load(run_id: Any) -> tuple[RunRow, WorkflowSpec, dict[str, Any]]:
    row = RunRow.dangerously_unscoped.select_related("workflow", "version", "tenant").get(pk=run_id)
    source = row.version or row.workflow
    # The graph the run was created with (the draft may have changed since), with the
    # variables of its source.
    spec = spec_of(source, secrets="decrypted", graph=row.graph)
    environment = {v.name: v.value for v in spec.environment_variables}
    return row, spec, environment


def _system(row: RunRow, extra: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "query": "",
        "files": [],
        "user_id": row.created_by_end_user or (str(row.created_by_id or "")),
        "app_id": "",
        "workflow_id": str(row.workflow_id),
        "workflow_run_id": str(row.pk),
        "timestamp": int(row.created_at.timestamp()),
        **extra,
    }


@dataclass
class Hooks:
    """What the layer above adds to a run: services for its nodes (conversation memory,
    uploads), the conversation variables it starts with, the sink that replaces the run's
    default Redis stream (an app's own event shapes), and a call when it ends or pauses
    (given the engine, to read the variables it left, and the last event)."""

    services: Mapping[str, Any] = field(default_factory=dict)
    conversation: Mapping[str, Any] | None = None
    stream: Callable[[Event], Awaitable[None]] | None = None
    on_end: Callable[[WorkflowRun, Event | None], Awaitable[None]] | None = None


async def run_execute(
    run_id: Any, *, resume: Resume | None = None, hooks: Hooks | None = None
) -> RunRow:
    """Run (or resume) a run to its end or pause on this event loop; gives the final row."""
    hooks = hooks or Hooks()
    row, spec, environment = await sync_to_async(_load)(run_id)
    if row.status != RunRow.Status.RUNNING:
        return row  # finished already (a retried task, a second caller)
    inputs = dict(row.inputs)
    system = _system(row, inputs.pop("__system", {}))
    graph = RuntimeGraph.build(spec.graph)
    context = RunContext(
        workflow_id=str(row.workflow_id),
        run_id=str(row.pk),
        mode=row.workflow.mode,
        tenant=row.tenant,
        inputs=inputs,
        user_id=system["user_id"],
        app_id=system["app_id"] or None,
        conversation_id=system.get("conversation_id") or None,
    )
    context.services.update(hooks.services)
    if resume is None:
        conversation = {v.name: v.value for v in spec.conversation_variables}
        conversation.update(hooks.conversation or {})
        pool = VariablePool(system=system, environment=environment, conversation=conversation)
        engine = WorkflowRun(graph, context, pool)
        events = engine.events(inputs)
    else:
        saved = row.paused_state or {}
        if resume.expired:
            context.services["expired_forms"] = {saved.get("node_id")}
        answer = None if resume.expired else resume.outputs
        engine, resumer = WorkflowRun.resumed(graph, context, saved, answer, resume.handle)
        events = engine.events(resume=resumer)
    if not await sync_to_async(_claim)(row):
        return row  # another process took it first
    telemetry = TelemetrySink(row)
    sinks: list[Callable[[Event], Awaitable[None]]] = [
        Recorder(row),
        hooks.stream
        or streams.StreamSink(
            str(row.pk), {"task_id": str(row.pk), "workflow_run_id": str(row.pk)}
        ),
        telemetry,
    ]
    await sync_to_async(_beat)(row, telemetry.trace_id)
    watching = asyncio.Event()
    watcher = asyncio.create_task(_watch(row, engine, watching))
    last: Event | None = None
    try:
        async for event in events:
            last = event
            for sink in sinks:
                await sink(event)
    except Exception:
        # Weft's own failure (a sink, a bug): the run must not stay "running".
        logger.exception("workflow run %s broke off", row.pk)
        await sync_to_async(_broke_off)(row)
        telemetry.close("failed")
        raise
    finally:
        # Ended by the event, not cancelled: a cancellation landing in a Redis call can be
        # lost there, and the run would then wait for its watcher forever.
        watching.set()
        await asyncio.gather(watcher, return_exceptions=True)
    if isinstance(last, WorkflowFinished | WorkflowPaused):
        await sync_to_async(run_finished)(row, last, engine.paused_state)
    if hooks.on_end is not None:
        await hooks.on_end(engine, last)
    return row


def _broke_off(row: RunRow) -> None:
    RunRow.dangerously_unscoped.filter(pk=row.pk, status=RunRow.Status.RUNNING).update(
        status=RunRow.Status.FAILED,
        error="The run broke off because of an internal error; it has been logged.",
        finished_at=timezone.now(),
        heartbeat_at=None,
    )


def _claim(row: RunRow) -> bool:
    """Take the run for this process: a run never executes twice, however many tasks or
    callers try (its nodes may have had effects)."""
    return bool(
        RunRow.dangerously_unscoped.filter(
            pk=row.pk, status=RunRow.Status.RUNNING, heartbeat_at__isnull=True
        ).update(heartbeat_at=timezone.now())
    )


def _beat(row: RunRow, trace_id: str) -> None:
    now = timezone.now()
    RunRow.dangerously_unscoped.filter(pk=row.pk).update(heartbeat_at=now, trace_id=trace_id)


async def _watch(row: RunRow, engine: WorkflowRun, done: asyncio.Event) -> None:
    """Heartbeat on the row, and stop the run when someone asks (through Redis), until
    `done` is set."""
    beat = 0.0
    while not done.is_set():
        try:
            await asyncio.wait_for(done.wait(), STOP_POLL_SECONDS)
            return
        except TimeoutError:
            beat += STOP_POLL_SECONDS
        try:
            if await streams.stop_requested(str(row.pk)):
                engine.stop()
                return
            if beat >= HEARTBEAT_SECONDS:
                beat = 0.0
                await sync_to_async(_beat)(row, row.trace_id)
        except Exception:  # a Redis or database hiccup must not end the run
            logger.warning("workflow run %s: watcher check failed", row.pk, exc_info=True)


def run_detached(
    run_id: Any, *, resume: Resume | None = None, hooks: Hooks | None = None
) -> asyncio.Task:
    """Run on this process's event loop, beyond the request that started it."""
    return detach(run_execute(run_id, resume=resume, hooks=hooks), what=f"workflow run {run_id}")


async def run_stop(*, tenant: Tenant, run: RunRow) -> None:
    """Ask the run to stop, wherever it runs."""
    if run.tenant_id != tenant.pk:
        raise NotFound("No such run.")
    if run.status == RunRow.Status.PAUSED:
        await sync_to_async(_stop_paused)(run)
        return
    await streams.request_stop(str(run.pk))


def _stop_paused(run: RunRow) -> None:
    # Nothing is running: the run ends here.
    now = timezone.now()
    RunRow.dangerously_unscoped.filter(pk=run.pk, status=RunRow.Status.PAUSED).update(
        status=RunRow.Status.STOPPED, paused_state=None, finished_at=now
    )


def run_resume_prepare(*, tenant: Tenant, run: RunRow, outputs: Mapping[str, Any]) -> Resume:
    """Check a person's answer to a paused run (the form's fields by name, and `action`, the
    chosen action's id) and mark it running again; then pass the Resume to run_execute,
    run_detached or the resume task."""
    if run.tenant_id != tenant.pk:
        raise NotFound("No such run.")
    if not isinstance(outputs, Mapping):
        raise InvalidInput("inputs: expected an object.")
    with transaction.atomic():
        current = RunRow.dangerously_unscoped.select_for_update().get(pk=run.pk)
        if current.status != RunRow.Status.PAUSED or not current.paused_state:
            raise Conflict("This run is not waiting for an answer.")
        node = Graph.model_validate(current.graph).node(current.paused_state["node_id"])
        if node is None or not isinstance(node.data, HumanInputData):
            raise Conflict("This run is not waiting for an answer.")
        values = {k: v for k, v in outputs.items() if k != "action"}
        action = outputs.get("action")
        try:
            answer, handle = submission(node.data, values, str(action) if action else None)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
        current.status = RunRow.Status.RUNNING
        current.save(update_fields=["status"])
    return Resume(outputs=answer, handle=handle)
