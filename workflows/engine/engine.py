"""The graph engine: runs a workflow's nodes as asyncio tasks, every ready node at once.

A node is ready when each edge into it has been decided and at least one was taken; when all
were skipped it is skipped too, and so are the edges leaving it. A branch node (if-else,
classifier, a node with a fail branch) takes the edges of the handle it chose and skips the
others. Events go to one queue that `WorkflowRun.events()` yields from, in the order things
happened; sinks (database, Redis stream, telemetry) consume them.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

from ..dsl.base import FAIL_BRANCH, SOURCE, SUCCESS_BRANCH
from .events import (
    Event,
    NodeFinished,
    NodeRetry,
    NodeStarted,
    WorkflowFinished,
    WorkflowPaused,
    WorkflowStarted,
)
from .executor import NodeContext, NodeFailed, NodeResult, PauseRequested, executor_for
from .graph import RuntimeGraph, RuntimeNode
from .pool import VariablePool
from .streaming import Streamer

# Dify's limits (WORKFLOW_MAX_EXECUTION_STEPS, _TIME, WORKFLOW_CALL_MAX_DEPTH).
MAX_STEPS = 500
MAX_SECONDS = 1200.0
MAX_CALL_DEPTH = 5


class RunStatus(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    PARTIAL_SUCCEEDED = "partial-succeeded"
    STOPPED = "stopped"
    PAUSED = "paused"


@dataclass
class RunContext:
    """Who runs what, and the limits: shared by every node of a run."""

    workflow_id: str
    run_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    mode: str = "workflow"  # or "advanced-chat" (chatflow): answers instead of end outputs
    tenant: Any = None
    user_id: str | None = None
    app_id: str | None = None
    conversation_id: str | None = None
    inputs: dict[str, Any] = field(default_factory=dict)
    call_depth: int = 0
    max_steps: int = MAX_STEPS
    max_seconds: float = MAX_SECONDS
    # What nodes of the layers above need (conversation memory, files …), by name.
    services: dict[str, Any] = field(default_factory=dict)


@dataclass
class BodyOutcome:
    """How one round of a container's body ended."""

    ok: bool
    error: str | None = None
    error_type: str | None = None
    # A loop-end node ran: the loop stops after this round.
    loop_ended: bool = False


class RunFailed(Exception):
    """Ends the run as failed (a node failed without an error strategy, a limit was hit)."""

    def __init__(self, message: str, error_type: str = "RunFailed") -> None:
        super().__init__(message)
        self.error_type = error_type


class _Paused(Exception):
    def __init__(self, node: RuntimeNode, form: dict[str, Any]) -> None:
        self.node, self.form = node, form


def _now() -> int:
    return int(time.time())


@dataclass(slots=True)
class _Done:
    """A node task ended; the scope decides what follows."""

    node: RuntimeNode
    result: NodeResult | None = None
    handles: frozenset[str] = frozenset({SOURCE})
    failure: BaseException | None = None


class Scope:
    """One pass over the top level or over a container's body."""

    def __init__(
        self,
        run: WorkflowRun,
        pool: VariablePool,
        container: RuntimeNode | None = None,
        *,
        iteration_index: int | None = None,
        loop_index: int | None = None,
    ) -> None:
        self.run = run
        self.pool = pool
        self.container = container
        self.container_id = container.id if container else None
        self.iteration_index = iteration_index
        self.loop_index = loop_index
        self.nodes = run.graph.scope(self.container_id)
        self.edges: dict[str, bool] = {}  # edge id -> taken; absent: not decided yet
        self.state: dict[str, str] = {}  # node id -> running | done | skipped | paused
        self.tasks: dict[str, asyncio.Task] = {}
        self.done: asyncio.Queue[_Done] = asyncio.Queue()
        self.loop_ended = False
        self.streamer = (
            Streamer(run.graph, self.nodes, pool, run.emit) if container is None else None
        )

    # --- Driving the scope -----------------------------------------------------------------

    async def execute(self, ready: list[tuple[RuntimeNode, str | None]] | None = None) -> None:
        """Run until nothing is left to run; raises RunFailed or _Paused."""
        if ready is None:
            ready = [(self.run.graph.root(self.container_id), None)]
        paused: _Paused | None = None
        try:
            while True:
                if paused is None:
                    for node, predecessor in ready:
                        self._launch(node, predecessor)
                ready = []
                if not self.tasks:
                    break
                done = await self.done.get()
                del self.tasks[done.node.id]
                if isinstance(done.failure, _Paused):
                    paused = paused or done.failure
                    self.state[done.node.id] = "paused"
                    continue
                if done.failure is not None:
                    raise done.failure
                ready = self._finished(done)
        except BaseException:
            await self._cancel_all()
            raise
        if paused is not None:
            raise paused

    def _launch(self, node: RuntimeNode, predecessor: str | None) -> None:
        self.state[node.id] = "running"
        self.tasks[node.id] = asyncio.create_task(self._node_task(node, predecessor))

    async def _cancel_all(self) -> None:
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self.tasks.clear()

    def _finished(self, done: _Done) -> list[tuple[RuntimeNode, str | None]]:
        """Record a node's result, decide its edges; the nodes that became ready."""
        node = done.node
        self.state[node.id] = "done"
        if node.type == "loop-end":
            self.loop_ended = True
        ready: list[tuple[RuntimeNode, str | None]] = []
        self._decide(node, done.handles, ready)
        return ready

    def _decide(
        self,
        node: RuntimeNode,
        handles: frozenset[str],
        ready: list[tuple[RuntimeNode, str | None]],
    ) -> None:
        for edge in node.outgoing:
            self.edges[edge.id] = edge.handle in handles
        for edge in node.outgoing:
            target = self.run.graph.nodes[edge.target]
            if target.id in self.state:
                continue
            decided = [self.edges.get(e.id) for e in target.incoming]
            if any(d is None for d in decided):
                continue
            taken = [e for e in target.incoming if self.edges[e.id]]
            if taken:
                self.state[target.id] = "queued"
                ready.append((target, taken[-1].source))
            else:
                self.state[target.id] = "skipped"
                self._decide(target, frozenset(), ready)

    # --- One node ------------------------------------------------------------------------

    async def _node_task(self, node: RuntimeNode, predecessor: str | None) -> None:
        try:
            done = await self._run_node(node, predecessor)
        except RunFailed as exc:
            done = _Done(node, failure=exc)
        self.done.put_nowait(done)

    async def _run_node(self, node: RuntimeNode, predecessor: str | None) -> _Done:
        run = self.run
        index = run.next_step()
        data = node.data
        retry = data.retry_config
        attempts = 1 + (retry.max_retries if retry.retry_enabled else 0)
        execution_id = str(uuid.uuid4())
        common: dict[str, Any] = {
            "node_id": node.id,
            "node_type": node.type,
            "title": node.title,
            "index": index,
            "predecessor_node_id": predecessor,
            "iteration_id": self.container_id if self.iteration_index is not None else None,
            "iteration_index": self.iteration_index,
            "loop_id": self.container_id if self.loop_index is not None else None,
            "loop_index": self.loop_index,
        }
        run.emit(NodeStarted(id=execution_id, created_at=_now(), **common))
        timeout = data.node_timeout
        for attempt in range(attempts):
            started = time.perf_counter()
            context = NodeContext(run=run.context, pool=self.pool, node=node, scope=self)
            try:
                executor = executor_for(node)
                if timeout:
                    async with asyncio.timeout(timeout):
                        result = await executor.run(context)
                else:
                    result = await executor.run(context)
            except asyncio.CancelledError:
                run.emit(self._finished_event(execution_id, common, started, "stopped"))
                raise
            except PauseRequested as pause:
                if self.container is not None:
                    error = NodeFailed(
                        "A human-input node cannot run inside an iteration or a loop.",
                        error_type="HumanInputInContainer",
                    )
                    return self._failed(node, execution_id, common, started, error, attempt)
                run.emit(
                    self._finished_event(
                        execution_id, common, started, "paused", process_data={"form": pause.form}
                    )
                )
                return _Done(node, failure=_Paused(node, pause.form))
            except Exception as exc:  # any executor failure is the node's, reported as such
                if isinstance(exc, TimeoutError):
                    exc = NodeFailed(
                        f"The node took longer than its limit of {timeout:g} s.",
                        error_type="NodeTimeout",
                    )
                if attempt + 1 < attempts:
                    run.emit(
                        NodeRetry(
                            id=str(uuid.uuid4()),
                            created_at=_now(),
                            status="retry",
                            error=str(exc),
                            error_type=_error_type(exc),
                            elapsed_time=time.perf_counter() - started,
                            finished_at=_now(),
                            retry_index=attempt + 1,
                            **common,
                        )
                    )
                    await asyncio.sleep(retry.retry_interval / 1000)
                    continue
                return self._failed(node, execution_id, common, started, exc, attempt)
            self.pool.set_outputs(node.id, result.outputs)
            run.account(result.tokens, result.price)
            run.emit(
                self._finished_event(
                    execution_id, common, started, "succeeded", result=result, retries=attempt
                )
            )
            handles = frozenset({result.handle or SOURCE})
            if data.error_strategy == FAIL_BRANCH:
                handles |= {SUCCESS_BRANCH}
            return _Done(node, result=result, handles=handles)
        raise AssertionError("unreachable")

    def _failed(
        self,
        node: RuntimeNode,
        execution_id: str,
        common: dict[str, Any],
        started: float,
        exc: BaseException,
        attempt: int,
    ) -> _Done:
        """The node failed for good: its error strategy decides what follows."""
        data = node.data
        message, error_type = str(exc) or type(exc).__name__, _error_type(exc)
        strategy = data.error_strategy
        if strategy in ("default-value", FAIL_BRANCH):
            outputs: dict[str, Any] = {"error_message": message, "error_type": error_type}
            if strategy == "default-value":
                outputs |= {item.key: item.value for item in data.default_value or []}
            self.pool.set_outputs(node.id, outputs)
            self.run.exceptions += 1
            result = NodeResult(outputs=outputs)
            self.run.emit(
                self._finished_event(
                    execution_id,
                    common,
                    started,
                    "exception",
                    result=result,
                    error=(message, error_type),
                    retries=attempt,
                )
            )
            handles = frozenset({FAIL_BRANCH}) if strategy == FAIL_BRANCH else frozenset({SOURCE})
            return _Done(node, result=result, handles=handles)
        self.run.emit(
            self._finished_event(
                execution_id,
                common,
                started,
                "failed",
                error=(message, error_type),
                retries=attempt,
            )
        )
        failure = RunFailed(f"Node “{node.title}” ({node.id}) failed: {message}", error_type)
        return _Done(node, failure=failure)

    def _finished_event(
        self,
        execution_id: str,
        common: dict[str, Any],
        started: float,
        status: str,
        *,
        result: NodeResult | None = None,
        error: tuple[str, str] | None = None,
        process_data: dict[str, Any] | None = None,
        retries: int = 0,
    ) -> NodeFinished:
        return NodeFinished(
            id=execution_id,
            created_at=_now(),
            status=status,
            inputs=result.inputs if result else None,
            process_data=result.process_data if result else process_data,
            outputs=result.outputs if result else None,
            error=error[0] if error else None,
            error_type=error[1] if error else None,
            elapsed_time=time.perf_counter() - started,
            total_tokens=result.tokens if result else 0,
            total_price=result.price if result else Decimal(0),
            currency=result.currency if result else "USD",
            finished_at=_now(),
            retry_index=retries,
            **common,
        )

    # --- Services for executors ------------------------------------------------------------

    def stream(self, node_id: str, variable: str, text: str) -> None:
        """Pass streamed text on, unless the node could still change its mind about it
        (it retries, or its failure would be handled by a default value)."""
        if self.streamer is None:
            return
        data = self.run.graph.nodes[node_id].data
        if (data.retry_config.retry_enabled and data.retry_config.max_retries) or (
            data.error_strategy == "default-value"
        ):
            return
        self.streamer.chunk(node_id, variable, text)

    async def run_body(
        self,
        container: RuntimeNode,
        pool: VariablePool,
        *,
        iteration_index: int | None = None,
        loop_index: int | None = None,
    ) -> BodyOutcome:
        body = Scope(
            self.run, pool, container, iteration_index=iteration_index, loop_index=loop_index
        )
        try:
            await body.execute()
        except RunFailed as exc:
            return BodyOutcome(False, str(exc), exc.error_type)
        return BodyOutcome(True, loop_ended=body.loop_ended)

    # --- Pausing ---------------------------------------------------------------------------

    def dump(self) -> dict[str, Any]:
        """This (top-level) scope's state, to resume after a pause."""
        return {
            "edges": self.edges,
            "state": self.state,
            "streamer": {
                node_id: [output.position, output.streaming, output.parts]
                for node_id, output in (self.streamer.outputs if self.streamer else {}).items()
            },
        }

    def load(self, saved: Mapping[str, Any]) -> None:
        """Take the state `dump` gave."""
        self.edges = dict(saved["edges"])
        self.state = dict(saved["state"])
        if self.streamer is not None:
            for node_id, (position, streaming, parts) in saved["streamer"].items():
                if node_id in self.streamer.outputs:
                    output = self.streamer.outputs[node_id]
                    output.position, output.streaming, output.parts = position, streaming, parts


def _error_type(exc: BaseException) -> str:
    return getattr(exc, "error_type", None) or type(exc).__name__


class WorkflowRun:
    """One run of a graph: `events()` runs it and yields what happens, ending with
    `workflow_finished` (or `workflow_paused`)."""

    def __init__(self, graph: RuntimeGraph, context: RunContext, pool: VariablePool) -> None:
        self.graph = graph
        self.context = context
        self.pool = pool
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self.steps = 0
        self.tokens = 0
        self.price = Decimal(0)
        self.exceptions = 0
        self.elapsed_before = 0.0  # time spent before a pause, for a resumed run
        self.status: RunStatus | None = None
        self.error: str | None = None
        self.outputs: dict[str, Any] = {}
        self.paused_state: dict[str, Any] | None = None
        self._task: asyncio.Task | None = None
        self._stop_reason: tuple[RunStatus, str | None] | None = None
        self.top = Scope(self, pool)

    # --- Called by scopes ------------------------------------------------------------------

    def emit(self, event: Event) -> None:
        self.queue.put_nowait(event)

    def next_step(self) -> int:
        self.steps += 1
        if self.steps > self.context.max_steps:
            raise RunFailed(
                f"The run exceeded its limit of {self.context.max_steps} node runs.",
                "MaxStepsExceeded",
            )
        return self.steps

    def account(self, tokens: int, price: Decimal) -> None:
        self.tokens += tokens
        self.price += price

    # --- Running ---------------------------------------------------------------------------

    def stop(self, reason: str | None = None, *, status: RunStatus = RunStatus.STOPPED) -> None:
        """Stop from outside: running nodes are cancelled (their model calls with them)."""
        if self._stop_reason is None:
            self._stop_reason = (status, reason)
        if self._task is not None:
            self._task.cancel()

    async def events(
        self,
        inputs: Mapping[str, Any] | None = None,
        *,
        resume: Callable[[Scope], list[tuple[RuntimeNode, str | None]]] | None = None,
    ) -> AsyncIterator[Event]:
        """Run (or, with `resume`, continue) the workflow, yielding its events."""
        started = time.perf_counter()
        created = _now()
        if resume is None:
            self.emit(
                WorkflowStarted(
                    id=self.context.run_id,
                    workflow_id=self.context.workflow_id,
                    inputs=dict(inputs or {}),
                    created_at=created,
                )
            )
        self._task = asyncio.create_task(self._drive(resume))
        self._task.add_done_callback(lambda _: self.queue.put_nowait(None))
        # A timer, not asyncio.timeout: the consumer's own awaits between events must not be
        # the ones cancelled when time runs out.
        limit = asyncio.get_running_loop().call_later(
            max(self.context.max_seconds - self.elapsed_before, 0),
            lambda: self.stop(
                f"The run exceeded its limit of {self.context.max_seconds:g} s.",
                status=RunStatus.FAILED,
            ),
        )
        try:
            while (event := await self.queue.get()) is not None:
                yield event
        finally:
            limit.cancel()
            if not self._task.done():
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
        elapsed = self.elapsed_before + time.perf_counter() - started
        if self.status == RunStatus.PAUSED:
            assert self.paused_state is not None  # noqa: S101
            self.paused_state["elapsed"] = elapsed
            node = self.graph.nodes[self.paused_state["node_id"]]
            yield WorkflowPaused(
                id=self.context.run_id,
                workflow_id=self.context.workflow_id,
                node_id=node.id,
                node_title=node.title,
                form=self.paused_state["form"],
                created_at=_now(),
            )
            return
        yield WorkflowFinished(
            id=self.context.run_id,
            workflow_id=self.context.workflow_id,
            status=(self.status or RunStatus.FAILED).value,
            outputs=self.outputs,
            error=self.error,
            elapsed_time=elapsed,
            total_tokens=self.tokens,
            total_price=self.price,
            total_steps=self.steps,
            exceptions_count=self.exceptions,
            created_at=created,
            finished_at=_now(),
        )

    async def _drive(self, resume) -> None:
        try:
            if self.context.call_depth > MAX_CALL_DEPTH:
                raise RunFailed(
                    f"Workflows may call workflows at most {MAX_CALL_DEPTH} levels deep.",
                    "MaxDepthExceeded",
                )
            ready = resume(self.top) if resume is not None else None
            await self.top.execute(ready)
        except RunFailed as exc:
            self.status, self.error = RunStatus.FAILED, str(exc)
            return
        except _Paused as pause:
            self.status = RunStatus.PAUSED
            self.paused_state = {
                "node_id": pause.node.id,
                "form": pause.form,
                "pool": self.pool.dump(),
                "scope": self.top.dump(),
                "steps": self.steps,
                "tokens": self.tokens,
                "price": str(self.price),
                "exceptions": self.exceptions,
            }
            return
        except asyncio.CancelledError:
            status, reason = self._stop_reason or (RunStatus.STOPPED, None)
            self.status, self.error = status, reason
            return
        self.outputs = self._outputs()
        self.status = RunStatus.PARTIAL_SUCCEEDED if self.exceptions else RunStatus.SUCCEEDED

    def _outputs(self) -> dict[str, Any]:
        """The run's outputs: the end nodes' (workflow), or the answer (chatflow)."""
        outputs: dict[str, Any] = {}
        if self.context.mode == "workflow":
            for node in self.top.nodes:
                if node.type == "end" and self.top.state.get(node.id) == "done":
                    outputs |= self.pool.node_outputs(node.id) or {}
            return outputs
        answers = [
            (self.pool.node_outputs(node.id) or {}).get("answer", "")
            for node in self.top.nodes
            if node.type == "answer" and self.top.state.get(node.id) == "done"
        ]
        return {"answer": "".join(answers)}

    @classmethod
    def resumed(
        cls,
        graph: RuntimeGraph,
        context: RunContext,
        saved: Mapping[str, Any],
        answer: Mapping[str, Any] | None,
        handle: str | None = None,
    ) -> tuple[WorkflowRun, Callable[[Scope], list[tuple[RuntimeNode, str | None]]]]:
        """A paused run, with the person's answer as the human-input node's outputs; pass the
        second value as `events(resume=…)`. With no answer the node runs again (its executor
        then decides, e.g. that the form expired)."""
        pool = VariablePool.load(saved["pool"])
        run = cls(graph, context, pool)
        run.steps, run.tokens = saved["steps"], saved["tokens"]
        run.price, run.exceptions = Decimal(saved["price"]), saved["exceptions"]
        run.elapsed_before = saved.get("elapsed", 0.0)
        node = graph.nodes[saved["node_id"]]

        def resume(top: Scope) -> list[tuple[RuntimeNode, str | None]]:
            top.load(saved["scope"])
            # Nodes that became ready while the run was pausing never started: start them now.
            ready: list[tuple[RuntimeNode, str | None]] = [
                (graph.nodes[node_id], None)
                for node_id, state in top.state.items()
                if state == "queued"
            ]
            if answer is None:
                ready.append((node, None))
                return ready
            pool.set_outputs(node.id, dict(answer))
            top.state[node.id] = "done"
            top._decide(node, frozenset({handle or SOURCE}), ready)
            return ready

        return run, resume
