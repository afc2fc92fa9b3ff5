"""Per-key daily budgets, monthly spend and request rates in Redis, so that every gateway replica
counts against one figure: two replicas cannot let a 5,000-a-day key spend 10,000, and a restart
resets nothing.

Budgets are booked by one atomic script (check and book in one step: concurrent requests on
different replicas cannot overdraw): the day's queries and the month's spend (integer millionths
of a dollar) are booked together or not at all. Budget keys carry no TTL — under a ``volatile-*``
eviction policy only TTL keys (votes) may be evicted, and an evicted budget would be a free day
(an evicted spend count a free month) — so each booking deletes the key's entry of two days
before, and of two months before, instead. Rate limits do carry a TTL: an evicted one only
forgets part of one minute.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from types import TracebackType
from typing import Any, Literal

from redis.asyncio import Redis

__all__ = ["RedisPacer", "RedisQuotas"]

# KEYS: the day's queries, the stale day's, the month's micro-USD, the stale month's.
# ARGV: queries, their limit (-1: none), micro-USD, their limit (-1: none).
# Answers 0 (booked), 1 (over the daily queries: nothing booked), 2 (over the monthly spend).
_BOOK = """
redis.call('DEL', KEYS[2], KEYS[4])
local queries, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local micros, monthly = tonumber(ARGV[3]), tonumber(ARGV[4])
local spent = tonumber(redis.call('GET', KEYS[1]) or '0')
if limit >= 0 and spent + queries > limit then
  return 1
end
if micros > 0 and monthly >= 0 then
  local month = tonumber(redis.call('GET', KEYS[3]) or '0')
  if month + micros > monthly then
    return 2
  end
end
redis.call('INCRBY', KEYS[1], ARGV[1])
if micros > 0 then
  redis.call('INCRBY', KEYS[3], ARGV[3])
end
return 0
"""

# KEYS: the day's queries, the month's micro-USD, and (a job's) its booking's settlement;
# ARGV: what goes back to each (never below 0), the settlement's lifetime in seconds. A job
# settled again (taken over while its first gateway still ran) keeps the smaller refund: what
# was given beyond it is charged back.
_UNBOOK = """
local back = {tonumber(ARGV[1]), tonumber(ARGV[2])}
if KEYS[3] then
  local given = redis.call('HMGET', KEYS[3], 'q', 'm')
  if given[1] then
    for i = 1, 2 do
      local extra = tonumber(given[i]) - back[i]
      if extra > 0 then redis.call('INCRBY', KEYS[i], extra) end
    end
    redis.call('HSET', KEYS[3], 'q', math.min(tonumber(given[1]), back[1]),
               'm', math.min(tonumber(given[2]), back[2]))
    return 0
  end
  redis.call('HSET', KEYS[3], 'q', back[1], 'm', back[2])
  redis.call('EXPIRE', KEYS[3], ARGV[3])
end
for i = 1, 2 do
  if back[i] > 0 and redis.call('DECRBY', KEYS[i], back[i]) < 0 then
    redis.call('SET', KEYS[i], 0)
  end
end
return 1
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


_SETTLED_TTL_S = 3 * 86_400


def _budget_key(name: str, day: dt.date) -> str:
    return f"dsmooth:budget:{{{name}}}:{day.isoformat()}"  # one hash slot per key name


def _spend_key(name: str, day: dt.date) -> str:
    """The micro-USD spent by ``name`` in the UTC month of ``day`` (the same hash slot)."""
    return f"dsmooth:spend:{{{name}}}:{day.year:04d}-{day.month:02d}"


def _two_months_before(day: dt.date) -> dt.date:
    year, month = divmod(day.year * 12 + day.month - 1 - 2, 12)
    return dt.date(year, month + 1, 1)


class RedisQuotas:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._book: Any = redis.register_script(_BOOK)
        self._unbook: Any = redis.register_script(_UNBOOK)
        self._take: Any = redis.register_script(_TAKE)

    async def book(
        self,
        name: str,
        day: dt.date,
        queries: int,
        limit: int | None,
        micros: int = 0,
        monthly_limit: int | None = None,
    ) -> Literal["daily", "monthly"] | None:
        """Book ``queries`` on ``name``'s budget for ``day`` and ``micros`` on its spend for the
        month, both or neither: None when booked, else the limit that would be passed (then
        the caller reads :meth:`spent` or :meth:`spent_micros`)."""
        keys = [
            _budget_key(name, day),
            _budget_key(name, day - dt.timedelta(days=2)),
            _spend_key(name, day),
            _spend_key(name, _two_months_before(day)),
        ]
        args = [
            queries,
            -1 if limit is None else limit,
            micros,
            -1 if monthly_limit is None else monthly_limit,
        ]
        refused = int(await self._book(keys=keys, args=args))
        return None if refused == 0 else "daily" if refused == 1 else "monthly"

    async def unbook(
        self,
        name: str,
        day: dt.date,
        queries: int,
        micros: int = 0,
        settlement: str | None = None,
    ) -> None:
        keys = [_budget_key(name, day), _spend_key(name, day)]
        if settlement is not None:  # outlives the day booked: a takeover settles after it
            keys.append(f"dsmooth:settled:{{{name}}}:{settlement}")
        await self._unbook(keys=keys, args=[queries, micros, _SETTLED_TTL_S])

    async def spent(self, name: str, day: dt.date) -> int:
        return int(await self.redis.get(_budget_key(name, day)) or 0)

    async def spent_micros(self, name: str, day: dt.date) -> int:
        return int(await self.redis.get(_spend_key(name, day)) or 0)

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
