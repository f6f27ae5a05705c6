"""Start, end and answer: where a run's inputs come in and its results go out."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from ..dsl import StartData
from ..engine.executor import NodeContext, NodeExecutor, NodeFailed, NodeResult, register

# Dify's default max_length of a text input when the form does not set one.
DEFAULT_TEXT_LENGTH = 48
PARAGRAPH_LENGTH = 100_000


class InputError(ValueError):
    """An input does not fit the start node's form; the message names it."""


def check_inputs(
    start: StartData, inputs: Mapping[str, Any] | None, *, missing_ok: bool = False
) -> dict[str, Any]:
    """The run's inputs checked against the start form: required, type, length, options.
    Unknown keys are dropped, as Dify does; missing optional ones get their default or
    None, and so do required ones with `missing_ok`."""
    if inputs is not None and not isinstance(inputs, Mapping):
        raise InputError("inputs: expected an object.")
    inputs = inputs or {}
    checked: dict[str, Any] = {}
    for variable in start.variables:
        name, value = variable.variable, inputs.get(variable.variable)
        label = f"inputs.{name}"
        if value is None or value == "":
            if variable.required and not missing_ok:
                raise InputError(f"{label} is required.")
            checked[name] = variable.default
            continue
        kind = variable.type
        if kind in ("text-input", "paragraph", "select"):
            if not isinstance(value, str):
                raise InputError(f"{label}: expected text.")
            limit = variable.max_length or (
                DEFAULT_TEXT_LENGTH if kind == "text-input" else PARAGRAPH_LENGTH
            )
            if kind != "select" and len(value) > limit:
                raise InputError(f"{label}: at most {limit} characters.")
            if kind == "select" and variable.options and value not in variable.options:
                raise InputError(f"{label}: “{value}” is not one of {', '.join(variable.options)}.")
        elif kind == "number":
            value = _number(value, label)
        elif kind == "checkbox":
            if not isinstance(value, bool):
                raise InputError(f"{label}: expected true or false.")
        elif kind == "json_object":
            if isinstance(value, str):
                try:
                    value = json.loads(value)
                except json.JSONDecodeError as exc:
                    raise InputError(f"{label}: not valid JSON ({exc.msg}).") from None
            if not isinstance(value, dict):
                raise InputError(f"{label}: expected a JSON object.")
        elif kind == "file":
            if not isinstance(value, Mapping):
                raise InputError(f"{label}: expected a file.")
        elif kind == "file-list":
            if not isinstance(value, list) or not all(isinstance(f, Mapping) for f in value):
                raise InputError(f"{label}: expected a list of files.")
        checked[name] = value
    return checked


def _number(value: Any, label: str) -> int | float:
    if isinstance(value, bool):
        raise InputError(f"{label}: expected a number.")
    if isinstance(value, str):
        try:
            value = float(value) if any(c in value for c in ".eE") else int(value)
        except ValueError:
            raise InputError(f"{label}: expected a number.") from None
    if not isinstance(value, int | float) or (
        isinstance(value, float) and not math.isfinite(value)
    ):
        raise InputError(f"{label}: expected a number.")
    return value


@register
class StartExecutor(NodeExecutor):
    """Checks the inputs and hands them on as its outputs."""

    types = ("start",)

    async def run(self, ctx: NodeContext) -> NodeResult:
        # A conversation's later turns keep the inputs of its first, even when the form has
        # gained a required field since (Dify checks them only when a conversation starts).
        ongoing = (ctx.get(["sys", "dialogue_count"]) or 0) > 1
        try:
            inputs = check_inputs(self.data, ctx.run.inputs, missing_ok=ongoing)
        except InputError as exc:
            raise NodeFailed(str(exc), error_type="InvalidInput") from None
        return NodeResult(inputs=inputs, outputs=inputs)


@register
class EndExecutor(NodeExecutor):
    """Collects the workflow's outputs."""

    types = ("end",)

    async def run(self, ctx: NodeContext) -> NodeResult:
        outputs = {o.variable: ctx.get(o.value_selector) for o in self.data.outputs}
        return NodeResult(inputs=outputs, outputs=outputs)


@register
class AnswerExecutor(NodeExecutor):
    """Sends the answer template, filled in (what was streamed already is not sent again)."""

    types = ("answer",)

    async def run(self, ctx: NodeContext) -> NodeResult:
        streamer = ctx.scope.streamer
        if streamer is not None and self.node.id in streamer.outputs:
            answer = streamer.finish(self.node.id)
        else:
            answer = ctx.render(self.data.answer)
        return NodeResult(outputs={"answer": answer})
