"""Per-key daily budgets and request rates in Redis, so that every gateway replica counts against
one figure: two replicas cannot let a 5,000-a-day key spend 10,000, and a restart resets nothing.

Budgets are booked by one atomic script (check and book in one step: concurrent requests on
different replicas cannot overdraw). Budget keys carry no TTL — under a ``volatile-*`` eviction
policy only TTL keys (votes) may be evicted, and an evicted budget would be a free day — so each
booking deletes the key's entry of two days before instead. Rate limits do carry a TTL: an
evicted one only forgets part of one minute.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from types import TracebackType
from typing import Any

from redis.asyncio import Redis

__all__ = ["RedisPacer", "RedisQuotas"]

_BOOK = """
local spent = tonumber(redis.call('GET', KEYS[1]) or '0')
local queries, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('DEL', KEYS[2])
if limit >= 0 and spent + queries > limit then
  return {0, spent}
end
return {1, redis.call('INCRBY', KEYS[1], queries)}
"""

_UNBOOK = """
local spent = tonumber(redis.call('GET', KEYS[1]) or '0')
local left = math.max(0, spent - tonumber(ARGV[1]))
redis.call('SET', KEYS[1], left)
return left
"""

# GCRA (a leaky bucket as one timestamp): each request moves the key's "theoretical arrival
# time" on by one interval; a request is refused while that time is more than a window ahead.
# Redis's own clock, so replicas with skewed clocks agree. Answers milliseconds to wait (0: ok).
_TAKE = """
local now = redis.call('TIME')
now = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local interval, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local tat = math.max(tonumber(redis.call('GET', KEYS[1]) or now), now)
local wait = tat + interval - window - now
if wait > 0 then return wait end
redis.call('SET', KEYS[1], tat + interval, 'PX', math.ceil(tat + interval - now))
return 0
"""


def _budget_key(name: str, day: dt.date) -> str:
    return f"dsmooth:budget:{{{name}}}:{day.isoformat()}"  # one hash slot per key name


class RedisQuotas:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._book: Any = redis.register_script(_BOOK)
        self._unbook: Any = redis.register_script(_UNBOOK)
        self._take: Any = redis.register_script(_TAKE)

    async def book(self, name: str, day: dt.date, queries: int, limit: int | None) -> int | None:
        """Book ``queries`` on ``name``'s budget for ``day``: the new total, or None (nothing
        booked) when that would pass ``limit``; then the caller reads :meth:`spent`."""
        stale = _budget_key(name, day - dt.timedelta(days=2))
        ok, total = await self._book(
            keys=[_budget_key(name, day), stale], args=[queries, -1 if limit is None else limit]
        )
        return int(total) if ok else None

    async def unbook(self, name: str, day: dt.date, queries: int) -> None:
        await self._unbook(keys=[_budget_key(name, day)], args=[queries])

    async def spent(self, name: str, day: dt.date) -> int:
        return int(await self.redis.get(_budget_key(name, day)) or 0)

    async def take(self, name: str, per_minute: int) -> float:
        """One request of ``name`` at ``per_minute``: 0 when allowed, else seconds to wait."""
        interval = 60_000 / per_minute
        wait = await self._take(keys=[f"dsmooth:rate:{{{name}}}"], args=[interval, 60_000])
        return float(wait) / 1000

    def pacer(self, name: str, per_second: float) -> RedisPacer:
        """Spaces calls of ``name`` at most ``per_second`` across every process on this Redis."""
        return RedisPacer(self, name, per_second)


class RedisPacer:
    """``async with pacer``: wait for this call's turn on a rate shared through Redis (the GCRA
    above with a window of one interval: no burst, like the per-process pacing)."""

    def __init__(self, quotas: RedisQuotas, name: str, per_second: float) -> None:
        self._take, self._key = quotas._take, f"dsmooth:pace:{{{name}}}"
        self._interval_ms = 1000 / per_second

    async def __aenter__(self) -> RedisPacer:
        while wait := await self._take(
            keys=[self._key], args=[self._interval_ms, self._interval_ms]
        ):
            await asyncio.sleep(float(wait) / 1000)
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None
