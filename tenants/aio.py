"""Work that outlives the request that started it, on the web process's event loop.

Under ASGI, each request's sync ORM calls run on a thread of their own (asgiref's
thread-sensitive context), whose database connection Django gives back to the pool when the
request ends. A task created during the request inherits that context; once the request is
over, asgiref gives the task a fresh thread for it, which takes a pooled connection and, when
it is dropped, loses it: a busy process soon has none left. `detach` runs such tasks on the
process's one shared sync thread instead, with its one connection, and
`release_connections` lets a request give its connection back before a long wait.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from asgiref.sync import SyncToAsync
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


async def _shared_thread(coroutine: Coroutine[Any, Any, Any]) -> Any:
    # No thread-sensitive context: asgiref then runs sync calls on its process-wide thread.
    SyncToAsync.thread_sensitive_context.set(None)  # type: ignore[arg-type]
    return await coroutine


def detach(coroutine: Coroutine[Any, Any, Any], *, what: str) -> asyncio.Task:
    """Run `coroutine` beyond the current request; a failure is logged (as `what`), since
    nobody may be waiting for it."""
    task = asyncio.create_task(_shared_thread(coroutine))
    _running.add(task)
    task.add_done_callback(_running.discard)

    def log_failure(done: asyncio.Task) -> None:
        if not done.cancelled() and done.exception() is not None:
            logger.error("%s failed", what, exc_info=done.exception())

    task.add_done_callback(log_failure)
    return task
