"""Sinks that keep a run: its node executions in PostgreSQL, written in batches (never one
round trip per event), and OpenTelemetry spans for the run and each node."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from decimal import Decimal
from typing import Any

from asgiref.sync import sync_to_async
from django.db import connection, transaction
from django.utils import timezone
from opentelemetry import trace
from psycopg.types.json import Jsonb

from .engine.events import (
    Event,
    NodeEvent,
    NodeFinished,
    NodeStarted,
    WorkflowFinished,
    WorkflowPaused,
)
from .models import NodeExecution, WorkflowRun

BATCH_SIZE = 100
FLUSH_SECONDS = 0.25
_UPDATED = [
    "inputs",
    "process_data",
    "outputs",
    "status",
    "error",
    "error_type",
    "elapsed_time",
    "total_tokens",
    "total_price",
    "currency",
    "retry_index",
    "finished_at",
]


def _when(timestamp: int | None) -> dt.datetime:
    return dt.datetime.fromtimestamp(timestamp, tz=dt.UTC) if timestamp else timezone.now()


def _json(value: Any) -> Any:
    """Values as PostgreSQL's JSON keeps them (Decimal, dates, files … as JSON types)."""
    return None if value is None else json.loads(json.dumps(value, default=str))


def _jsonb(value: Any) -> Jsonb | None:
    return None if value is None else Jsonb(value, dumps=_dumps)


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)


class Recorder:
    """Writes node executions in batches and the run's row when it ends."""

    def __init__(self, run: WorkflowRun) -> None:
        self.run = run
        self.pending: dict[str, dict[str, Any]] = {}
        self.flushed_at = time.monotonic()

    async def __call__(self, event: Event) -> None:
        if isinstance(event, NodeEvent):
            self._node(event)
            if (
                len(self.pending) >= BATCH_SIZE
                or time.monotonic() - self.flushed_at >= FLUSH_SECONDS
            ):
                await self.flush()
        elif isinstance(event, WorkflowFinished | WorkflowPaused):
            await self.flush()

    def _node(self, event: NodeEvent) -> None:
        row = self.pending.get(event.id)
        if row is None:
            row = self.pending[event.id] = {
                "id": uuid.uuid4(),
                "tenant_id": self.run.tenant_id,
                "run_id": self.run.pk,
                "execution_id": uuid.UUID(event.id),
                "node_id": event.node_id,
                "node_type": event.node_type,
                "title": event.title[:255],
                "index": event.index,
                "predecessor_node_id": event.predecessor_node_id or "",
                "inputs": None,
                "process_data": None,
                "outputs": None,
                "status": NodeExecution.Status.RUNNING.value,
                "error": "",
                "error_type": "",
                "elapsed_time": 0.0,
                "total_tokens": 0,
                "total_price": Decimal(0),
                "currency": "USD",
                "retry_index": 0,
                "iteration_id": event.iteration_id or "",
                "iteration_index": event.iteration_index,
                "loop_id": event.loop_id or "",
                "loop_index": event.loop_index,
                "created_at": _when(event.created_at),
                "finished_at": None,
            }
        if isinstance(event, NodeStarted):
            return
        assert isinstance(event, NodeFinished)  # noqa: S101 - the only other node events
        row |= {
            "inputs": _jsonb(event.inputs),
            "process_data": _jsonb(event.process_data),
            "outputs": _jsonb(event.outputs),
            "status": event.status,
            "error": event.error or "",
            "error_type": event.error_type or "",
            "elapsed_time": event.elapsed_time,
            "total_tokens": event.total_tokens,
            "total_price": event.total_price,
            "currency": event.currency,
            "retry_index": event.retry_index,
            "finished_at": _when(event.finished_at),
        }

    async def flush(self) -> None:
        rows, self.pending = list(self.pending.values()), {}
        self.flushed_at = time.monotonic()
        if rows:
            await sync_to_async(_write)(rows)


_COLUMNS = [
    "id",
    "tenant_id",
    "run_id",
    "execution_id",
    "node_id",
    "node_type",
    "title",
    "index",
    "predecessor_node_id",
    "iteration_id",
    "iteration_index",
    "loop_id",
    "loop_index",
    "created_at",
    *_UPDATED,
]
# Raw SQL: the ORM's bulk insert spent most of a run's recording time preparing values.
# A row written at node_started is completed by its node_finished in a later batch.
_QUOTED = ", ".join(f'"{column}"' for column in _COLUMNS)
_UPSERT = (
    f"INSERT INTO {NodeExecution._meta.db_table} ({_QUOTED}) "  # noqa: S608 - constant names
    f"VALUES ({', '.join(['%s'] * len(_COLUMNS))}) "
    "ON CONFLICT (tenant_id, run_id, execution_id) DO UPDATE SET "
    + ", ".join(f'"{column}" = EXCLUDED."{column}"' for column in _UPDATED)
)


def _write(rows: list[dict[str, Any]]) -> None:
    with connection.cursor() as cursor:
        cursor.executemany(_UPSERT, [[row[c] for c in _COLUMNS] for row in rows])


def run_finished(run: WorkflowRun, event: WorkflowFinished | WorkflowPaused, paused_state) -> None:
    """Write the run's end (or pause) on its row."""
    fields: dict[str, Any] = {"heartbeat_at": None}
    if isinstance(event, WorkflowFinished):
        fields |= {
            "status": event.status,
            "outputs": _json(event.outputs) or {},
            "error": event.error or "",
            "elapsed_time": event.elapsed_time,
            "total_steps": event.total_steps,
            "total_tokens": event.total_tokens,
            "total_price": Decimal(event.total_price),
            "currency": event.currency,
            "exceptions_count": event.exceptions_count,
            "finished_at": _when(event.finished_at),
            "paused_state": None,
        }
    else:
        fields |= {
            "status": WorkflowRun.Status.PAUSED,
            "paused_state": _json(paused_state),
            "total_steps": paused_state["steps"],
            "total_tokens": paused_state["tokens"],
        }
    with transaction.atomic():
        WorkflowRun.dangerously_unscoped.filter(pk=run.pk).update(**fields)
    for name, value in fields.items():
        setattr(run, name, value)


_tracer = trace.get_tracer("weft.workflows")


class TelemetrySink:
    """A span per run and per node run (no-ops unless an OpenTelemetry SDK is set up)."""

    def __init__(self, run: WorkflowRun) -> None:
        self.run = run
        self.root = _tracer.start_span(
            "workflow.run",
            attributes={"weft.run_id": str(run.pk), "weft.workflow_id": str(run.workflow_id)},
        )
        self.nodes: dict[str, trace.Span] = {}
        context = self.root.get_span_context()
        self.trace_id = f"{context.trace_id:032x}" if context.is_valid else ""

    async def __call__(self, event: Event) -> None:
        if isinstance(event, NodeStarted):
            parent = trace.set_span_in_context(self.root)
            self.nodes[event.id] = _tracer.start_span(
                f"node.{event.node_type}",
                context=parent,
                attributes={"weft.node_id": event.node_id, "weft.title": event.title},
            )
        elif isinstance(event, NodeFinished) and event.id in self.nodes:
            span = self.nodes.pop(event.id)
            span.set_attribute("weft.status", event.status)
            span.set_attribute("weft.tokens", event.total_tokens)
            if event.error:
                span.set_status(trace.StatusCode.ERROR, event.error)
            span.end()
        elif isinstance(event, WorkflowFinished | WorkflowPaused):
            self.close(getattr(event, "status", "paused"))

    def close(self, status: str) -> None:
        for span in self.nodes.values():
            span.end()
        self.nodes.clear()
        if self.root.is_recording():
            self.root.set_attribute("weft.status", status)
        self.root.end()
