"""Server-sent events of a task, read from its Redis stream (`workflows.streams`), so that
any web process serves any task's events and a client reconnecting with `Last-Event-ID`
resumes exactly where it left.

Each event is an `id:` line (its stream entry id) and a `data: {json}` line, as Dify sends
them; a quiet stream gets an `event: ping` line every WEFT_SSE_PING_SECONDS (10 s, Dify's
interval) and no `data:` line, so a client that JSON-parses every `data:` line survives it.
A client that goes away cancels only its reading of the stream, never the task.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, StreamingHttpResponse

from tenants.exceptions import InvalidInput, WeftError
from workflows import streams

PING = b"event: ping\n\n"
MAX_BLOCK_SECONDS = 4.0
_ENTRY_ID = re.compile(r"^\d+-\d+$")
Alive = Callable[[], Awaitable[bool]]


def ping_seconds() -> float:
    return settings.WEFT_SSE_PING_SECONDS


def sse_frame(entry_id: str, body: str) -> bytes:
    return f"id: {entry_id}\ndata: {body}\n\n".encode()


async def follow(
    stream_id: str, *, after: str = "0-0", alive: Alive, every: float | None = None
) -> AsyncIterator[tuple[str, str | None]]:
    """(entry id, body) of the stream's entries after `after` as they come, up to the one
    that ends it; (id, None) after each quiet `every` seconds while `alive()` says the task
    still runs. A task that stopped running without its last entry (its process died) ends
    the stream once what it wrote has been read."""
    quiet_for = every if every is not None else ping_seconds()
    # Each blocking read stays under the Redis client's socket timeout (5 s by default in
    # redis-py 8); pings still come every `quiet_for` seconds.
    block_ms = max(1, int(min(quiet_for, MAX_BLOCK_SECONDS) * 1000))
    last = after
    heard = time.monotonic()
    async for entry_id, body in streams.read(stream_id, after=after, block_ms=block_ms):
        raise_if_cancelled()
        last = entry_id
        if body is not None:
            heard = time.monotonic()
            yield entry_id, body
            continue
        if time.monotonic() - heard < quiet_for:
            continue
        heard = time.monotonic()
        if await alive():
            yield entry_id, None
            continue
        # Gone quiet for good: whatever came in since the check is still delivered.
        async for late_id, late_body in streams.read(stream_id, after=last, block_ms=1):
            if late_body is None:
                return
            yield late_id, late_body
        return


def raise_if_cancelled() -> None:
    """Honour a cancellation (the client went away) that the Redis client swallowed: one
    landing inside a Redis call can be lost there, and the reading would go on for nobody."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def sse_events(
    stream_id: str, *, after: str = "0-0", alive: Alive, every: float | None = None
) -> AsyncIterator[bytes]:
    """The stream as SSE bytes, pings included."""
    async for entry_id, body in follow(stream_id, after=after, alive=alive, every=every):
        yield PING if body is None else sse_frame(entry_id, body)


def sse_response(events: AsyncIterator[bytes]) -> StreamingHttpResponse:
    response = StreamingHttpResponse(events, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # a proxy (nginx) passes each event on at once
    return response


def last_event_id(request: HttpRequest) -> str:
    """Where a resuming client left: `Last-Event-ID`, or `last_event_id` in the query for
    clients that cannot set headers (from the start without either)."""
    after = request.headers.get("Last-Event-ID") or request.GET.get("last_event_id") or "0-0"
    return check_event_id(after)


def check_event_id(after: Any) -> str:
    if not isinstance(after, str) or not _ENTRY_ID.match(after):
        raise InvalidInput(f"Last-Event-ID: “{after}” is not an event id of this stream.")
    return after


class EventsExpired(WeftError):
    """A task's events are no longer kept (an hour after its last one)."""

    code = "events_expired"
    status = 410
