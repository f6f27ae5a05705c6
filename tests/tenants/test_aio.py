"""tenants.aio: detached tasks run their sync calls on one of a few long-lived lane threads,
lanes take turns, and a lane gives its database connection back when a task ends; a request's
database calls wait their turn for the pool and give their connection back as they return."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.db import connections

from tenants import aio

pytestmark = pytest.mark.django_db


@pytest.fixture
def lanes(settings):
    settings.WEFT_DETACHED_THREADS = 3
    aio._lanes.cache_clear()
    yield 3
    aio._lanes.cache_clear()


def _query() -> tuple[int, object]:
    wrapper = connections["default"]  # this thread's own, not the proxy
    with wrapper.cursor() as cursor:
        cursor.execute("SELECT 1")
    return threading.get_ident(), wrapper


async def _task(seen: list[tuple[int, ...]], connections: list[object]) -> None:
    first, used = await sync_to_async(_query)()
    await asyncio.sleep(0.01)  # another task's calls may run meanwhile
    second, _ = await sync_to_async(_query)()
    seen.append((first, second))
    connections.append(used)


def test_tasks_run_on_the_lanes_in_turn_and_give_back_their_connections(lanes):
    seen: list[tuple[int, ...]] = []
    connections: list[object] = []

    async def main() -> None:
        tasks = [aio.detach(_task(seen, connections), what="test") for _ in range(6)]
        await asyncio.gather(*tasks)

    asyncio.run(main())

    assert len(seen) == 6
    assert all(first == second for first, second in seen), "a task's calls changed thread"
    assert len({first for first, _ in seen}) == lanes
    assert threading.get_ident() not in {first for first, _ in seen}
    # Each lane's connection went back to the pool when its last task ended.
    assert all(used.connection is None for used in connections)


def test_a_failed_task_is_logged_and_still_gives_back_its_connection(lanes, caplog):
    used: list[object] = []

    async def broken() -> None:
        used.append((await sync_to_async(_query)())[1])
        raise RuntimeError("boom")

    async def main() -> None:
        task = aio.detach(broken(), what="broken task")
        await asyncio.wait([task])

    asyncio.run(main())

    assert "broken task failed" in caplog.text
    assert used[0].connection is None


def test_request_database_calls_wait_their_turn_and_give_back_their_connections(monkeypatch):
    monkeypatch.setattr(aio, "_calls_at_once", lambda: 2)
    lock = threading.Lock()
    running = 0
    most = 0
    used: list[object] = []

    def work() -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        try:
            time.sleep(0.05)
            used.append(_query()[1])
        finally:
            with lock:
                running -= 1

    async def one() -> None:
        async with ThreadSensitiveContext():  # as each request has its own thread
            await aio.database(work)()

    async def main() -> None:
        await asyncio.gather(*(one() for _ in range(6)))

    asyncio.run(main())

    assert most == 2
    assert len(used) == 6
    assert all(wrapper.connection is None for wrapper in used)
