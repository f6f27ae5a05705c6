"""Each run's events in a bounded, expiring Redis stream, so that any web process can serve
any run's SSE or WebSocket stream, and a client reconnecting with `Last-Event-ID` resumes
exactly where it left. Stopping a run is a Redis key its owner polls, for the same reason:
the request to stop may reach another process than the one running it."""

from __future__ import annotations

import asyncio
import json
import weakref
from collections.abc import AsyncIterator
from typing import Any, cast

import redis.asyncio as aioredis
from asgiref.sync import async_to_sync
from django.conf import settings

from .engine.events import Event

# Kept this long after the last event; a run's stream never holds more than MAXLEN events
# (a long run's oldest node events go first; its end is always there).
TTL_SECONDS = 3600
MAXLEN = 10_000
# Redis connections of one process's stream client (redis-py's default is 100).
MAX_CONNECTIONS = 5_000
ENDING_EVENTS = frozenset({"workflow_finished", "workflow_paused"})

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = (
    weakref.WeakKeyDictionary()
)


def client() -> aioredis.Redis:
    """This event loop's Redis client (an asyncio client cannot cross loops)."""
    loop = asyncio.get_running_loop()
    found = _clients.get(loop)
    if found is None:
        # No socket timeout: a blocking XREAD waits longer than redis-py 8's default of 5 s.
        # Each stream being followed holds a connection while it waits: room for thousands.
        found = _clients[loop] = aioredis.Redis.from_url(
            settings.REDIS_URL, socket_timeout=None, max_connections=MAX_CONNECTIONS
        )
    return found


def run_sync(fn, *args, **kwargs):
    """Run the coroutine function `fn` from sync code (a Celery task) on a loop of its own,
    then close the Redis client it opened there: the loop ends with the call, and a client
    left behind would keep its connections until the collector found it."""

    async def main():
        try:
            return await fn(*args, **kwargs)
        finally:
            found = _clients.pop(asyncio.get_running_loop(), None)
            if found is not None:
                await found.aclose()

    return async_to_sync(main)()


def events_key(run_id: str) -> str:
    return f"weft:run:{run_id}:events"


def stop_key(run_id: str) -> str:
    return f"weft:run:{run_id}:stop"


def entry(name: str, body: dict[str, Any], *, last: bool = False) -> dict[str, str]:
    """A stream entry: the event's name, its SSE body, and whether it ends the stream."""
    fields = {"event": name, "body": json.dumps(body, ensure_ascii=False, default=str)}
    if last:
        fields["end"] = "1"
    return fields


def encode(event: Event, context: dict[str, Any]) -> dict[str, str]:
    """The stream entry of a run event: its name and its Dify SSE body."""
    body = {"event": event.event, **context, "data": event.payload()}
    return entry(event.event, body, last=event.event in ENDING_EVENTS)


async def append(stream_id: str, entries: list[dict[str, str]]) -> None:
    """Add entries to a stream in one round trip (and keep it another TTL)."""
    key = events_key(stream_id)
    async with client().pipeline(transaction=False) as pipe:
        for fields in entries:
            pipe.xadd(key, cast(Any, fields), maxlen=MAXLEN, approximate=True)
        pipe.expire(key, TTL_SECONDS)
        await pipe.execute()


class StreamSink:
    """Appends a run's events to its stream: what arrives while a write is under way goes in
    the next write, in one round trip, so a fast run does not wait on Redis per event. A
    subclass may change what each event becomes (`entries`)."""

    def __init__(self, run_id: str, context: dict[str, Any]) -> None:
        self.stream_id = run_id
        self.context = context
        self.pending: list[dict[str, str]] = []
        self.writing: asyncio.Task | None = None

    def entries(self, event: Event) -> list[dict[str, str]]:
        """The stream entries an event becomes (none, one or several)."""
        return [encode(event, self.context)]

    async def __call__(self, event: Event) -> None:
        await self.add(self.entries(event))

    async def add(self, entries: list[dict[str, str]]) -> None:
        """Queue entries for writing; an entry that ends the stream is written before this
        returns."""
        if not entries:
            return
        self.pending.extend(entries)
        if self.writing is None or self.writing.done():
            if self.writing is not None:
                self.writing.result()  # a failed write surfaces here
            self.writing = asyncio.create_task(self._write())
        if any("end" in fields for fields in entries):
            await self.flush()

    async def flush(self) -> None:
        """Wait until everything queued is written."""
        if self.writing is not None:
            await self.writing
        if self.pending:
            await self._write()

    async def _write(self) -> None:
        await asyncio.sleep(0)  # let the events already on their way join this write
        while self.pending:
            batch, self.pending = self.pending, []
            await append(self.stream_id, batch)


async def read(
    run_id: str, *, after: str = "0-0", block_ms: int = 10_000
) -> AsyncIterator[tuple[str, str | None]]:
    """(entry id, SSE body) of the run's events after `after`, as they come, until the run
    ends (an entry marked as the last); (id, None) every `block_ms` without news, so the
    caller can send a keep-alive."""
    redis = client()
    key = events_key(run_id)
    last = after or "0-0"
    while True:
        answer = await redis.xread({key: last}, count=200, block=block_ms)
        if not answer:
            yield last, None
            continue
        entries: list[tuple[bytes, dict[bytes, bytes]]] = cast(Any, answer)[0][1]
        for entry_id, fields in entries:
            last = entry_id.decode()
            yield last, fields[b"body"].decode()
            if b"end" in fields:
                return


async def exists(run_id: str) -> bool:
    """Whether the run's stream is still kept."""
    return bool(await client().exists(events_key(run_id)))


async def request_stop(run_id: str) -> None:
    """Ask the process running the run to stop it."""
    await client().set(stop_key(run_id), "1", ex=TTL_SECONDS)


async def stop_requested(run_id: str) -> bool:
    return bool(await client().exists(stop_key(run_id)))
