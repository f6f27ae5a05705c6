"""Per-app and per-caller limits kept in Redis, so that every web process and worker sees
the same counts: runs of an app at once (Dify's `too_many_requests`), and requests per
minute per key and per end user (a sliding window).

Both are sorted sets scored by time: a run's place is held until it is released or, if its
process died, until it is older than WEFT_APP_ACTIVE_REQUEST_TTL; a request counts for the
sixty seconds after it was made (`tenants.windows`).
"""

from __future__ import annotations

from django.conf import settings

from tenants import windows
from tenants.exceptions import WeftError
from workflows.streams import client

WINDOW_SECONDS = 60.0


class TooManyRequests(WeftError):
    """An app's runs at once are at its limit (Dify's code)."""

    code = "too_many_requests"
    status = 429


class RateLimited(WeftError):
    """Too many requests in the last minute from one key or end user."""

    code = "too_many_requests"
    status = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


def _active_key(app_id: str) -> str:
    return f"weft:app:{app_id}:active"


async def run_acquire(app_id: str, task_id: str, limit: int) -> None:
    """Hold a place for a run of the app; TooManyRequests when all are taken."""
    limit = limit or settings.WEFT_APP_MAX_ACTIVE_REQUESTS
    if limit <= 0:
        return
    ttl = settings.WEFT_APP_ACTIVE_REQUEST_TTL
    if await windows.take(_active_key(app_id), limit=limit, window=ttl, member=task_id):
        raise TooManyRequests(
            f"Too many requests. The app runs at most {limit} at once; try again shortly."
        )


async def run_release(app_id: str, task_id: str) -> None:
    """Give the run's place back (harmless when it held none)."""
    await client().zrem(_active_key(app_id), task_id)


async def per_minute(subject: str, limit: int, *, what: str) -> None:
    """Count a request of `subject` (a key's or end user's id); RateLimited past `limit` in
    the last minute. `what` names the subject in the message."""
    if limit <= 0:
        return
    retry = await windows.take(f"weft:rpm:{subject}", limit=limit, window=WINDOW_SECONDS)
    if retry:
        raise RateLimited(
            f"Rate limit exceeded: {limit} requests per minute for {what}. Retry in {retry} s.",
            retry,
        )
