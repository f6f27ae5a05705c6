"""Iteration and loop: containers that run their body (the nodes whose parent they are)
through the engine, once per item or round; and the no-op start and end nodes of bodies.

An iteration round runs in a child of the container's pool holding `[iteration_id, "item"]`
and `[iteration_id, "index"]`, so parallel rounds never see each other's values. A loop runs
every round in one child pool holding its loop variables, `[loop_id, label]`, so that what an
assigner in round n writes is there in round n + 1, and for the break conditions.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from ..dsl import IterationData, LoopData
from ..dsl.nodes_flow import LoopVariable
from ..engine.engine import BodyOutcome
from ..engine.events import (
    IterationCompleted,
    IterationNext,
    IterationStarted,
    LoopCompleted,
    LoopNext,
    LoopStarted,
)
from ..engine.executor import NodeContext, NodeExecutor, NodeFailed, NodeResult, register
from ..engine.pool import MISSING, VariablePool
from .conditions import holds_or_false
from .data import coerce_constant

# Dify's LOOP_NODE_MAX_COUNT.
LOOP_MAX_COUNT = 100


def _ids(ctx: NodeContext) -> dict[str, Any]:
    """The fields every iteration and loop event carries; Dify's `id` is the node's id."""
    node = ctx.node
    return {
        "id": node.id,
        "node_id": node.id,
        "node_type": node.type,
        "title": node.title,
        "created_at": int(time.time()),
    }


@dataclass(slots=True)
class _Failed:
    """A round whose body failed."""

    outcome: BodyOutcome


def flatten(outputs: list[Any]) -> list[Any]:
    """Dify's flatten_output: when every round that gave something gave a list, one list of
    their items (rounds that gave None drop out); otherwise the outputs as they are."""
    given = [output for output in outputs if output is not None]
    if not given or not all(isinstance(output, list) for output in given):
        return outputs
    return [item for output in given for item in output]


@register
class IterationExecutor(NodeExecutor):
    """Runs the body once per item of a list, in order or up to `parallel_nums` rounds at
    once; output `output`, the list of what `output_selector` held after each round."""

    types = ("iteration",)
    data: IterationData

    async def run(self, ctx: NodeContext) -> NodeResult:
        data = self.data
        where = ".".join(data.iterator_selector) or "(not set)"
        items = ctx.get(data.iterator_selector, MISSING)
        if items is MISSING:
            raise NodeFailed(
                f"The list to iterate over, {where}, was not found.",
                error_type="IteratorVariableNotFound",
            )
        if items is None or items == []:
            return NodeResult(inputs={"iterator_selector": []}, outputs={"output": []})
        if not isinstance(items, list):
            raise NodeFailed(
                f"Iteration needs a list; {where} is a {type(items).__name__}.",
                error_type="InvalidIteratorValue",
            )
        run = ctx.scope.run
        inputs = {"iterator_selector": items}
        started, tokens = time.perf_counter(), run.tokens
        run.emit(
            IterationStarted(**_ids(ctx), inputs=inputs, metadata={"iteration_length": len(items)})
        )

        def completed(**fields: Any) -> IterationCompleted:
            return IterationCompleted(
                **_ids(ctx),
                steps=len(items),
                elapsed_time=time.perf_counter() - started,
                total_tokens=run.tokens - tokens,
                **fields,
            )

        try:
            if data.is_parallel:
                rounds = await self._parallel(ctx, items)
            else:
                rounds = [await self._round(ctx, index, item) for index, item in enumerate(items)]
        except NodeFailed as exc:
            run.emit(completed(status="failed", error=str(exc)))
            raise
        if data.error_handle_mode == "remove-abnormal-output":
            outputs = [value for value in rounds if not isinstance(value, _Failed)]
        else:
            outputs = [None if isinstance(value, _Failed) else value for value in rounds]
        result = {"output": flatten(outputs) if data.flatten_output else outputs}
        run.emit(completed(outputs=result))
        return NodeResult(inputs=inputs, outputs=result)

    async def _round(self, ctx: NodeContext, index: int, item: Any) -> Any:
        """One run of the body; its output, or _Failed (NodeFailed when that ends it all)."""
        node_id = self.node.id
        ctx.scope.run.emit(IterationNext(**_ids(ctx), index=index))
        pool = ctx.pool.child()
        pool.set([node_id, "item"], item)
        pool.set([node_id, "index"], index)
        outcome = await ctx.run_body(pool=pool, iteration_index=index)
        if outcome.ok:
            return pool.get(self.data.output_selector) if self.data.output_selector else None
        if self.data.error_handle_mode == "terminated":
            raise NodeFailed(
                f"Round {index} failed: {outcome.error}",
                error_type=outcome.error_type or "IterationFailed",
            )
        return _Failed(outcome)

    async def _parallel(self, ctx: NodeContext, items: list[Any]) -> list[Any]:
        """Rounds side by side, at most parallel_nums at once, results in item order; the
        first failure (in terminated mode) cancels the rest."""
        slots = asyncio.Semaphore(self.data.parallel_nums)

        async def bounded(index: int, item: Any) -> Any:
            async with slots:
                return await self._round(ctx, index, item)

        tasks = [asyncio.create_task(bounded(index, item)) for index, item in enumerate(items)]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return [task.result() for task in tasks]


@register
class LoopExecutor(NodeExecutor):
    """Runs the body again and again until the break conditions hold (checked before the
    first round and after each), a loop-end node ran, or loop_count rounds ran. Outputs the
    loop variables' final values and `loop_round`, the number of rounds run."""

    types = ("loop",)
    data: LoopData

    async def run(self, ctx: NodeContext) -> NodeResult:
        data = self.data
        if data.loop_count > LOOP_MAX_COUNT:
            raise NodeFailed(
                f"A loop runs at most {LOOP_MAX_COUNT} rounds; this one asks for "
                f"{data.loop_count}.",
                error_type="LoopCountExceeded",
            )
        pool = ctx.pool.child()
        inputs: dict[str, Any] = {"loop_count": data.loop_count}
        for variable in data.loop_variables or []:
            value = self._initial(ctx, variable)
            pool.set([self.node.id, variable.label], value)
            inputs[variable.label] = value
        run = ctx.scope.run
        started, tokens = time.perf_counter(), run.tokens
        run.emit(LoopStarted(**_ids(ctx), inputs=inputs, metadata={"loop_length": data.loop_count}))
        variable_map: dict[str, dict[str, Any]] = {}
        # Dify checks the break conditions before the first round too.
        reason = "loop_break" if self._should_break(pool) else "loop_completed"
        rounds, budget = 0, 0 if reason == "loop_break" else data.loop_count
        for index in range(budget):
            outcome = await ctx.run_body(pool=pool, loop_index=index)
            if not outcome.ok:
                error = f"Round {index} failed: {outcome.error}"
                run.emit(
                    LoopCompleted(
                        **_ids(ctx),
                        status="failed",
                        error=error,
                        steps=index + 1,
                        elapsed_time=time.perf_counter() - started,
                        total_tokens=run.tokens - tokens,
                    )
                )
                raise NodeFailed(error, error_type=outcome.error_type or "LoopFailed")
            rounds = index + 1
            variable_map[str(index)] = self._values(pool)
            if outcome.loop_ended:
                reason = "loop_end"
                break
            if self._should_break(pool):
                reason = "loop_break"
                break
            if rounds < data.loop_count:
                run.emit(LoopNext(**_ids(ctx), index=rounds))
        outputs = {**self._values(pool), "loop_round": rounds}
        run.emit(
            LoopCompleted(
                **_ids(ctx),
                outputs=outputs,
                steps=rounds,
                elapsed_time=time.perf_counter() - started,
                total_tokens=run.tokens - tokens,
            )
        )
        return NodeResult(
            inputs=inputs,
            outputs=outputs,
            process_data={"completed_reason": reason, "loop_variable_map": variable_map},
        )

    def _initial(self, ctx: NodeContext, variable: LoopVariable) -> Any:
        """A loop variable's first value: a constant of its type, or a variable's value."""
        if variable.value_type == "variable":
            selector = variable.value if isinstance(variable.value, list) else []
            value = ctx.get(selector, MISSING) if selector else MISSING
            if value is MISSING:
                raise NodeFailed(
                    f"Loop variable {variable.label}: {'.'.join(selector) or 'no variable'} "
                    "was not found.",
                    error_type="InvalidLoopVariable",
                )
            return value
        if variable.value is None:
            raise NodeFailed(
                f"Loop variable {variable.label} has no value.", error_type="InvalidLoopVariable"
            )
        try:
            return coerce_constant(variable.var_type, variable.value)
        except ValueError as exc:
            raise NodeFailed(
                f"Loop variable {variable.label}: {exc}", error_type="InvalidLoopVariable"
            ) from None

    def _should_break(self, pool: VariablePool) -> bool:
        data = self.data
        return bool(data.break_conditions) and holds_or_false(
            pool, data.break_conditions, data.logical_operator
        )

    def _values(self, pool: VariablePool) -> dict[str, Any]:
        return {v.label: pool.get([self.node.id, v.label]) for v in self.data.loop_variables or []}


@register
class BodyMarkerExecutor(NodeExecutor):
    """Iteration-start, loop-start and loop-end do nothing themselves: the engine starts a
    body at its start node and ends a loop after a round in which loop-end ran."""

    types = ("iteration-start", "loop-start", "loop-end")

    async def run(self, ctx: NodeContext) -> NodeResult:
        return NodeResult()
