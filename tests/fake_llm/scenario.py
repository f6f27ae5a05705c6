"""What the fake does with a request: scripted replies, fault knobs, and the queues holding them."""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field, fields, replace
from typing import Any, Generic, TypeVar


@dataclass(frozen=True)
class ToolCall:
    """A function call the fake model makes; `arguments` is a dict or a raw JSON string."""

    name: str
    arguments: dict[str, Any] | str = field(default_factory=dict)
    id: str | None = None

    @property
    def arguments_json(self) -> str:
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(self.arguments)


@dataclass(frozen=True)
class Reply:
    """A scripted answer. `json_output` (any JSON value) is used when the request asks for JSON."""

    text: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    json_output: Any = None


@dataclass(frozen=True)
class Scenario:
    """Fault and pacing knobs; None means "not set here", so scenarios can be layered."""

    status: int | None = None
    retry_after: float | None = None
    hang: bool | None = None
    stall_after: int | None = None
    cut_after: int | None = None
    malformed_after: int | None = None
    first_token_latency: float | None = None
    latency_per_token: float | None = None
    words: int | None = None
    tools: bool | None = None

    def over(self, base: Scenario) -> Scenario:
        """This scenario's knobs, falling back to `base` for the ones it leaves unset."""
        overrides = {
            knob.name: value
            for knob in fields(self)
            if (value := getattr(self, knob.name)) is not None
        }
        return replace(base, **overrides)


PRESETS: dict[str, Scenario] = {
    "slow": Scenario(first_token_latency=0.2, latency_per_token=0.02),
    "hang": Scenario(hang=True),
    "stall": Scenario(stall_after=2),
    "cut": Scenario(cut_after=3),
    "malformed": Scenario(malformed_after=2),
    "long": Scenario(words=2000),
    "tools": Scenario(tools=True),
    "429": Scenario(status=429, retry_after=1),
    "500": Scenario(status=500),
    "502": Scenario(status=502),
    "503": Scenario(status=503),
    "529": Scenario(status=529),
}

_KNOB_TYPES: dict[str, type] = {
    "status": int,
    "retry_after": float,
    "hang": bool,
    "stall_after": int,
    "cut_after": int,
    "malformed_after": int,
    "first_token_latency": float,
    "latency_per_token": float,
    "words": int,
    "tools": bool,
}


def parse_scenario(spec: str) -> Scenario:
    """Parse `X-Fake-Scenario`: presets and `knob=value` items separated by `,` or `;`.

    Raises ValueError naming the bad item, so a typo in a test fails loudly.
    """
    scenario = Scenario()
    for item in filter(None, (part.strip() for part in re.split(r"[,;]", spec))):
        name, has_value, raw = (part.strip() for part in item.partition("="))
        if not has_value and name in PRESETS:
            scenario = PRESETS[name].over(scenario)
            continue
        kind = _KNOB_TYPES.get(name)
        if kind is None:
            known = ", ".join([*PRESETS, *(f"{knob}=" for knob in _KNOB_TYPES)])
            raise ValueError(f"unknown fake scenario item {item!r}; known: {known}")
        value: Any
        if kind is bool:
            value = not has_value or raw.lower() in ("1", "true", "yes", "on")
        else:
            try:
                value = kind(raw)
            except ValueError:
                raise ValueError(f"fake scenario item {item!r} needs a number") from None
        scenario = replace(scenario, **{name: value})
    return scenario


def model_preset(model: str) -> Scenario | None:
    """The preset a `fake-<preset>` model name selects, if any."""
    prefix, _, name = model.partition("-")
    return PRESETS.get(name) if prefix == "fake" else None


T = TypeVar("T")


@dataclass
class _Entry(Generic[T]):
    item: T
    times: int
    match: str | None


class ScriptQueue(Generic[T]):
    """A thread-safe FIFO of items, each good for `times` requests whose prompt contains `match`."""

    def __init__(self) -> None:
        self._entries: list[_Entry[T]] = []
        self._lock = threading.Lock()

    def push(self, item: T, *, times: int, match: str | None) -> None:
        if times < 1:
            raise ValueError("times must be at least 1")
        with self._lock:
            self._entries.append(_Entry(item, times, match))

    def take(self, prompt: str) -> T | None:
        with self._lock:
            for entry in self._entries:
                if entry.match is None or entry.match in prompt:
                    entry.times -= 1
                    if entry.times == 0:
                        self._entries.remove(entry)
                    return entry.item
        return None

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return sum(entry.times for entry in self._entries)
