"""The tool node: one call of a built-in tool (workflows.tools), its parameters taken from the
node's settings and parameters as Dify writes them (`{type: mixed|variable|constant, value}`:
templates rendered, variables read from the pool), its result as Dify's tool node gives it:
`text`, `files` and `json` (a list)."""

from __future__ import annotations

from typing import Any

from tenants.exceptions import WeftError

from ..dsl import ToolData
from ..engine.executor import NodeContext, NodeExecutor, NodeFailed, NodeResult, register
from ..tools import BuiltinTool, ToolContext, ToolResult, registry


def tool_context(ctx: NodeContext) -> ToolContext:
    """Who a tool runs for, from the run a node belongs to."""
    run = ctx.run
    return ToolContext(
        tenant=run.tenant,
        app_id=run.app_id,
        user_id=run.user_id,
        run_id=run.run_id,
        conversation_id=run.conversation_id,
    )


def resolve_input(ctx: NodeContext, kind: str, value: Any) -> Any:
    """A Dify input's value: a variable read from the pool, a template rendered, a constant
    as it is."""
    if kind == "variable":
        return ctx.get(value) if isinstance(value, list) else None
    if kind == "mixed" and isinstance(value, str):
        return ctx.render(value)
    return value


def tool_outputs(result: ToolResult) -> dict[str, Any]:
    """Dify's outputs of a tool: its text, its files, and its JSON values as a list."""
    return {
        "text": result.text,
        "files": list(result.files),
        "json": [] if result.json is None else [result.json],
    }


async def call_tool(ctx: NodeContext, tool: BuiltinTool, parameters: dict[str, Any]) -> ToolResult:
    """Invoke a tool for a node; its refusal fails the node with the tool's error code as
    the error type (so that retries and error strategies apply)."""
    try:
        return await tool.invoke(tool_context(ctx), parameters)
    except WeftError as exc:
        raise NodeFailed(exc.message, error_type=exc.code) from None


@register
class ToolExecutor(NodeExecutor):
    """Calls the node's built-in tool; outputs `text`, `files` and `json`."""

    types = ("tool",)
    data: ToolData

    async def run(self, ctx: NodeContext) -> NodeResult:
        data = self.data
        tool = registry.get(data.provider_id or data.provider_name, data.tool_name)
        if tool is None or (data.provider_type or "builtin") != "builtin":
            # Validation refuses such a node before a run; a graph run without it lands here.
            problem = data.problem()
            raise NodeFailed(
                problem[1] if problem else f"Tool {data.describe()} is not available.",
                error_type="ToolNotFound",
            )
        parameters = {
            name: resolve_input(ctx, kind, value) for name, (kind, value) in data.inputs().items()
        }
        result = await call_tool(ctx, tool, parameters)
        return NodeResult(
            inputs=parameters,
            outputs=tool_outputs(result),
            process_data={"tool": tool.key},
        )
