"""What a run tells the world, with Dify's event names and payload fields.

The engine yields these; sinks (the database recorder, the per-run Redis stream, telemetry)
consume them. `payload()` is the event's `data` object as Dify's SSE stream carries it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field


class Event(BaseModel):
    """Base of every run event."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    event: ClassVar[str]

    def payload(self) -> dict[str, Any]:
        """The event's `data`, JSON-ready."""
        return self.model_dump(mode="json")


class WorkflowStarted(Event):
    """The run began."""

    event: ClassVar[str] = "workflow_started"
    id: str
    workflow_id: str
    inputs: dict[str, Any] = Field(default_factory=dict)
    created_at: int


class NodeEvent(Event):
    """Fields every node event carries: which node run, where in the run."""

    id: str  # the node execution's id
    node_id: str
    node_type: str
    title: str
    index: int
    predecessor_node_id: str | None = None
    inputs: dict[str, Any] | None = None
    created_at: int
    iteration_id: str | None = None
    iteration_index: int | None = None
    loop_id: str | None = None
    loop_index: int | None = None


class NodeStarted(NodeEvent):
    """A node began to run."""

    event: ClassVar[str] = "node_started"


class NodeFinished(NodeEvent):
    """A node ended: succeeded, failed, exception (failed, handled by its error strategy),
    stopped, or paused (waiting for a person)."""

    event: ClassVar[str] = "node_finished"
    process_data: dict[str, Any] | None = None
    outputs: dict[str, Any] | None = None
    status: str
    error: str | None = None
    error_type: str | None = None
    elapsed_time: float
    total_tokens: int = 0
    total_price: Decimal = Decimal(0)
    currency: str = "USD"
    finished_at: int
    retry_index: int = 0

    def payload(self) -> dict[str, Any]:
        data = super().payload()
        # Dify reports usage under execution_metadata.
        data["execution_metadata"] = {
            "total_tokens": data.pop("total_tokens"),
            "total_price": data.pop("total_price"),
            "currency": data.pop("currency"),
        }
        return data


class NodeRetry(NodeFinished):
    """A node run failed and will be tried again."""

    event: ClassVar[str] = "node_retry"


class TextChunk(Event):
    """Text of the answer (or of a workflow's streamed output) as it is produced."""

    event: ClassVar[str] = "text_chunk"
    text: str
    from_variable_selector: list[str] = Field(default_factory=list)


class ContainerEvent(Event):
    """Fields of iteration and loop events."""

    id: str
    node_id: str
    node_type: str
    title: str
    created_at: int


class ContainerStarted(ContainerEvent):
    """An iteration or loop began."""

    inputs: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)


class ContainerNext(ContainerEvent):
    """An iteration or loop began its round `index`."""

    index: int


class ContainerCompleted(ContainerEvent):
    """An iteration or loop ended."""

    outputs: dict[str, Any] | None = None
    status: str = "succeeded"
    error: str | None = None
    steps: int = 0
    elapsed_time: float = 0.0
    total_tokens: int = 0


class IterationStarted(ContainerStarted):
    event: ClassVar[str] = "iteration_started"


class IterationNext(ContainerNext):
    event: ClassVar[str] = "iteration_next"


class IterationCompleted(ContainerCompleted):
    event: ClassVar[str] = "iteration_completed"


class LoopStarted(ContainerStarted):
    event: ClassVar[str] = "loop_started"


class LoopNext(ContainerNext):
    event: ClassVar[str] = "loop_next"


class LoopCompleted(ContainerCompleted):
    event: ClassVar[str] = "loop_completed"


class WorkflowPaused(Event):
    """The run waits for a person (a human-input node); it resumes when they answer."""

    event: ClassVar[str] = "workflow_paused"
    id: str
    workflow_id: str
    node_id: str
    node_title: str
    form: dict[str, Any] = Field(default_factory=dict)
    created_at: int


class WorkflowFinished(Event):
    """The run ended."""

    event: ClassVar[str] = "workflow_finished"
    id: str
    workflow_id: str
    status: str
    outputs: dict[str, Any] | None = None
    error: str | None = None
    elapsed_time: float
    total_tokens: int = 0
    total_price: Decimal = Decimal(0)
    currency: str = "USD"
    total_steps: int = 0
    exceptions_count: int = 0
    created_at: int
    finished_at: int
