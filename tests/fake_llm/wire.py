"""The shapes shared by both vendors' handlers: what a handler gets, returns, or raises."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from .scenario import Reply, Scenario

Flavor = Literal["openai", "anthropic"]


class ApiError(Exception):
    """A request the real API would refuse; rendered in the vendor's error shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.headers = headers or {}


@dataclass
class RecordedRequest:
    """A request as the server received it; `status` and `cancelled` fill in as it is answered."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    json: Any
    status: int | None = None
    cancelled: bool = False


@dataclass(frozen=True)
class Call:
    """A validated request, with its knobs, handed to a vendor handler."""

    body: dict[str, Any]
    model: str
    query: dict[str, str]
    scenario: Scenario
    take_reply: Callable[[str], Reply | None]
    embedding_dim: int
    models: tuple[str, ...]


@dataclass(frozen=True)
class JsonResult:
    """A non-streaming answer; `tokens` paces it like a stream of that many tokens would."""

    body: Any
    tokens: int = 0


@dataclass(frozen=True)
class StreamResult:
    """A server-sent event stream; `malformed` is the broken event the fault knob injects."""

    events: Iterable[bytes]
    malformed: bytes


def dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def sse(data: Any, event: str | None = None) -> bytes:
    """One server-sent event; `data` is JSON-encoded unless it is already bytes."""
    payload = data if isinstance(data, bytes) else dumps(data)
    prefix = f"event: {event}\n".encode() if event else b""
    return prefix + b"data: " + payload + b"\n\n"
