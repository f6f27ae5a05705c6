"""The code node: the builder's `main(**inputs) -> dict`, run in the sandbox, its result
checked against the outputs the node declares (Dify's types)."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from .. import sandbox
from ..dsl.nodes_data import CodeOutput
from ..engine.executor import NodeContext, NodeExecutor, NodeFailed, NodeResult, register


def _type_of(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return type(value).__name__


def _check(name: str, value: Any, declared: CodeOutput) -> None:
    """Raise NodeFailed when `value` is not of the declared type (None is allowed, as Dify)."""
    if value is None:
        return
    expected = declared.type
    if expected.startswith("array["):
        item = expected[len("array[") : -1]
        if not isinstance(value, list):
            raise NodeFailed(
                f"Output “{name}” must be an {expected}, not {_type_of(value)}.",
                error_type="OutputTypeError",
            )
        for index, element in enumerate(value):
            if element is not None and _type_of(element) != item:
                raise NodeFailed(
                    f"Output “{name}[{index}]” must be a {item}, not {_type_of(element)}.",
                    error_type="OutputTypeError",
                )
        return
    if _type_of(value) != expected:
        raise NodeFailed(
            f"Output “{name}” must be a {expected}, not {_type_of(value)}.",
            error_type="OutputTypeError",
        )
    if expected == "object" and declared.children:
        for key, child in declared.children.items():
            if key not in value:
                raise NodeFailed(f"Output “{name}.{key}” is missing.", error_type="OutputTypeError")
            _check(f"{name}.{key}", value[key], child)


@register
class CodeExecutor(NodeExecutor):
    """Runs the code in the sandbox with the node's variables as keyword arguments."""

    types = ("code",)

    async def run(self, ctx: NodeContext) -> NodeResult:
        inputs = {v.variable: ctx.get(v.value_selector) for v in self.data.variables}
        try:
            result = await sandbox.run(
                self.data.code,
                inputs,
                self.data.code_language,
                timeout=self.data.node_timeout or settings.WEFT_SANDBOX_TIMEOUT,
            )
        except sandbox.SandboxError as exc:
            raise NodeFailed(str(exc), error_type=type(exc).__name__) from None
        outputs = result.outputs
        declared = self.data.outputs
        for name, output in declared.items():
            if name not in outputs:
                raise NodeFailed(
                    f"main() did not return the declared output “{name}”.",
                    error_type="OutputTypeError",
                )
            _check(name, outputs[name], output)
        if declared:
            outputs = {name: outputs[name] for name in declared}
        process: dict[str, Any] = {"duration_ms": round(result.duration_ms, 2)}
        if result.stdout:
            process["stdout"] = result.stdout
        if result.stderr:
            process["stderr"] = result.stderr
        return NodeResult(inputs=inputs, outputs=outputs, process_data=process)
