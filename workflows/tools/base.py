"""What a built-in tool is: its provider, its parameters (checked and converted before it
runs), what it is given (ToolContext) and what it gives back (ToolResult)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from providers.runtime.types import Tool
from tenants.exceptions import WeftError

if TYPE_CHECKING:
    from tenants.models import Tenant

ParameterType = Literal["string", "number", "integer", "boolean", "select"]
# Who sets a parameter: the model calling the tool ("llm"), or the builder in the tool's
# settings ("form"), as Dify's tool schemas say.
ParameterForm = Literal["llm", "form"]

_JSON_TYPES = {
    "string": "string",
    "number": "number",
    "integer": "integer",
    "boolean": "boolean",
    "select": "string",
}
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})
_INTEGER = re.compile(r"^[-+]?\d+$")


class ToolError(WeftError):
    """A tool could not do what it was asked (bad parameters, an unreachable site …); the
    message is shown to the builder and, in an agent, to the model."""

    code = "tool_error"
    status = 400


@dataclass(frozen=True)
class ToolContext:
    """Who a tool runs for: the tenant, app and user, and the run or message it serves."""

    tenant: Tenant | None
    app_id: str | None = None
    user_id: str | None = None
    run_id: str | None = None
    message_id: str | None = None
    conversation_id: str | None = None


@dataclass
class ToolResult:
    """What a tool gave: text (what the model reads), an optional JSON value, and files
    (file variables in Dify's shape)."""

    text: str = ""
    json: Any = None
    files: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class ToolProvider:
    """A family of tools under one Dify provider id, with the label and icon lists show."""

    id: str
    label: str
    description: str
    icon: str  # an emoji
    background: str = "#EFF1F5"


_MISSING: Any = object()


@dataclass(frozen=True)
class ToolParameter:
    """One parameter of a tool: its type, whether it is required, its default, and who sets
    it (the model, or the builder's settings)."""

    name: str
    type: ParameterType = "string"
    description: str = ""
    required: bool = False
    default: Any = None
    options: tuple[str, ...] = ()
    form: ParameterForm = "llm"
    minimum: float | None = None
    maximum: float | None = None

    def schema(self) -> dict[str, Any]:
        """The JSON Schema of the parameter, as a model is shown it."""
        spec: dict[str, Any] = {"type": _JSON_TYPES[self.type]}
        if self.description:
            spec["description"] = self.description
        if self.options:
            spec["enum"] = list(self.options)
        if self.minimum is not None:
            spec["minimum"] = self.minimum
        if self.maximum is not None:
            spec["maximum"] = self.maximum
        if self.default is not None:
            spec["default"] = self.default
        return spec

    def convert(self, value: Any) -> Any:
        """The value as the tool takes it, or _MISSING for nothing (None, blank text);
        ToolError when it does not fit."""
        if value is None or (isinstance(value, str) and not value.strip()):
            return _MISSING
        if self.type == "string":
            return _text(value)
        if self.type == "boolean":
            return self._boolean(value)
        if self.type == "select":
            text = _text(value).strip()
            if self.options and text not in self.options:
                raise ToolError(
                    f"Parameter “{self.name}” must be one of {', '.join(self.options)}, "
                    f"not “{text}”."
                )
            return text
        return self._number(value)

    def _boolean(self, value: Any) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int | float) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise ToolError(f"Parameter “{self.name}” must be true or false, not “{value}”.")

    def _number(self, value: Any) -> int | float:
        number: int | float
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ToolError(f"Parameter “{self.name}” must be a number, not “{value}”.")
        if isinstance(value, str):
            text = value.strip()
            try:
                number = int(text) if _INTEGER.match(text) else float(text)
            except ValueError:
                raise ToolError(
                    f"Parameter “{self.name}” must be a number, not “{value}”."
                ) from None
        else:
            number = value
        if isinstance(number, float) and not math.isfinite(number):
            raise ToolError(f"Parameter “{self.name}” must be a finite number.")
        if self.type == "integer":
            if isinstance(number, float):
                if not number.is_integer():
                    raise ToolError(f"Parameter “{self.name}” must be a whole number.")
                number = int(number)
        if self.minimum is not None and number < self.minimum:
            raise ToolError(f"Parameter “{self.name}” must be at least {self.minimum:g}.")
        if self.maximum is not None and number > self.maximum:
            raise ToolError(f"Parameter “{self.name}” must be at most {self.maximum:g}.")
        return number


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


class BuiltinTool:
    """Base of Weft's built-in tools. A subclass sets the class attributes and implements
    `run`, which receives the parameters already checked and converted."""

    provider: ClassVar[ToolProvider]
    name: ClassVar[str]
    label: ClassVar[str]
    description: ClassVar[str]
    parameters: ClassVar[tuple[ToolParameter, ...]] = ()

    @property
    def provider_id(self) -> str:
        return self.provider.id

    @property
    def key(self) -> str:
        """`provider/name`, for messages."""
        return f"{self.provider.id}/{self.name}"

    @property
    def icon(self) -> dict[str, str]:
        """The icon as Dify's `/v1/meta` gives a tool's: an emoji on a background."""
        return {"content": self.provider.icon, "background": self.provider.background}

    def parameter(self, name: str) -> ToolParameter | None:
        return next((p for p in self.parameters if p.name == name), None)

    def definition(self, *, omit: Collection[str] = ()) -> Tool:
        """The tool as a model is offered it: the parameters the model fills in (not the
        builder's settings, nor those in `omit`, which are given fixed values)."""
        offered = [p for p in self.parameters if p.form == "llm" and p.name not in omit]
        return Tool(
            name=self.name,
            description=self.description,
            parameters={
                "type": "object",
                "properties": {p.name: p.schema() for p in offered},
                "required": [p.name for p in offered if p.required],
            },
        )

    def check(self, parameters: Mapping[str, Any]) -> dict[str, Any]:
        """The parameters converted to their types, defaults filled in; ToolError for a
        missing required one or a value that does not fit. Names the tool does not know are
        left out."""
        values: dict[str, Any] = {}
        for parameter in self.parameters:
            value = parameter.convert(parameters.get(parameter.name))
            if value is _MISSING:
                if parameter.default is not None:
                    values[parameter.name] = parameter.default
                elif parameter.required:
                    raise ToolError(f"{self.label}: parameter “{parameter.name}” is required.")
                continue
            values[parameter.name] = value
        return values

    async def invoke(self, context: ToolContext, parameters: Mapping[str, Any]) -> ToolResult:
        """Run the tool with `parameters` (as a node or a model gives them)."""
        return await self.run(context, self.check(parameters))

    async def run(self, context: ToolContext, values: dict[str, Any]) -> ToolResult:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.key}>"
