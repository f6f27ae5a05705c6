"""Work that outlives the request that started it, on the web process's event loop.

Under ASGI, each request's sync ORM calls run on a thread of their own (asgiref's
thread-sensitive context), whose database connection Django gives back to the pool when the
request ends. A task created during the request inherits that context; once the request is
over, asgiref gives the task a fresh thread for it, which takes a pooled connection and, when
it is dropped, loses it: a busy process soon has none left. `detach` runs such tasks on a
fixed set of lanes instead (`WEFT_DETACHED_THREADS`), each one long-lived thread: a task's sync
calls all run on its lane's thread, and tasks on other lanes query the database meanwhile. A
lane gives its connection back to the pool when one of its tasks ends.

A request that waits long (an open event stream, a blocking run) must not hold a connection
meanwhile either: its database work goes through `database(fn)`, `sync_to_async` that gives
the connection back as each call returns, and lets only as many such calls run at once as
the pool has connections beside the lanes, so that a thousand streams opened together queue
for the pool on the event loop instead of timing out inside it.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from functools import cache
from typing import Any, ParamSpec, TypeVar

from asgiref.sync import SyncToAsync, ThreadSensitiveContext, sync_to_async
from django.conf import settings
from django.db import connections

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

# Tasks running in this process, kept so the event loop does not drop them half-way.
_running: set[asyncio.Task] = set()


def release_connections() -> None:
    """Give this thread's database connections back to the pool (not one inside a
    transaction: a test's, or a caller's still using it)."""
    for connection in connections.all(initialized_only=True):
        if not connection.in_atomic_block:
            connection.close()


def _calls_at_once() -> int:
    pool = settings.DATABASES["default"].get("OPTIONS", {}).get("pool")
    size = pool.get("max_size", 10) if isinstance(pool, dict) else 10
    return max(1, size - max(1, settings.WEFT_DETACHED_THREADS))


# One gate per event loop (a semaphore belongs to the loop it first waited on).
_gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


def _gate() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    gate = _gates.get(loop)
    if gate is None:
        gate = _gates[loop] = asyncio.Semaphore(_calls_at_once())
    return gate


def _released(fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
    try:
        return fn(*args, **kwargs)
    finally:
        release_connections()


def database(fn: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """`sync_to_async(fn)` for a request's database work: it waits its turn among this
    process's calls (without a connection), and gives its connection back when it returns."""

    @functools.wraps(fn)
    async def call(*args: P.args, **kwargs: P.kwargs) -> R:
        async with _gate():
            return await sync_to_async(_released)(fn, *args, **kwargs)

    return call


@cache
def _lanes() -> itertools.cycle:
    # Never entered, kept for the life of the process: asgiref gives each one thread of its
    # own, for as long as the context object lives.
    count = max(1, settings.WEFT_DETACHED_THREADS)
    return itertools.cycle([ThreadSensitiveContext() for _ in range(count)])


async def _on_lane(coroutine: Coroutine[Any, Any, Any]) -> Any:
    SyncToAsync.thread_sensitive_context.set(next(_lanes()))
    try:
        return await coroutine
    finally:
        await sync_to_async(release_connections)()


def detach(coroutine: Coroutine[Any, Any, Any], *, what: str) -> asyncio.Task:
    """Run `coroutine` beyond the current request; a failure is logged (as `what`), since
    nobody may be waiting for it."""
    task = asyncio.create_task(_on_lane(coroutine))
    _running.add(task)
    task.add_done_callback(_running.discard)

    def log_failure(done: asyncio.Task) -> None:
        if not done.cancelled() and done.exception() is not None:
            logger.error("%s failed", what, exc_info=done.exception())

    task.add_done_callback(log_failure)
    return task
