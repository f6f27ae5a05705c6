"""What the HTTP implementations share: reading errors and server-sent events."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from email.utils import parsedate_to_datetime

import httpx
from django.utils import timezone

from .types import (
    ModelNotFound,
    ProviderAuthFailed,
    ProviderBadRequest,
    ProviderError,
    ProviderProtocolError,
    ProviderUnavailable,
)

MAX_ERROR_TEXT = 500


class Retryable(ProviderUnavailable):
    """A failure worth trying again (429, 5xx, 529, connection lost), maybe after a wait."""

    def __init__(self, message: str, *, retry_after: float | None = None, status: int = 0):
        super().__init__(message)
        self.retry_after = retry_after
        self.upstream_status = status


def retry_after_seconds(response: httpx.Response) -> float | None:
    """Retry-After as seconds (it may be a number or an HTTP date)."""
    value = response.headers.get("retry-after")
    if not value:
        ms = response.headers.get("retry-after-ms")
        return float(ms) / 1000 if ms and ms.replace(".", "", 1).isdigit() else None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - timezone.now()).total_seconds())
    except (TypeError, ValueError):
        return None


def provider_message(response: httpx.Response, body: bytes) -> str:
    """The provider's own error message, from its JSON body if it has one."""
    try:
        data = json.loads(body)
    except ValueError:
        text = body.decode("utf-8", "replace").strip()
        return text[:MAX_ERROR_TEXT] or f"HTTP {response.status_code}"
    error = data.get("error", data) if isinstance(data, dict) else data
    if isinstance(error, dict):
        message = error.get("message") or error.get("detail") or json.dumps(error)[:200]
    else:
        message = str(error)
    return str(message)[:MAX_ERROR_TEXT]


def raise_for_status(response: httpx.Response, body: bytes, *, provider: str) -> None:
    """Map an error answer to the runtime's errors, keeping the provider's message."""
    status = response.status_code
    if status < 400:
        return
    message = f"{provider}: {provider_message(response, body)}"
    if status in (401, 403):
        raise ProviderAuthFailed(message)
    if status == 404:
        raise ModelNotFound(message)
    if status == 429 or status >= 500:
        raise Retryable(message, retry_after=retry_after_seconds(response), status=status)
    if status in (400, 413, 422):
        raise ProviderBadRequest(message)
    raise ProviderError(message)


async def sse_events(response: httpx.Response) -> AsyncIterator[tuple[str, str]]:
    """(event, data) pairs of a text/event-stream body, as the SSE spec frames them."""
    event, data_lines = "", list[str]()
    async for line in response.aiter_lines():
        if line == "":
            if data_lines:
                yield event or "message", "\n".join(data_lines)
            event, data_lines = "", list[str]()
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            event = value
        elif field == "data":
            data_lines.append(value)
    if data_lines:
        yield event or "message", "\n".join(data_lines)


def parse_json(data: str, *, provider: str) -> dict:
    try:
        parsed = json.loads(data)
    except ValueError as exc:
        raise ProviderProtocolError(
            f"{provider} sent a stream chunk that is not JSON: {data[:80]!r}"
        ) from exc
    if not isinstance(parsed, dict):
        raise ProviderProtocolError(f"{provider} sent a stream chunk that is not an object.")
    return parsed


def connection_error(exc: Exception, *, provider: str) -> Retryable:
    """A transport failure, described without the URL's credentials or query."""
    kind = type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return Retryable(f"{provider}: no answer in time ({kind}).")
    return Retryable(f"{provider}: connection failed ({kind}).")
