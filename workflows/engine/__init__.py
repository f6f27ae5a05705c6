"""The workflow engine: runs a typed graph with asyncio, every ready node at once."""

from .engine import (
    MAX_CALL_DEPTH,
    MAX_SECONDS,
    MAX_STEPS,
    BodyOutcome,
    RunContext,
    RunFailed,
    RunStatus,
    Scope,
    WorkflowRun,
)
from .executor import (
    REGISTRY,
    NodeContext,
    NodeExecutor,
    NodeFailed,
    NodeResult,
    PauseRequested,
    register,
)
from .graph import GraphError, RuntimeEdge, RuntimeGraph, RuntimeNode
from .pool import VariablePool

__all__ = [
    "MAX_CALL_DEPTH",
    "MAX_SECONDS",
    "MAX_STEPS",
    "REGISTRY",
    "BodyOutcome",
    "GraphError",
    "NodeContext",
    "NodeExecutor",
    "NodeFailed",
    "NodeResult",
    "PauseRequested",
    "RunContext",
    "RunFailed",
    "RunStatus",
    "RuntimeEdge",
    "RuntimeGraph",
    "RuntimeNode",
    "Scope",
    "VariablePool",
    "WorkflowRun",
    "register",
]
