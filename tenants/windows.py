"""Sliding windows in Redis, shared by every web process and worker: a place is taken in a
sorted set scored by time unless `limit` places are taken within `window` seconds, and an
admitted call may also add one to a hash field (a day's count, say). The check and its
writes are one Lua script, atomic however many processes ask at once."""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass

from django.conf import settings

# KEYS[1] the window, KEYS[2] (optional) a hash to count in. ARGV: now, oldest score kept,
# limit (0: none), member, seconds to keep the window, hash field, seconds to keep the hash.
# 0 when admitted; else the oldest member's score (when a place frees up).
_TAKE = """
local limit = tonumber(ARGV[3])
if limit > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
  if redis.call('ZCARD', KEYS[1]) >= limit then
    return redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2]
  end
  redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])
  redis.call('EXPIRE', KEYS[1], ARGV[5])
end
if #KEYS > 1 then
  redis.call('HINCRBY', KEYS[2], ARGV[6], 1)
  redis.call('EXPIRE', KEYS[2], ARGV[7])
end
return 0
"""


@dataclass(frozen=True)
class Tally:
    """A hash field an admitted call adds one to."""

    key: str
    field: str
    seconds: int


def _call(key: str, limit: int, window: float, member: str | None, tally: Tally | None):
    now = time.time()
    keys = [key] + ([tally.key] if tally else [])
    args = [
        now,
        now - window,
        max(limit, 0),
        member or f"{now}:{uuid.uuid4().hex[:8]}",
        math.ceil(window) + 1,
        tally.field if tally else "",
        tally.seconds if tally else 0,
    ]
    return keys, args, now


def _wait(oldest, now: float, window: float) -> int:
    """Seconds until a place frees up, 0 when the call was admitted."""
    oldest = float(oldest)
    return max(1, math.ceil(oldest + window - now)) if oldest else 0


async def take(
    key: str, *, limit: int, window: float, member: str | None = None, tally: Tally | None = None
) -> int:
    """Take a place (`member`, else a new one) in the window at `key`: 0 when admitted, else
    the seconds to wait. A limit of 0 admits every call (and only counts the tally)."""
    from workflows.streams import client

    keys, args, now = _call(key, limit, window, member, tally)
    return _wait(await client().register_script(_TAKE)(keys=keys, args=args), now, window)


_sync_client = None


def redis_client():
    """This process's synchronous Redis client."""
    global _sync_client
    if _sync_client is None:
        import redis

        _sync_client = redis.Redis.from_url(settings.REDIS_URL)
    return _sync_client


def take_sync(
    key: str, *, limit: int, window: float, member: str | None = None, tally: Tally | None = None
) -> int:
    """`take` for synchronous code."""
    keys, args, now = _call(key, limit, window, member, tally)
    return _wait(redis_client().eval(_TAKE, len(keys), *keys, *args), now, window)
