"""Data kept whole rather than understood: tool and agent nodes (typed by their identity
only, until Weft runs them), and editor notes."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from .base import NodeData, Number


class OpaqueData(NodeData):
    """Data the engine cannot run; every field is kept for export, none is checked."""

    def source_handles(self) -> frozenset[str] | None:
        """Unknown: edges leaving an opaque node are not checked."""
        return None


class ToolData(OpaqueData):
    """A built-in, API, workflow, MCP or plugin tool call (not run by Weft yet)."""

    TYPES: ClassVar[tuple[str, ...]] = ("tool",)
    type: Literal["tool"] = "tool"
    provider_id: str | None = None
    provider_type: str | None = None
    provider_name: str | None = None
    tool_name: str | None = None
    tool_label: str | None = None
    tool_parameters: dict[str, Any] | None = None
    tool_configurations: dict[str, Any] | None = None

    def describe(self) -> str:
        """Which tool, for messages."""
        return f"{self.provider_name or self.provider_id or '?'}/{self.tool_name or '?'}"


class AgentData(OpaqueData):
    """An agent-strategy plugin run (not run by Weft yet)."""

    TYPES: ClassVar[tuple[str, ...]] = ("agent",)
    type: Literal["agent"] = "agent"
    agent_strategy_provider_name: str | None = None
    agent_strategy_name: str | None = None
    agent_strategy_label: str | None = None
    agent_parameters: dict[str, Any] | None = None
    plugin_unique_identifier: str | None = None

    def describe(self) -> str:
        """Which strategy, for messages."""
        provider = self.agent_strategy_provider_name or "?"
        return f"{provider}/{self.agent_strategy_name or '?'}"


class NoteData(OpaqueData):
    """An editor's sticky note (node type `custom-note`, empty data type); not part of a run."""

    TYPES: ClassVar[tuple[str, ...]] = ("",)
    type: Literal[""] = ""
    text: str = ""
    theme: str | None = None
    author: str | None = None
    showAuthor: bool | None = None
    width: Number | None = None
    height: Number | None = None
