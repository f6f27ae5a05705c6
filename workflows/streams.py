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
from django.conf import settings

from .engine.events import Event

# Kept this long after the last event; a run's stream never holds more than MAXLEN events
# (a long run's oldest node events go first; its end is always there).
TTL_SECONDS = 3600
MAXLEN = 10_000
ENDING_EVENTS = frozenset({"workflow_finished", "workflow_paused"})

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = (
    weakref.WeakKeyDictionary()
)


def client() -> aioredis.Redis:
    """This event loop's Redis client (an asyncio client cannot cross loops)."""
    loop = asyncio.get_running_loop()
    found = _clients.get(loop)
    if found is None:
        found = _clients[loop] = aioredis.Redis.from_url(settings.REDIS_URL)
    return found


def events_key(run_id: str) -> str:
    return f"weft:run:{run_id}:events"


def stop_key(run_id: str) -> str:
    return f"weft:run:{run_id}:stop"


def encode(event: Event, context: dict[str, Any]) -> dict[str, str]:
    """The stream entry of an event: its name and its Dify SSE body."""
    body = {"event": event.event, **context, "data": event.payload()}
    return {"event": event.event, "body": json.dumps(body, ensure_ascii=False, default=str)}


class StreamSink:
    """Appends a run's events to its stream: what arrives while a write is under way goes in
    the next write, in one round trip, so a fast run does not wait on Redis per event."""

    def __init__(self, run_id: str, context: dict[str, Any]) -> None:
        self.key = events_key(run_id)
        self.context = context
        self.pending: list[dict[Any, Any]] = []
        self.writing: asyncio.Task | None = None

    async def __call__(self, event: Event) -> None:
        self.pending.append(encode(event, self.context))
        if self.writing is None or self.writing.done():
            if self.writing is not None:
                self.writing.result()  # a failed write surfaces here
            self.writing = asyncio.create_task(self._write())
        if event.event in ENDING_EVENTS:
            await self.writing
            if self.pending:
                await self._write()

    async def _write(self) -> None:
        await asyncio.sleep(0)  # let the events already on their way join this write
        while self.pending:
            batch, self.pending = self.pending, []
            async with client().pipeline(transaction=False) as pipe:
                for entry in batch:
                    pipe.xadd(self.key, entry, maxlen=MAXLEN, approximate=True)
                pipe.expire(self.key, TTL_SECONDS)
                await pipe.execute()


async def read(
    run_id: str, *, after: str = "0-0", block_ms: int = 10_000
) -> AsyncIterator[tuple[str, str | None]]:
    """(entry id, SSE body) of the run's events after `after`, as they come, until the run
    ends; (id, None) every `block_ms` without news, so the caller can send a keep-alive."""
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
            if fields[b"event"].decode() in ENDING_EVENTS:
                return


async def exists(run_id: str) -> bool:
    """Whether the run's stream is still kept."""
    return bool(await client().exists(events_key(run_id)))


async def request_stop(run_id: str) -> None:
    """Ask the process running the run to stop it."""
    await client().set(stop_key(run_id), "1", ex=TTL_SECONDS)


async def stop_requested(run_id: str) -> bool:
    return bool(await client().exists(stop_key(run_id)))
