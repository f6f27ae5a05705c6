"""Dify's limits on the values a code node takes and returns (api/configs: CODE_MAX_*), checked
in the web process on decoded JSON, never trusted to the sandbox.

Differences from Dify, on purpose:
- Floats must be finite. Dify also refuses a float with more than CODE_MAX_PRECISION (20)
  decimal places, which rejects ordinary small values such as 1e-21 while a double never
  carries more than 17 significant digits; here a float passes as its shortest round-trip
  form, so no precision is lost or invented.
- Without a declared output schema an array is classed by its elements: any object or array
  inside makes it an array of objects, only numbers/booleans/nulls an array of numbers,
  anything else an array of strings.
- Inputs get the string, number and depth checks but not the array lengths: an upstream
  node may hand a code node more than 30 retrieved chunks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .errors import InputValidationError, OutputValidationError

MAX_STRING_LENGTH = 400_000
MAX_NUMBER = 2**63 - 1
MIN_NUMBER = -(2**63)
MAX_DEPTH = 5
MAX_STRING_ARRAY_LENGTH = 30
MAX_OBJECT_ARRAY_LENGTH = 30
MAX_NUMBER_ARRAY_LENGTH = 1000


class _Breach(Exception):
    pass


def check_outputs(outputs: Mapping[str, Any]) -> None:
    """Raise OutputValidationError naming the first output that breaks a limit."""
    try:
        _Walker("Output", arrays=True).walk(outputs, "", 0)
    except _Breach as breach:
        raise OutputValidationError(str(breach)) from None


def check_inputs(inputs: Mapping[str, Any]) -> None:
    """Raise InputValidationError naming the first input that breaks a limit."""
    try:
        _Walker("Input", arrays=False).walk(inputs, "", 0)
    except _Breach as breach:
        raise InputValidationError(str(breach)) from None


class _Walker:
    def __init__(self, label: str, *, arrays: bool) -> None:
        self.label = label
        self.arrays = arrays

    def walk(self, value: Any, path: str, depth: int, *, in_array: bool = False) -> None:
        """`depth` counts the objects around `value`, and arrays directly inside arrays."""
        if value is None or isinstance(value, bool):
            return
        if isinstance(value, str):
            self._string(value, path)
        elif isinstance(value, int):
            if not MIN_NUMBER <= value <= MAX_NUMBER:
                self._fail(path, f"is {value}, out of the 64-bit integer range {_RANGE}")
        elif isinstance(value, float):
            if not math.isfinite(value):
                self._fail(path, f"is {value}, which is not a finite number")
            if not MIN_NUMBER <= value <= MAX_NUMBER:
                self._fail(path, f"is {value}, out of the 64-bit integer range {_RANGE}")
        elif isinstance(value, Mapping):
            self._object(value, path, depth + 1)
        elif isinstance(value, list | tuple):
            self._array(value, path, depth + 1 if in_array else depth)
        else:
            self._fail(path, f"is a {type(value).__name__}, which is not JSON-compatible")

    def _string(self, value: str, path: str) -> None:
        if len(value) > MAX_STRING_LENGTH:
            self._fail(
                path,
                f"is a string of {len(value)} characters; "
                f"the limit is {MAX_STRING_LENGTH} (MAX_STRING_LENGTH)",
            )

    def _object(self, value: Mapping[Any, Any], path: str, depth: int) -> None:
        if depth > MAX_DEPTH:
            self._fail(path, f"is nested {depth} levels deep; the limit is {MAX_DEPTH} (MAX_DEPTH)")
        for key, item in value.items():
            if not isinstance(key, str):
                self._fail(path, f"has a key {key!r} that is not a string")
            self._string(key, path)
            self.walk(item, f"{path}.{key}" if path else key, depth)

    def _array(self, value: list[Any] | tuple[Any, ...], path: str, depth: int) -> None:
        if depth > MAX_DEPTH:
            self._fail(path, f"is nested {depth} levels deep; the limit is {MAX_DEPTH} (MAX_DEPTH)")
        if self.arrays:
            limit, kind, name = _array_limit(value)
            if len(value) > limit:
                self._fail(
                    path,
                    f"has {len(value)} elements; an array of {kind} may have at most "
                    f"{limit} ({name})",
                )
        for index, item in enumerate(value):
            self.walk(item, f"{path}[{index}]", depth, in_array=True)

    def _fail(self, path: str, problem: str) -> None:
        where = f"{self.label} `{path}`" if path else f"The {self.label.lower()}s"
        raise _Breach(f"{where} {problem}.")


_RANGE = f"[{MIN_NUMBER}, {MAX_NUMBER}]"


def _array_limit(value: list[Any] | tuple[Any, ...]) -> tuple[int, str, str]:
    if any(isinstance(item, Mapping | list | tuple) for item in value):
        return MAX_OBJECT_ARRAY_LENGTH, "objects", "MAX_OBJECT_ARRAY_LENGTH"
    if all(item is None or isinstance(item, int | float) for item in value):
        return MAX_NUMBER_ARRAY_LENGTH, "numbers", "MAX_NUMBER_ARRAY_LENGTH"
    return MAX_STRING_ARRAY_LENGTH, "strings", "MAX_STRING_ARRAY_LENGTH"
