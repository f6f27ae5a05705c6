"""Node executors: one class per node type, registered by type, run by the engine.

An executor reads its inputs from the variable pool, does its work (awaiting model calls,
the sandbox, HTTP …) and returns a `NodeResult`. It fails by raising `NodeFailed` (or any
exception: its type and message are reported); the engine applies the node's retries and
error strategy. A human-input node raises `PauseRequested` to stop the run until a person
answers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from .graph import RuntimeNode
from .pool import VariablePool

if TYPE_CHECKING:
    from .engine import BodyOutcome, RunContext, Scope


class NodeFailed(Exception):
    """The node could not do its work; the message is shown to the builder."""

    def __init__(self, message: str, *, error_type: str | None = None) -> None:
        super().__init__(message)
        self.error_type = error_type or type(self).__name__


class PauseRequested(Exception):
    """The run must wait for a person: `form` is what they are asked."""

    def __init__(self, form: Mapping[str, Any]) -> None:
        super().__init__("waiting for a person")
        self.form = dict(form)


@dataclass(slots=True)
class NodeResult:
    """What a node run produced."""

    outputs: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, Any] | None = None
    process_data: dict[str, Any] | None = None
    # The source handle to leave by (if-else case, classifier class …); None: "source".
    handle: str | None = None
    tokens: int = 0
    price: Decimal = Decimal(0)
    currency: str = "USD"


@dataclass(slots=True)
class NodeContext:
    """What an executor may use while it runs."""

    run: RunContext
    pool: VariablePool
    node: RuntimeNode
    scope: Scope

    def get(self, selector: list[str] | tuple[str, ...], default: Any = None) -> Any:
        """A value from the pool."""
        return self.pool.get(selector, default)

    def render(self, template: str) -> str:
        """A `{{#node.var#}}` template filled in from the pool."""
        return self.pool.render(template)

    def stream(self, variable: str, text: str) -> None:
        """Hand a piece of this node's output `variable` to whatever streams it (an answer
        or end node waiting for it) as it is produced."""
        self.scope.stream(self.node.id, variable, text)

    async def run_body(
        self,
        *,
        pool: VariablePool,
        iteration_index: int | None = None,
        loop_index: int | None = None,
    ) -> BodyOutcome:
        """Run this container's body once, in `pool` (a child of the run's pool)."""
        return await self.scope.run_body(
            self.node, pool, iteration_index=iteration_index, loop_index=loop_index
        )

    async def in_thread(self, call: Callable[[], Any]) -> Any:
        """Run blocking work (parsing a file …) without stalling the other nodes."""
        import asyncio

        return await asyncio.to_thread(call)


class NodeExecutor:
    """Base of the executors. Subclasses set `types` and implement `run`."""

    types: ClassVar[tuple[str, ...]] = ()

    def __init__(self, node: RuntimeNode) -> None:
        self.node = node
        self.data: Any = node.data

    async def run(self, ctx: NodeContext) -> NodeResult:
        raise NotImplementedError


REGISTRY: dict[str, type[NodeExecutor]] = {}
E = TypeVar("E", bound=type[NodeExecutor])


def register(cls: E) -> E:
    """Class decorator: the executor of the node types in `cls.types`."""
    for node_type in cls.types:
        if node_type in REGISTRY and REGISTRY[node_type] is not cls:
            raise RuntimeError(f"Two executors for node type {node_type!r}.")
        REGISTRY[node_type] = cls
    return cls


def executor_for(node: RuntimeNode) -> NodeExecutor:
    """A new executor for one run of the node."""
    cls = REGISTRY.get(node.type)
    if cls is None:
        raise NodeFailed(
            f"Nodes of type “{node.type}” cannot run in Weft yet.", error_type="UnsupportedNode"
        )
    return cls(node)
