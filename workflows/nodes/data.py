"""Nodes that move and shape values: variable aggregator, assigner (versions 1 and 2) and list
operator; the value types they check."""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Mapping
from typing import Any

from ..dsl import AssignerV1Data, LoopData
from ..dsl.nodes_data import VALUELESS_OPERATIONS, AssignItem
from ..dsl.selectors import CONVERSATION, to_text
from ..engine.executor import NodeContext, NodeExecutor, NodeFailed, NodeResult, register
from ..engine.pool import MISSING
from .conditions import ConditionError, compare, file_attribute, is_file

_NUMBER_TYPES = frozenset({"number", "integer", "float"})
_ARITHMETIC: dict[str, Callable[[Any, Any], Any]] = {
    "+=": operator.add,
    "-=": operator.sub,
    "*=": operator.mul,
    "/=": operator.truediv,
}
_SCALAR_CHECKS: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "object": lambda v: isinstance(v, dict),
    "file": is_file,
    "any": lambda v: v is not None,
}


# --- Value types (Dify's segment types, as far as plain values tell them) -----------------


def fits(var_type: str, value: Any) -> bool:
    """Whether a value is of a variable type (`string`, `array[number]` …)."""
    if var_type.startswith("array[") and var_type.endswith("]"):
        item_type = var_type[6:-1]
        return isinstance(value, list) and all(fits(item_type, item) for item in value)
    check = _SCALAR_CHECKS.get(var_type)
    return check(value) if check is not None else True


def type_of(value: Any) -> str | None:
    """The variable type a value shows; None for None (its type cannot be told)."""
    if value is None:
        return None
    if isinstance(value, list):
        kinds = {type_of(item) for item in value}
        return f"array[{kinds.pop()}]" if len(kinds) == 1 and None not in kinds else "array[any]"
    for name in ("boolean", "number", "string", "file", "object"):
        if _SCALAR_CHECKS[name](value):
            return name
    return "any"


def zero_value(var_type: str | None) -> Any:
    """What clearing a variable of this type leaves (Dify's zero values)."""
    if var_type is None or var_type == "file":
        return None
    if var_type.startswith("array["):
        return []
    return {"string": "", "boolean": False, "object": {}, "float": 0.0}.get(
        var_type, 0 if var_type in _NUMBER_TYPES else None
    )


def coerce_constant(var_type: str, value: Any) -> Any:
    """A constant typed in the editor as a value of `var_type`: numbers, booleans, objects
    and lists may come as text (JSON). Raises ValueError when it does not fit."""
    if isinstance(value, str) and var_type != "string":
        text = value.strip()
        try:
            value = json.loads(text) if text else zero_value(var_type)
        except json.JSONDecodeError:
            raise ValueError(f"“{value}” is not a valid {var_type}.") from None
    if not fits(var_type, value):
        raise ValueError(f"{to_text(value)!r} is not a valid {var_type}.")
    return value


# --- Variable aggregator ------------------------------------------------------------------


@register
class VariableAggregatorExecutor(NodeExecutor):
    """The first variable that has a value (the branch that ran); in group mode one such
    value per group, as `{group_name: {"output": value}}`."""

    types = ("variable-aggregator", "variable-assigner")

    async def run(self, ctx: NodeContext) -> NodeResult:
        settings = self.data.advanced_settings
        inputs: dict[str, Any] = {}
        outputs: dict[str, Any] = {}
        if settings is not None and settings.group_enabled:
            for group in settings.groups:
                found = self._first(ctx, group.variables, inputs)
                if found is not MISSING:
                    outputs[group.group_name] = {"output": found}
        else:
            found = self._first(ctx, self.data.variables, inputs)
            if found is not MISSING:
                outputs["output"] = found
        return NodeResult(inputs=inputs, outputs=outputs)

    @staticmethod
    def _first(ctx: NodeContext, selectors: list[list[str]], inputs: dict[str, Any]) -> Any:
        for selector in selectors:
            value = ctx.get(selector)
            if value is not None:
                inputs[".".join(selector[1:])] = value
                return value
        return MISSING


# --- Assigner ------------------------------------------------------------------------------


def _supported(operation: str, var_type: str | None) -> bool:
    if operation in ("over-write", "clear"):
        return True
    if var_type is None:  # a variable holding None: only replacing it makes sense
        return operation == "set"
    if operation == "set":
        return var_type in _NUMBER_TYPES | {"string", "boolean", "object"}
    if operation in _ARITHMETIC:
        return var_type in _NUMBER_TYPES
    return var_type.startswith("array[")


def _input_supported(input_type: str, operation: str, var_type: str | None) -> bool:
    """Dify's rule: set and arithmetic take constants only; arrays take variables only."""
    if input_type == "variable":
        return operation != "set" and operation not in _ARITHMETIC
    if var_type is not None and var_type.startswith("array["):
        return False
    return operation in ("over-write", "set") or operation in _ARITHMETIC


def _valid_input(operation: str, var_type: str | None, value: Any) -> bool:
    if var_type is None or operation in VALUELESS_OPERATIONS:
        return True
    if operation == "append":
        return fits(var_type[6:-1], value)
    if operation == "extend":
        return fits(var_type, value)
    if operation == "/=" and value == 0:
        return False
    return fits(var_type, value)


@register
class AssignerExecutor(NodeExecutor):
    """Changes conversation variables and loop variables. Version 2 applies a list of
    operations; version 1 (one over-write, append or clear from a variable) runs as a list of
    one. Every operation is checked first, so a failing node changes nothing."""

    types = ("assigner",)

    async def run(self, ctx: NodeContext) -> NodeResult:
        data = self.data
        if isinstance(data, AssignerV1Data):
            items = [
                AssignItem(
                    variable_selector=data.assigned_variable_selector,
                    input_type="variable",
                    operation=data.write_mode,
                    value=data.input_variable_selector,
                )
            ]
        else:
            items = data.items
        updates: dict[tuple[str, str], tuple[str | None, Any]] = {}
        for item in items:
            self._apply(ctx, item, updates)
        process_data: dict[str, Any] = {name: value for (_, name), (_, value) in updates.items()}
        process_data["__updated_variables"] = [
            {"name": name, "selector": [owner, name], "value_type": kind, "new_value": value}
            for (owner, name), (kind, value) in updates.items()
        ]
        for (owner, name), (_, value) in updates.items():
            ctx.pool.set([owner, name], value)
        return NodeResult(inputs=data.model_dump(mode="json"), process_data=process_data)

    def _apply(
        self,
        ctx: NodeContext,
        item: AssignItem,
        updates: dict[tuple[str, str], tuple[str | None, Any]],
    ) -> None:
        if len(item.variable_selector) != 2:
            raise NodeFailed("An assigner item has no variable to assign.", error_type="NoVariable")
        key = (item.variable_selector[0], item.variable_selector[1])
        where = ".".join(key)
        declared = self._declared_type(ctx, key)
        if key[0] != CONVERSATION and declared is MISSING:
            raise NodeFailed(
                f"Only conversation and loop variables can be assigned; {where} is neither.",
                error_type="VariableNotAssignable",
            )
        current = updates[key][1] if key in updates else ctx.get(key, MISSING)
        if current is MISSING:
            raise NodeFailed(f"Variable {where} was not found.", error_type="VariableNotFound")
        var_type = type_of(current) if declared is MISSING else declared
        operation = item.operation
        if not _supported(operation, var_type):
            raise NodeFailed(
                f"“{operation}” cannot change {where}, a {var_type or 'null'} variable.",
                error_type="OperationNotSupported",
            )
        value = item.value
        if operation not in VALUELESS_OPERATIONS and not _input_supported(
            item.input_type, operation, var_type
        ):
            raise NodeFailed(
                f"“{operation}” on {where} cannot take a {item.input_type} value.",
                error_type="InputTypeNotSupported",
            )
        if operation not in VALUELESS_OPERATIONS and item.input_type == "variable":
            if not (isinstance(value, list) and value):
                raise NodeFailed(
                    f"No variable was chosen as the value for {where}.",
                    error_type="InvalidInputValue",
                )
            source = (value[0], value[1]) if len(value) == 2 else None
            # Reads see this node's earlier operations, as Dify's working copy does.
            value = updates[source][1] if source in updates else ctx.get(value, MISSING)
            if value is MISSING:
                raise NodeFailed(
                    f"The value for {where}, {'.'.join(item.value)}, was not found.",
                    error_type="VariableNotFound",
                )
            if value is None:
                return  # Dify leaves the variable alone when the source holds nothing
        if operation == "set" and var_type == "object" and isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                value = MISSING
        if value is MISSING or not _valid_input(operation, var_type, value):
            raise NodeFailed(
                f"“{operation}” on {where} ({var_type}) cannot take {to_text(item.value)!r}.",
                error_type="InvalidInputValue",
            )
        updates[key] = (var_type, self._result(operation, var_type, current, value))

    @staticmethod
    def _declared_type(ctx: NodeContext, key: tuple[str, str]) -> Any:
        """A loop variable's declared type; MISSING when `key` is not a loop variable."""
        owner = ctx.scope.run.graph.nodes.get(key[0])
        if owner is None or not isinstance(owner.data, LoopData):
            return MISSING
        for variable in owner.data.loop_variables or []:
            if variable.label == key[1]:
                return variable.var_type
        return MISSING

    @staticmethod
    def _result(operation: str, var_type: str | None, current: Any, value: Any) -> Any:
        try:
            match operation:
                case "clear":
                    return zero_value(var_type)
                case "append":
                    return [*current, value]
                case "extend":
                    return [*current, *value]
                case "remove-first":
                    return current[1:]
                case "remove-last":
                    return current[:-1]
                case _ if operation in _ARITHMETIC:
                    return _ARITHMETIC[operation](current, value)
        except TypeError:
            # A loop variable declared as a list or number may still hold something else.
            raise NodeFailed(
                f"“{operation}” cannot change the value {to_text(current)!r}.",
                error_type="InvalidInputValue",
            ) from None
        return value


# --- List operator -------------------------------------------------------------------------


def _field(item: Any, key: str) -> Any:
    """What a filter or sort reads of an item: a file's attribute, an object's key, or the
    item itself."""
    if is_file(item):
        return file_attribute(item, key)
    if isinstance(item, Mapping):
        return item.get(key)
    return item


@register
class ListOperatorExecutor(NodeExecutor):
    """Filters, picks (1-based), sorts and limits a list, in Dify's order; outputs `result`,
    `first_record` and `last_record`."""

    types = ("list-operator",)

    async def run(self, ctx: NodeContext) -> NodeResult:
        data = self.data
        where = ".".join(data.variable)
        items = ctx.get(data.variable, MISSING)
        if items is MISSING:
            raise NodeFailed(f"Variable {where} was not found.", error_type="VariableNotFound")
        if not items:
            return NodeResult(
                inputs={"variable": []},
                outputs={"result": [], "first_record": None, "last_record": None},
            )
        if not isinstance(items, list):
            raise NodeFailed(f"{where} is not a list.", error_type="InvalidVariable")
        result = list(items)
        try:
            if data.filter_by.enabled:
                for condition in data.filter_by.conditions:
                    expected = condition.value
                    if isinstance(expected, str):
                        expected = ctx.render(expected)
                    result = [
                        item
                        for item in result
                        if compare(
                            condition.comparison_operator, _field(item, condition.key), expected
                        )
                    ]
            if data.extract_by.enabled:
                result = [result[self._serial(ctx, len(result)) - 1]]
            if data.order_by.enabled:
                key = data.order_by.key
                # Items without the key go last, whichever the direction of the rest.
                absent = [item for item in result if _field(item, key) is None]
                result = [
                    *sorted(
                        (item for item in result if _field(item, key) is not None),
                        key=lambda item: _field(item, key),
                        reverse=data.order_by.value == "desc",
                    ),
                    *absent,
                ]
            if data.limit.enabled and data.limit.size >= 0:
                result = result[: data.limit.size]
        except ConditionError as exc:
            raise NodeFailed(str(exc), error_type="ListOperatorError") from None
        except TypeError:  # only sorting compares items with each other
            raise NodeFailed(
                f"The items of {where} are of different types and cannot be sorted.",
                error_type="ListOperatorError",
            ) from None
        return NodeResult(
            inputs={"variable": items},
            outputs={
                "result": result,
                "first_record": result[0] if result else None,
                "last_record": result[-1] if result else None,
            },
        )

    def _serial(self, ctx: NodeContext, length: int) -> int:
        text = ctx.render(self.data.extract_by.serial).strip()
        try:
            serial = int(text)
        except ValueError:
            raise NodeFailed(f"“{text}” is not a position.", error_type="InvalidSerial") from None
        if not 1 <= serial <= length:
            raise NodeFailed(
                f"Position {serial} is outside the list (1 to {length}).",
                error_type="InvalidSerial",
            )
        return serial
