"""The node timeline of a run page: one row per node execution in start order, its time as
a bar on the run's time axis, retries and iteration or loop rounds labelled and indented
under their container, and its data as pretty JSON."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ..models import NodeExecution

MIN_BAR_PERCENT = 0.5
MAX_DEPTH = 10


@dataclass(frozen=True)
class TimelineRow:
    """A node execution as the timeline shows it."""

    execution: NodeExecution
    depth: int
    labels: list[str]
    offset: float  # percent of the run's span before it started
    width: float  # percent of the run's span it took
    sections: list[tuple[str, str]]  # (name, pretty JSON) of its inputs, process data, outputs
    cost: str


def pretty(value: Any) -> str:
    """JSON for people: indented, Unicode as is, anything else as its text."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def cost_shown(price: Decimal, currency: str) -> str:
    """A price without trailing zeros (0.0012000000 USD → 0.0012 USD)."""
    return f"{price.normalize():f} {currency}"


def _end(execution: NodeExecution) -> dt.datetime:
    return execution.finished_at or execution.created_at + dt.timedelta(
        seconds=execution.elapsed_time
    )


def _depth(node_id: str, containers: Mapping[str, str]) -> int:
    """How many iterations or loops the node runs inside of."""
    depth, seen = 0, set()
    parent = containers.get(node_id)
    while parent and parent not in seen and depth < MAX_DEPTH:
        seen.add(parent)
        depth += 1
        parent = containers.get(parent)
    return depth


def _labels(execution: NodeExecution) -> list[str]:
    labels = []
    if execution.iteration_index is not None:
        labels.append(f"iteration round {execution.iteration_index + 1}")
    if execution.loop_index is not None:
        labels.append(f"loop round {execution.loop_index + 1}")
    if execution.retry_index:
        labels.append(f"retry {execution.retry_index}")
    return labels


def timeline(executions: Sequence[NodeExecution], run_elapsed: float) -> list[TimelineRow]:
    """The rows of a run's node executions (given in start order). A bar's width is the
    node's elapsed time over the run's; its offset comes from start times, which the
    engine's events give to the second (Dify's shape), so it is as coarse as that."""
    if not executions:
        return []
    origin = min(execution.created_at for execution in executions)
    total = max(
        run_elapsed,
        *((_end(e) - origin).total_seconds() for e in executions),
        *(e.elapsed_time for e in executions),
    )
    containers = {e.node_id: e.iteration_id or e.loop_id for e in executions}
    rows = []
    for execution in executions:
        if total > 0:
            offset = 100 * (execution.created_at - origin).total_seconds() / total
            width = 100 * execution.elapsed_time / total
        else:
            offset, width = 0.0, 0.0
        offset = min(max(offset, 0.0), 100 - MIN_BAR_PERCENT)
        width = min(max(width, MIN_BAR_PERCENT), 100 - offset)
        sections = [
            (name, pretty(value))
            for name, value in (
                ("inputs", execution.inputs),
                ("process data", execution.process_data),
                ("outputs", execution.outputs),
            )
            if value not in (None, {}, [])
        ]
        rows.append(
            TimelineRow(
                execution=execution,
                depth=_depth(execution.node_id, containers),
                labels=_labels(execution),
                offset=round(offset, 2),
                width=round(width, 2),
                sections=sections,
                cost=cost_shown(execution.total_price, execution.currency),
            )
        )
    return rows
