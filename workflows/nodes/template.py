"""Template transform: a Jinja2 template rendered in Jinja2's immutable sandbox, bounded in
output length and time."""

from __future__ import annotations

import ctypes
import math
import threading
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from jinja2 import TemplateSyntaxError
from jinja2.runtime import Context, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from ..engine.executor import NodeContext, NodeExecutor, NodeFailed, NodeResult, register

# Dify's TEMPLATE_TRANSFORM_MAX_LENGTH.
TEMPLATE_MAX_LENGTH = 400_000
# Dify runs templates in its code sandbox, whose worker gives up after 15 s.
TEMPLATE_TIMEOUT_S = 15.0


class _Sandbox(ImmutableSandboxedEnvironment):
    """Jinja2's sandbox (no attribute starting with _, no mutating lists or dicts) that fails
    on a refused attribute, and refuses `*` and `**` whose result alone would be too large."""

    intercepted_binops = frozenset({"*", "**"})

    def unsafe_undefined(self, obj: Any, attribute: str) -> Undefined:
        # Jinja2 renders a refused attribute as empty text; an escape attempt should fail loudly.
        raise SecurityError(f"access to attribute {attribute!r} of {type(obj).__name__} is unsafe")

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for sized, times in ((left, right), (right, left)):
                if (
                    isinstance(sized, str | list | tuple)
                    and isinstance(times, int)
                    and len(sized) * times > TEMPLATE_MAX_LENGTH
                ):
                    raise SecurityError("the repeated value would be too long")
        elif (
            isinstance(left, int | float)
            and isinstance(right, int | float)
            and abs(left) > 1
            and right * math.log2(abs(left)) > 4096
        ):
            raise SecurityError("the power is too large")
        return super().call_binop(context, operator, left, right)


_JINJA = _Sandbox()


class _TemplateTimeout(Exception):
    pass


def _template_line(tb: TracebackType | None) -> int | None:
    """The template line a runtime error came from (Jinja2 rewrites its frames to them)."""
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def render_jinja(source: str, variables: Mapping[str, Any]) -> str:
    """A Jinja2 template rendered in the sandbox; failures are NodeFailed naming the line."""
    try:
        template = _JINJA.from_string(source)
    except TemplateSyntaxError as exc:
        raise NodeFailed(
            f"Template syntax error on line {exc.lineno}: {exc.message}",
            error_type="TemplateSyntaxError",
        ) from None
    parts: list[str] = []
    size = 0
    try:
        for part in template.generate(**variables):
            size += len(part)
            if size > TEMPLATE_MAX_LENGTH:
                raise NodeFailed(
                    f"The output is longer than {TEMPLATE_MAX_LENGTH} characters.",
                    error_type="OutputTooLong",
                )
            parts.append(part)
    except (NodeFailed, _TemplateTimeout):
        raise
    except Exception as exc:
        line = _template_line(exc.__traceback__)
        kind = "not allowed" if isinstance(exc, SecurityError) else "error"
        where = f" on line {line}" if line else ""
        raise NodeFailed(f"Template {kind}{where}: {exc}", error_type=type(exc).__name__) from None
    return "".join(parts)


def _render_with_deadline(source: str, variables: Mapping[str, Any]) -> str:
    """`render_jinja` in its own thread, stopped after TEMPLATE_TIMEOUT_S: a loop in a
    template never returns otherwise, and a thread cannot be cancelled, so an exception is
    raised inside it (it takes effect at its next bytecode, which template code runs)."""
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["text"] = render_jinja(source, variables)
        except BaseException as exc:  # handed to the waiting side, whatever it is
            outcome["error"] = exc

    thread = threading.Thread(target=work, name="template-transform", daemon=True)
    thread.start()
    thread.join(TEMPLATE_TIMEOUT_S)
    if thread.is_alive() and thread.ident is not None:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(thread.ident), ctypes.py_object(_TemplateTimeout)
        )
        thread.join(1.0)
        raise NodeFailed(
            f"The template took longer than {TEMPLATE_TIMEOUT_S:g} s.",
            error_type="TemplateTimeout",
        )
    if "error" in outcome:
        raise outcome["error"]
    return outcome["text"]


@register
class TemplateTransformExecutor(NodeExecutor):
    """Renders a Jinja2 template over its named inputs in the sandbox; output `output`."""

    types = ("template-transform",)

    async def run(self, ctx: NodeContext) -> NodeResult:
        inputs = {v.variable: ctx.get(v.value_selector) for v in self.data.variables}
        source = self.data.template
        output = await ctx.in_thread(lambda: _render_with_deadline(source, inputs))
        return NodeResult(inputs=inputs, outputs={"output": output})
