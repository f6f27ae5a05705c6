"""The condition evaluator shared by if-else cases, loop break conditions and list filters.

Dify's operators with Dify's type rules: text operators (contains, start with, is …) want
text (`contains` also takes a list), number operators (=, >, ≤ …) want a number or, for = and
≠, a boolean, and the emptiness and null operators take anything. A missing value counts as
None: `contains` and `start with` then do not hold, `not contains` and `null` do. A value of
the wrong type is a `ConditionError`, which the if-else node reports as its failure.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ..dsl.base import Condition, SubCondition, SubVariableCondition
from ..dsl.selectors import to_text
from ..engine.pool import VariablePool

logger = logging.getLogger(__name__)

# The attributes of a file a sub-condition, a list filter or a sort may read; `name` and
# `url` are stored as `filename` and `remote_url` by Dify's file objects.
FILE_ATTRIBUTES = frozenset(
    {"name", "size", "type", "extension", "mime_type", "transfer_method", "url", "related_id"}
)
_FILE_KEYS = {"name": ("filename", "name"), "url": ("url", "remote_url")}
# Operators that look inside a list of files through a sub-variable condition.
_FILE_LIST_OPERATORS = frozenset({"contains", "not contains", "all of"})
_NUMBER_OPERATORS = frozenset({"=", "≠", ">", "<", "≥", "≤"})


class ConditionError(ValueError):
    """A condition cannot be evaluated: a value of the wrong type, an unknown operator."""


def is_file(value: Any) -> bool:
    """Whether a value is a file object (Dify's file dict)."""
    return isinstance(value, Mapping) and (
        "transfer_method" in value or value.get("dify_model_identity") == "__dify__file__"
    )


def file_attribute(file: Mapping[str, Any], key: str) -> Any:
    """One attribute of a file; extensions always with their leading dot."""
    if key not in FILE_ATTRIBUTES:
        raise ConditionError(f"Files have no attribute “{key}”.")
    value = next((file[k] for k in _FILE_KEYS.get(key, (key,)) if file.get(k) is not None), None)
    return _dotted(value) if key == "extension" else value


def _dotted(extension: Any) -> Any:
    if isinstance(extension, str) and extension and not extension.startswith("."):
        return "." + extension
    return extension


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    return "an object"


def to_bool(value: Any) -> bool:
    """A boolean from a condition's value as the editor writes it: true/false, 1/0."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return bool(value)
    if isinstance(value, str):
        try:
            loaded = json.loads(value.strip().lower())
        except json.JSONDecodeError:
            loaded = None
        if isinstance(loaded, bool | int):
            return bool(loaded)
    raise ConditionError(f"“{value}” is not true or false.")


def to_number(value: Any) -> int | float:
    """A number from a condition's value (the editor writes numbers as text)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            pass
        try:
            return float(text)
        except ValueError:
            pass
    raise ConditionError(f"“{to_text(value)}” is not a number.")


def _is_bool_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, bool) for v in value)


def _contains(container: Any, expected: Any) -> bool:
    if isinstance(container, str):
        return to_text(expected) in container
    if not isinstance(container, list):
        raise ConditionError(f"“contains” needs text or a list, not {_kind(container)}.")
    if expected in container:
        return True
    # The editor writes the number sought in a list of numbers as text.
    if isinstance(expected, str) and any(
        isinstance(v, int | float) and not isinstance(v, bool) for v in container
    ):
        try:
            return to_number(expected) in container
        except ConditionError:
            return False
    return False


def _member(value: Any, expected: Any) -> bool:
    if isinstance(expected, str):
        return to_text(value) in expected
    if not isinstance(expected, list):
        raise ConditionError(f"“in” needs a list of values, not {_kind(expected)}.")
    return value in expected or to_text(value) in [to_text(e) for e in expected]


def _text(operator: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConditionError(f"“{operator}” needs text, not {_kind(value)}.")
    return value


def _numbers(operator: str, actual: Any, expected: Any) -> bool:
    if isinstance(actual, bool):
        if operator not in ("=", "≠"):
            raise ConditionError(f"“{operator}” needs a number, not a boolean.")
        return (actual == to_bool(expected)) == (operator == "=")
    if not isinstance(actual, int | float):
        raise ConditionError(f"“{operator}” needs a number, not {_kind(actual)}.")
    target = to_number(expected)
    match operator:
        case "=":
            return actual == target
        case "≠":
            return actual != target
        case ">":
            return actual > target
        case "<":
            return actual < target
        case "≥":
            return actual >= target
        case _:
            return actual <= target


def compare(operator: str, actual: Any, expected: Any = None) -> bool:
    """Whether `actual <operator> expected` holds, by Dify's rules."""
    if expected is not None and (isinstance(actual, bool) or _is_bool_list(actual)):
        # Booleans are compared with the editor's true/false (or 1/0) text turned into one.
        expected = (
            [to_bool(e) for e in expected] if isinstance(expected, list) else to_bool(expected)
        )
    match operator:
        case "contains":
            return bool(actual) and _contains(actual, expected)
        case "not contains":
            return not actual or not _contains(actual, expected)
        case "start with":
            return bool(actual) and _text(operator, actual).startswith(to_text(expected))
        case "end with":
            return bool(actual) and _text(operator, actual).endswith(to_text(expected))
        case "is" | "is not":
            if actual is None:
                return False
            if not isinstance(actual, str | bool):
                raise ConditionError(f"“{operator}” needs text or a boolean, not {_kind(actual)}.")
            return (actual == expected) == (operator == "is")
        case "empty":
            return not actual
        case "not empty":
            return bool(actual)
        case "null" | "not exists":
            return actual is None
        case "not null" | "exists":
            return actual is not None
        case "in":
            return bool(actual) and _member(actual, expected)
        case "not in":
            return not actual or not _member(actual, expected)
        case "all of":
            if not isinstance(expected, list):
                raise ConditionError("“all of” needs a list of values.")
            return bool(actual) and all(_contains(actual, e) for e in expected)
        case _ if operator in _NUMBER_OPERATORS:
            return actual is not None and _numbers(operator, actual, expected)
    raise ConditionError(f"Unknown comparison operator “{operator}”.")


def _sub_condition_holds(condition: SubCondition, file: Any) -> bool:
    if not isinstance(file, Mapping):
        raise ConditionError(f"Sub-variable conditions need files, not {_kind(file)}.")
    expected = condition.value
    if condition.key == "extension":
        expected = (
            [_dotted(e) for e in expected] if isinstance(expected, list) else _dotted(expected)
        )
    return compare(condition.comparison_operator, file_attribute(file, condition.key), expected)


def _files_match(files: list[Any], operator: str, sub: SubVariableCondition) -> bool:
    """Dify's reading of sub-conditions: each holds when some file meets it (every file, for a
    negative operator such as `not in`), joined by the sub-condition's and/or. `not contains`
    is the negation of that; `all of` asks every file to meet the joined sub-conditions."""
    join = all if sub.logical_operator == "and" else any
    if operator == "all of":
        return bool(files) and all(
            join(_sub_condition_holds(c, file) for c in sub.conditions) for file in files
        )
    results = []
    for condition in sub.conditions:
        per_file = [_sub_condition_holds(condition, file) for file in files]
        results.append(all(per_file) if "not" in condition.comparison_operator else any(per_file))
    found = join(results)
    return not found if operator == "not contains" else found


@dataclass(slots=True)
class Evaluation:
    """The outcome of a group of conditions, and what each one compared."""

    result: bool
    results: list[bool] = field(default_factory=list)
    conditions: list[dict[str, Any]] = field(default_factory=list)


def _evaluate_one(pool: VariablePool, condition: Condition) -> tuple[bool, dict[str, Any]]:
    operator = condition.comparison_operator
    actual = pool.get(condition.variable_selector)
    record: dict[str, Any] = {
        "variable_selector": list(condition.variable_selector),
        "comparison_operator": operator,
        "actual_value": actual,
    }
    sub = condition.sub_variable_condition
    if (
        sub is not None
        and sub.conditions
        and operator in _FILE_LIST_OPERATORS
        and isinstance(actual, list)
    ):
        record["sub_variable_condition"] = sub.model_dump(mode="json")
        return _files_match(actual, operator, sub), record
    expected = condition.value
    if isinstance(expected, str):
        # Values may reference variables ({{#node.var#}}), numbers set as "variable" too.
        expected = pool.render(expected)
    record["expected_value"] = expected
    return compare(operator, actual, expected), record


def evaluate(
    pool: VariablePool, conditions: Sequence[Condition], logical_operator: Literal["and", "or"]
) -> Evaluation:
    """Evaluate conditions joined by and/or, stopping at the first one that decides (so a
    later condition that could not be evaluated does not matter)."""
    evaluation = Evaluation(result=logical_operator == "and")
    for condition in conditions:
        try:
            result, record = _evaluate_one(pool, condition)
        except ConditionError as exc:
            where = ".".join(condition.variable_selector) or "an unset variable"
            raise ConditionError(f"Condition on {where}: {exc}") from None
        evaluation.results.append(result)
        evaluation.conditions.append(record)
        if result != (logical_operator == "and"):
            evaluation.result = result
            break
    return evaluation


def holds_or_false(
    pool: VariablePool, conditions: Sequence[Condition], logical_operator: Literal["and", "or"]
) -> bool:
    """Whether conditions hold, a condition that cannot be evaluated counting as not holding
    (Dify's rule for loop break conditions)."""
    try:
        return evaluate(pool, conditions, logical_operator).result
    except ConditionError as exc:
        logger.warning("Break condition not evaluated: %s", exc)
        return False
