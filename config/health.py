"""`/healthz`: database, Redis and worker heartbeat, each bounded by a short timeout.

Answers 200 with `"status": "ok"` when every check passes, else 503 with `"status": "fail"`
and the names of the failed checks; a check that raises or times out is a failed check,
never a 500.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from config.celery import HEARTBEAT_KEY_PREFIX

logger = logging.getLogger(__name__)

CHECK_TIMEOUT = 2.0
MAX_WORKERS_LISTED = 20


class CheckFailed(Exception):
    """A failed check whose message is safe to show on the public endpoint."""


def _select_one() -> None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    finally:
        # This runs on an executor thread, outside any request: hand the connection back.
        connection.close()


async def check_database() -> dict[str, Any]:
    # Not thread-sensitive: the check must not queue behind sync views on the shared thread.
    await sync_to_async(_select_one, thread_sensitive=False)()
    return {}


def _redis_client() -> aioredis.Redis:
    # One attempt: redis-py's default retries with backoff would outlast the check's timeout.
    return aioredis.Redis.from_url(
        settings.REDIS_URL,
        socket_timeout=CHECK_TIMEOUT,
        socket_connect_timeout=CHECK_TIMEOUT,
        retry=Retry(NoBackoff(), 0),
    )


async def check_redis() -> dict[str, Any]:
    client = _redis_client()
    try:
        await client.ping()
    finally:
        await client.aclose()
    return {}


async def check_worker() -> dict[str, Any]:
    client = _redis_client()
    workers: list[str] = []
    newest = None
    try:
        async for key in client.scan_iter(match=f"{HEARTBEAT_KEY_PREFIX}*", count=1000):
            raw = await client.get(key)
            if raw is None:  # expired between SCAN and GET
                continue
            workers.append(key.decode()[len(HEARTBEAT_KEY_PREFIX) :])
            try:
                beat_at = float(json.loads(raw)["at"])
            except (ValueError, KeyError, TypeError):
                continue
            newest = beat_at if newest is None else max(newest, beat_at)
    finally:
        await client.aclose()
    if not workers:
        raise CheckFailed("no worker heartbeat")
    result: dict[str, Any] = {
        "count": len(workers),
        "workers": sorted(workers)[:MAX_WORKERS_LISTED],
    }
    if newest is not None:
        result["last_beat_seconds_ago"] = round(max(0.0, time.time() - newest), 1)
    return result


async def _run(check: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
    started = time.monotonic()
    try:
        details = await asyncio.wait_for(check(), timeout=CHECK_TIMEOUT)
    except TimeoutError:
        details = {"ok": False, "error": f"timed out after {CHECK_TIMEOUT:g} s"}
    except CheckFailed as exc:
        details = {"ok": False, "error": str(exc)}
    except Exception as exc:  # any failure is reported, never raised
        # The endpoint is public: name the error, keep hosts and paths for the log.
        logger.warning("health check %s failed: %r", check.__name__, exc)
        details = {"ok": False, "error": type(exc).__name__}
    else:
        details = {"ok": True, **details}
    details["ms"] = round((time.monotonic() - started) * 1000, 1)
    return details


CHECKS: dict[str, Callable[[], Awaitable[dict[str, Any]]]] = {
    "database": check_database,
    "redis": check_redis,
    "worker": check_worker,
}


async def healthz(request):
    results = await asyncio.gather(*(_run(check) for check in CHECKS.values()))
    checks = dict(zip(CHECKS, results, strict=True))
    failed = [name for name, result in checks.items() if not result["ok"]]
    body: dict[str, Any] = {"status": "fail" if failed else "ok", "checks": checks}
    if failed:
        body["failed"] = failed
    response = JsonResponse(body, status=503 if failed else 200)
    response["Cache-Control"] = "no-store"
    return response
