"""Running small graphs in tests: build nodes with `make_node`/`make_edge` (conftest), then
`execute(nodes, edges, inputs)` gives the finished run and every event it emitted."""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync

import workflows.nodes  # noqa: F401 - registers every executor
from workflows.dsl import Graph
from workflows.engine import RunContext, RuntimeGraph, VariablePool, WorkflowRun
from workflows.engine.events import NodeFinished

from .conftest import make_node


def start(*names: str) -> dict:
    variables = [{"variable": n, "label": n, "type": "text-input"} for n in names]
    return make_node("start", "start", variables=variables)


def end(**outputs: list[str]) -> dict:
    return make_node(
        "end",
        "end",
        outputs=[{"variable": k, "value_selector": v} for k, v in outputs.items()],
    )


def execute(
    nodes: list[dict],
    edges: list[dict],
    inputs: dict | None = None,
    *,
    mode: str = "workflow",
    during=None,
    **context: Any,
) -> tuple[WorkflowRun, list]:
    graph = RuntimeGraph.build(Graph.model_validate({"nodes": nodes, "edges": edges}))
    run = WorkflowRun(
        graph,
        RunContext(workflow_id="wf", inputs=inputs or {}, mode=mode, **context),
        VariablePool(system={"query": "hello"}, environment={}, conversation={}),
    )

    async def collect() -> list:
        events = []
        async for event in run.events(inputs):
            events.append(event)
            if during is not None:
                during(run, event)
        return events

    # async_to_sync, not asyncio.run: the ORM calls of nodes (through sync_to_async) then run
    # on this thread, inside the test's transaction.
    return run, async_to_sync(collect)()


def finished(events: list) -> dict[str, NodeFinished]:
    return {e.node_id: e for e in events if isinstance(e, NodeFinished) and type(e) is NodeFinished}
