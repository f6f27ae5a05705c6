"""Work that outlives the request that started it, on the web process's event loop.

Under ASGI, each request's sync ORM calls run on a thread of their own (asgiref's
thread-sensitive context), whose database connection Django gives back to the pool when the
request ends. A task created during the request inherits that context; once the request is
over, asgiref gives the task a fresh thread for it, which takes a pooled connection and, when
it is dropped, loses it: a busy process soon has none left. `detach` runs such tasks on a
fixed set of lanes instead (`WEFT_DETACHED_THREADS`), each one long-lived thread: a task's sync
calls all run on its lane's thread, and tasks on other lanes query the database meanwhile. A
lane gives its connection back to the pool when one of its tasks ends, and
`release_connections` lets a request give its connection back before a long wait.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Coroutine
from functools import cache
from typing import Any

from asgiref.sync import SyncToAsync, ThreadSensitiveContext, sync_to_async
from django.conf import settings
from django.db import connections

logger = logging.getLogger(__name__)

# Tasks running in this process, kept so the event loop does not drop them half-way.
_running: set[asyncio.Task] = set()


def release_connections() -> None:
    """Give this thread's database connections back to the pool (not one inside a
    transaction: a test's, or a caller's still using it)."""
    for connection in connections.all(initialized_only=True):
        if not connection.in_atomic_block:
            connection.close()


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
