"""The registry of built-in tools, keyed as Dify keys them: (provider id, tool name).

Dify 1.x writes its built-in providers as plugin ids (`langgenius/time/time`); those are read
as the plain ids of Dify 0.x (`time`). A tool Weft does not have (one needing credentials
Weft does not manage, a marketplace plugin, an API or MCP tool) is simply not found.
"""

from __future__ import annotations

from collections.abc import Iterable

from . import clock, maths, webscraper, wikipedia
from .base import BuiltinTool

# The author of Dify's own plugins.
DIFY_AUTHOR = "langgenius"


def provider_key(provider_id: str) -> str:
    """The plain provider id: `langgenius/time/time` → `time`; others unchanged."""
    parts = provider_id.strip().split("/")
    if len(parts) == 3 and parts[0] == DIFY_AUTHOR and parts[1] == parts[2]:
        return parts[2]
    return provider_id.strip()


class ToolRegistry:
    """Built-in tools by (provider id, tool name)."""

    def __init__(self, tools: Iterable[BuiltinTool] = ()) -> None:
        self._tools: dict[tuple[str, str], BuiltinTool] = {}
        for tool in tools:
            self.register(tool)

    def register(self, tool: BuiltinTool) -> None:
        key = (tool.provider_id, tool.name)
        if key in self._tools:
            raise RuntimeError(f"Two built-in tools {tool.key}.")
        self._tools[key] = tool

    def get(self, provider_id: str | None, tool_name: str | None) -> BuiltinTool | None:
        """The tool, or None when Weft has no such built-in tool."""
        if not provider_id or not tool_name:
            return None
        return self._tools.get((provider_key(provider_id), tool_name.strip()))

    def all(self) -> list[BuiltinTool]:
        """Every tool, by provider then name."""
        return [self._tools[key] for key in sorted(self._tools)]

    def provider_tools(self, provider_id: str) -> list[BuiltinTool]:
        """The tools of one provider (empty when Weft has none of it)."""
        key = provider_key(provider_id)
        return [tool for tool in self.all() if tool.provider_id == key]


registry = ToolRegistry(
    cls() for module in (clock, maths, webscraper, wikipedia) for cls in module.TOOLS
)
