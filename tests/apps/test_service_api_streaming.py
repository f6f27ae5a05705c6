"""The SSE plumbing of the Service API, in process against the real Redis: events in
stream order with their ids, pings while a task is quiet, the end at the task's last event
or when its process died, and the frame format clients parse."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from asgiref.sync import async_to_sync

from apps.api.service.streaming import (
    PING,
    check_event_id,
    follow,
    sse_events,
)
from tenants.exceptions import InvalidInput
from workflows import streams


def collect(stream_id, *, alive, after="0-0", every=0.05, limit=50):
    async def run():
        seen = []
        async for item in follow(stream_id, after=after, alive=alive, every=every):
            seen.append(item)
            if len(seen) >= limit:
                break
        return seen

    return async_to_sync(run)()


def always(value):
    async def alive():
        return value

    return alive


def entries(*names, last=False):
    return [
        streams.entry(name, {"event": name}, last=last and index == len(names) - 1)
        for index, name in enumerate(names)
    ]


def test_events_in_order_up_to_the_last_one():
    stream_id = str(uuid.uuid4())
    async_to_sync(streams.append)(
        stream_id, entries("message", "message", "message_end", last=True)
    )
    seen = collect(stream_id, alive=always(True))
    assert [body for _, body in seen] == [
        '{"event": "message"}',
        '{"event": "message"}',
        '{"event": "message_end"}',
    ]
    ids = [entry_id for entry_id, _ in seen]
    tail = collect(stream_id, alive=always(True), after=ids[0])
    assert [entry_id for entry_id, _ in tail] == ids[1:]


def test_a_quiet_running_task_gets_pings_until_its_end():
    stream_id = str(uuid.uuid4())

    async def run():
        seen = []

        async def later():
            await asyncio.sleep(0.25)
            await streams.append(stream_id, entries("message_end", last=True))

        writer = asyncio.create_task(later())
        async for item in follow(stream_id, alive=always(True), every=0.05):
            seen.append(item)
        await writer
        return seen

    seen = async_to_sync(run)()
    assert [body for _, body in seen].count(None) >= 2
    assert seen[-1][1] == '{"event": "message_end"}'


def test_a_task_that_died_ends_its_stream_after_what_it_wrote():
    stream_id = str(uuid.uuid4())
    async_to_sync(streams.append)(stream_id, entries("message", "message"))
    seen = collect(stream_id, alive=always(False))
    assert [body for _, body in seen] == ['{"event": "message"}'] * 2


def test_frames_as_clients_parse_them():
    stream_id = str(uuid.uuid4())

    async def run():
        frames = []

        async def later():
            await asyncio.sleep(0.15)
            await streams.append(stream_id, entries("message_end", last=True))

        writer = asyncio.create_task(later())
        async for frame in sse_events(stream_id, alive=always(True), every=0.05):
            frames.append(frame)
        await writer
        return frames

    frames = async_to_sync(run)()
    assert PING in frames and PING == b"event: ping\n\n"
    last = frames[-1].decode()
    head, data, blank = last.split("\n", 2)
    assert head.startswith("id: ") and data == 'data: {"event": "message_end"}'
    assert blank == "\n"


@pytest.mark.parametrize("value", ["1-0", "1795335260749-12", "0-0"])
def test_event_ids_taken(value):
    assert check_event_id(value) == value


@pytest.mark.parametrize("value", ["", "yesterday", "1", "1-", "-1-0", None, 5])
def test_event_ids_refused(value):
    with pytest.raises(InvalidInput):
        check_event_id(value)


def test_a_reader_always_stops_when_cancelled():
    """A client going away cancels its reading of the stream, even when the cancellation
    lands inside a Redis call (where the Redis client may swallow it)."""
    stream_id = str(uuid.uuid4())

    async def run():
        stuck = 0
        for attempt in range(40):

            async def read():
                async for _ in follow(stream_id, alive=always(True), every=0.02):
                    pass

            reader = asyncio.create_task(read())
            await asyncio.sleep(0.001 * (attempt % 7))
            reader.cancel()
            done, _ = await asyncio.wait([reader], timeout=1.0)
            if not done:
                stuck += 1
                reader.cancel()
                await asyncio.wait([reader], timeout=1.0)
            else:
                assert reader.cancelled()
        return stuck

    assert async_to_sync(run)() == 0


def test_pings_keep_their_interval_when_reads_block_for_less(monkeypatch):
    from apps.api.service import streaming

    monkeypatch.setattr(streaming, "MAX_BLOCK_SECONDS", 0.02)  # reads shorter than pings
    stream_id = str(uuid.uuid4())

    async def run():
        seen = []

        async def later():
            await asyncio.sleep(0.5)
            await streams.append(stream_id, entries("message_end", last=True))

        writer = asyncio.create_task(later())
        async for item in follow(stream_id, alive=always(True), every=0.2):
            seen.append(item)
        await writer
        return seen

    seen = async_to_sync(run)()
    # A ping each 0.2 s of quiet (about two), not one per 0.02 s read (about twenty-five).
    assert 1 <= [body for _, body in seen].count(None) <= 3
    assert seen[-1][1] == '{"event": "message_end"}'
