"""Data kept whole rather than declared field by field: tool and agent nodes (Dify writes many
editor fields on them; every one is kept for export, none is reported as unknown), and editor
notes.

Tool and agent nodes run when Weft has what they call: a built-in tool of its registry
(`workflows.tools`), and Dify's own agent strategies (function calling, ReAct). `problem()`
says why a node cannot run, for validation and import reports.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from .base import NodeData, Number
from .selectors import SelectorRef, ref, refs_in_template

# Dify's own agent strategies, by plugin id; the strategy names each offers.
AGENT_STRATEGY_PROVIDERS = frozenset({"langgenius/agent/agent", "agent"})
AGENT_STRATEGIES = frozenset({"function_calling", "ReAct"})
# Dify's agent strategies run three rounds unless told otherwise; Weft allows up to 30.
DEFAULT_AGENT_ROUNDS = 3
MAX_AGENT_ROUNDS = 30

Problem = tuple[str, str]  # (validation error code, message)


class OpaqueData(NodeData):
    """Data whose fields are kept as they come; the engine runs only what subclasses say."""

    def source_handles(self) -> frozenset[str] | None:
        """Unknown: edges leaving an opaque node are not checked."""
        return None


def _input(item: Any) -> tuple[str, Any]:
    """(kind, value) of a Dify input `{type: mixed|variable|constant, value}`; a plain value
    (tool settings of older exports) is a constant."""
    if isinstance(item, Mapping) and "value" in item and set(item) <= {"type", "value"}:
        kind = item.get("type")
        return (kind if kind in ("mixed", "variable", "constant") else "constant"), item["value"]
    return "constant", item


def _input_refs(field: str, item: Any, *, constants: bool = False) -> Iterator[SelectorRef]:
    kind, value = _input(item)
    if kind == "variable" and isinstance(value, list):
        yield from ref(f"{field}.value", [str(part) for part in value])
    elif isinstance(value, str) and (kind == "mixed" or constants):
        yield from refs_in_template(f"{field}.value", value)


def _tool_registry():
    # Imported here: the DSL itself is pure Python; the registry brings the tools' code.
    from ..tools import registry

    return registry


class ToolData(OpaqueData):
    """A built-in, API, workflow, MCP or plugin tool call; Weft runs its built-in tools."""

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

    def source_handles(self) -> frozenset[str] | None:
        return NodeData.source_handles(self)

    def inputs(self) -> dict[str, tuple[str, Any]]:
        """Every parameter as (kind, value): the settings first, then the parameters (which
        win), as Dify merges them."""
        merged = {name: _input(item) for name, item in (self.tool_configurations or {}).items()}
        merged |= {name: _input(item) for name, item in (self.tool_parameters or {}).items()}
        return merged

    def references(self) -> Iterator[SelectorRef]:
        """Variables of the parameters and references in their mixed (template) values."""
        for name, item in (self.tool_configurations or {}).items():
            yield from _input_refs(f"tool_configurations.{name}", item)
        for name, item in (self.tool_parameters or {}).items():
            yield from _input_refs(f"tool_parameters.{name}", item)

    def problem(self) -> Problem | None:
        """Why Weft cannot run this node (code, message), or None when it can."""
        kind = self.provider_type or "builtin"
        if kind != "builtin":
            return (
                "unknown_tool",
                f"{kind} tool {self.describe()} is not available in Weft (only built-in tools run)",
            )
        registry = _tool_registry()
        if registry.get(self.provider_id or self.provider_name, self.tool_name) is None:
            return ("unknown_tool", unknown_tool_message([self.describe()]))
        return None


def unknown_tool_message(tools: list[str]) -> str:
    """Why tools are missing, with what Weft has instead."""
    providers = sorted({tool.provider_id for tool in _tool_registry().all()})
    named = f"tool {tools[0]} is" if len(tools) == 1 else f"tools {', '.join(tools)} are"
    return (
        f"{named} not among Weft's built-in tools (a plugin, or credentials Weft does not "
        f"manage); Weft has the tools of {', '.join(providers)}"
    )


@dataclass(frozen=True)
class AgentTool:
    """One tool an agent may call, as Dify's editor lists it."""

    provider: str
    name: str
    kind: str = "builtin"
    enabled: bool = True
    # What the model is told the tool does, when the builder wrote it (else the tool's own).
    description: str = ""
    # The builder's settings of the tool, by parameter name.
    settings: dict[str, Any] = field(default_factory=dict)
    # Parameters as listed: a plain value, or `{auto: 1|0, value}` (auto: the model fills
    # it in).
    parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.provider}/{self.name}"


@dataclass(frozen=True)
class AgentModel:
    """The chat model of an agent, as its `model` parameter names it."""

    provider: str
    name: str
    mode: str = "chat"
    completion_params: dict[str, Any] = field(default_factory=dict)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _agent_tool(item: Any) -> AgentTool | None:
    if not isinstance(item, Mapping):
        return None
    extra, settings, parameters = (
        _mapping(item.get(key)) for key in ("extra", "settings", "parameters")
    )
    return AgentTool(
        provider=str(item.get("provider_name") or item.get("provider_id") or ""),
        name=str(item.get("tool_name") or ""),
        kind=str(item.get("type") or "builtin"),
        enabled=item.get("enabled", True) is not False,
        description=str(extra.get("description") or ""),
        settings={
            name: value.get("value") if isinstance(value, Mapping) else value
            for name, value in settings.items()
        },
        parameters=dict(parameters),
    )


class AgentData(OpaqueData):
    """An agent strategy run; Weft runs Dify's function-calling and ReAct strategies."""

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

    def source_handles(self) -> frozenset[str] | None:
        return NodeData.source_handles(self)

    def parameter(self, name: str) -> tuple[str, Any]:
        """(kind, value) of one agent parameter; ("constant", None) when it is not set."""
        item = (self.agent_parameters or {}).get(name)
        if item is None:
            return "constant", None
        return _input(item)

    def tools(self) -> list[AgentTool]:
        """The enabled tools the agent may call."""
        _, value = self.parameter("tools")
        found = [_agent_tool(item) for item in value] if isinstance(value, list) else []
        return [tool for tool in found if tool is not None and tool.enabled]

    def agent_model(self) -> AgentModel | None:
        """The chat model the agent calls, if it names one."""
        _, value = self.parameter("model")
        if not isinstance(value, Mapping) or not value.get("model"):
            return None
        params = value.get("completion_params")
        return AgentModel(
            provider=str(value.get("provider") or ""),
            name=str(value["model"]),
            mode=str(value.get("mode") or "chat"),
            completion_params=dict(params) if isinstance(params, Mapping) else {},
        )

    def rounds(self) -> int:
        """How many model calls the agent may make (maximum_iterations)."""
        _, value = self.parameter("maximum_iterations")
        try:
            count = int(value) if value is not None and value != "" else DEFAULT_AGENT_ROUNDS
        except (TypeError, ValueError):
            count = DEFAULT_AGENT_ROUNDS
        return max(1, min(count, MAX_AGENT_ROUNDS))

    def references(self) -> Iterator[SelectorRef]:
        """Variables and template references of the text parameters (instruction, query …);
        constants are rendered too, as Dify's agent node does."""
        for name, item in (self.agent_parameters or {}).items():
            if name not in ("tools", "model"):
                yield from _input_refs(f"agent_parameters.{name}", item, constants=True)

    def problem(self) -> Problem | None:
        """Why Weft cannot run this node (code, message), or None when it can."""
        provider = self.agent_strategy_provider_name or "langgenius/agent/agent"
        if (
            provider not in AGENT_STRATEGY_PROVIDERS
            or self.agent_strategy_name not in AGENT_STRATEGIES
        ):
            return (
                "unsupported_agent",
                f"agent strategy {self.describe()} is a plugin Weft cannot run; Weft runs "
                "Dify's own function_calling and ReAct strategies (langgenius/agent/agent)",
            )
        if self.agent_model() is None:
            return ("unsupported_agent", "the agent names no model (parameter “model”)")
        registry = _tool_registry()
        missing = [
            tool.key
            for tool in self.tools()
            if tool.kind != "builtin" or registry.get(tool.provider, tool.name) is None
        ]
        if missing:
            return ("unknown_tool", unknown_tool_message(missing))
        return None


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
