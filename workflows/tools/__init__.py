"""Built-in tools: what tool nodes, agent nodes and agent apps call.

    from workflows.tools import registry
    tool = registry.get("time", "current_time")      # None when Weft has no such tool
    tool.definition()                                 # providers.runtime.types.Tool
    result = await tool.invoke(ToolContext(tenant=tenant), {"timezone": "Asia/Tokyo"})
    result.text, result.json, result.files

Tools are keyed as Dify keys them, so that Dify exports keep working; Dify 1.x's plugin ids
of its own providers (`langgenius/time/time`) are read as the plain ids. Every request a
tool makes goes through the guarded client. Bad parameters raise ToolError.
"""

from .base import (
    BuiltinTool,
    ParameterForm,
    ParameterType,
    ToolContext,
    ToolError,
    ToolParameter,
    ToolProvider,
    ToolResult,
)
from .catalog import ToolRegistry, provider_key, registry

__all__ = [
    "BuiltinTool",
    "ParameterForm",
    "ParameterType",
    "ToolContext",
    "ToolError",
    "ToolParameter",
    "ToolProvider",
    "ToolRegistry",
    "ToolResult",
    "provider_key",
    "registry",
]
