"""The parameter-extractor node: the model reads the query and gives the node's parameters as
JSON; each is checked against its type (numbers and booleans written as text are converted)
and becomes an output, with Dify's `__is_success`, `__reason` and `__usage`.

A missing required parameter or a value of the wrong type is not a node failure, as in Dify:
`__is_success` is 0, `__reason` says which parameter, and the parameter gets its type's empty
value (0, false, "" or []). Only a failed model call fails the node.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from providers.runtime.types import ChatMessage, ResponseFormat

from ..dsl import ParameterExtractorData
from ..dsl.nodes_model import ExtractedParameter
from ..dsl.selectors import to_text
from ..engine.executor import NodeContext, NodeExecutor, NodeResult, register
from .calls import NodeModel
from .prompts import history, history_text, parse_json

SYSTEM_PROMPT = """You extract structured parameters from the text the user gives.
Answer with one JSON object and nothing else, following this JSON schema:
{schema}
Leave out a parameter the text does not give; never invent a value."""
INSTRUCTION_PROMPT = "\nInstructions:\n{instruction}"
HISTORY_PROMPT = """
The conversation so far, between <histories></histories> tags:
<histories>
{histories}
</histories>"""

_JSON_TYPES = {
    "string": "string",
    "select": "string",
    "number": "number",
    "bool": "boolean",
    "boolean": "boolean",
}
_NUMBER = re.compile(r"^\s*[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*$")


class Invalid(ValueError):
    """A value does not fit its parameter; the message says why."""


def parameter_schema(parameters: list[ExtractedParameter]) -> dict[str, Any]:
    """The JSON schema of the parameters (Dify's `get_parameter_json_schema`)."""
    properties: dict[str, Any] = {}
    for parameter in parameters:
        if parameter.type.startswith("array["):
            item = _JSON_TYPES.get(parameter.type[6:-1], parameter.type[6:-1])
            spec: dict[str, Any] = {"type": "array", "items": {"type": item}}
        else:
            spec = {"type": _JSON_TYPES[parameter.type]}
        if parameter.type == "select" and parameter.options:
            spec["enum"] = list(parameter.options)
        if parameter.description:
            spec["description"] = parameter.description
        properties[parameter.name] = spec
    return {
        "type": "object",
        "properties": properties,
        "required": [p.name for p in parameters if p.required],
    }


def empty_value(kind: str) -> Any:
    """What a parameter holds when the text gave nothing usable for it (Dify's defaults)."""
    if kind.startswith("array["):
        return []
    return {"number": 0, "bool": False, "boolean": False}.get(kind, "")


def _number(value: Any) -> int | float:
    if isinstance(value, str) and _NUMBER.match(value):
        text = value.strip()
        value = float(text) if any(c in text for c in ".eE") else int(text)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise Invalid("expected a number")
    return value


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "yes", "no"):
        return value.strip().lower() in ("true", "yes")
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise Invalid("expected true or false")


def _scalar(kind: str, value: Any, options: list[str] | None) -> Any:
    if kind == "number":
        return _number(value)
    if kind in ("bool", "boolean"):
        return _boolean(value)
    if kind == "object":
        if not isinstance(value, dict):
            raise Invalid("expected an object")
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise Invalid("expected text")
    if kind == "select" and options:
        for option in options:
            if option.casefold() == value.strip().casefold():
                return option
        raise Invalid(f"“{value}” is not one of {', '.join(options)}")
    return value


def coerce(parameter: ExtractedParameter, value: Any) -> Any:
    """The value as the parameter's type, or Invalid."""
    if parameter.type.startswith("array["):
        if not isinstance(value, list):
            raise Invalid("expected a list")
        return [_scalar(parameter.type[6:-1], item, None) for item in value]
    return _scalar(parameter.type, value, parameter.options)


def check(
    parameters: list[ExtractedParameter], extracted: dict[str, Any]
) -> tuple[dict[str, Any], str]:
    """Each parameter's value (its empty value when missing or invalid), and the first
    problem found (empty when there is none)."""
    values: dict[str, Any] = {}
    problems: list[str] = []
    for parameter in parameters:
        value = extracted.get(parameter.name)
        if value is None:
            values[parameter.name] = empty_value(parameter.type)
            if parameter.required:
                problems.append(f"Parameter {parameter.name} is required.")
            continue
        try:
            values[parameter.name] = coerce(parameter, value)
        except Invalid as exc:
            values[parameter.name] = empty_value(parameter.type)
            problems.append(f"Parameter {parameter.name}: {exc}.")
    return values, problems[0] if problems else ""


@register
class ParameterExtractorExecutor(NodeExecutor):
    """Asks the model for the parameters as JSON; outputs each parameter, `__is_success`,
    `__reason` and `__usage`.

    `function_call` mode (the default) asks for the parameters' JSON schema as the response
    format where the model supports it, a JSON object otherwise; `prompt` mode asks in the
    prompt alone. Both read the answer's JSON the same way."""

    types = ("parameter-extractor",)
    data: ParameterExtractorData

    async def run(self, ctx: NodeContext) -> NodeResult:
        data = self.data
        query = to_text(ctx.get(data.query))
        schema = parameter_schema(data.parameters)
        model = await NodeModel.open(ctx, data.model)
        messages = await self._messages(ctx, query, schema)
        answer_format = None
        if data.reasoning_mode != "prompt":
            answer_format = (
                ResponseFormat("json_schema", schema=schema, name="parameters", strict=False)
                if model.supports_json_schema
                else ResponseFormat("json_object")
            )
        reply = await model.ask(messages, response_format=answer_format)
        try:
            extracted = parse_json(reply.text)
        except ValueError:
            extracted = None
        if isinstance(extracted, dict):
            values, reason = check(data.parameters, extracted)
        else:
            values = {p.name: empty_value(p.type) for p in data.parameters}
            reason = "The model's answer holds no JSON object of parameters."
        outputs = {
            "__is_success": 0 if reason else 1,
            "__reason": reason or None,
            "__usage": model.usage(),
            **values,
        }
        return model.result(
            outputs,
            inputs={"query": query, "instruction": data.instruction or ""},
            process_data=model.process_data(messages) | {"llm_text": reply.text},
        )

    async def _messages(
        self, ctx: NodeContext, query: str, schema: dict[str, Any]
    ) -> list[ChatMessage]:
        data = self.data
        system = SYSTEM_PROMPT.format(schema=json.dumps(schema, ensure_ascii=False))
        instruction = ctx.render(data.instruction or "").strip()
        if instruction:
            system += INSTRUCTION_PROMPT.format(instruction=instruction)
        past = await history(ctx, data.memory)
        if past:
            prefix = data.memory.role_prefix if data.memory else None
            system += HISTORY_PROMPT.format(histories=history_text(past, prefix))
        return [ChatMessage("system", system), ChatMessage("user", query)]
