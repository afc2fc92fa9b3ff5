"""API keys, per-key daily query budgets and request rates.

Keys are configured as SHA-256 hashes (``dsmooth new-api-key`` makes a key and its hash), compared
in constant time. Open access exists only in development with no key configured.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import math
import secrets
import time
from dataclasses import dataclass
from typing import Protocol

from service.api.problems import ProblemError
from service.config import ApiKey

__all__ = [
    "OPEN_ACCESS",
    "Authenticator",
    "Booking",
    "DailyBudgets",
    "MemoryQuotas",
    "Principal",
    "Quotas",
    "RateLimits",
    "hash_api_key",
]


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    daily_queries: int | None
    max_work_tflop: float | None = None  # this key's share of the work limit


OPEN_ACCESS = Principal("anonymous", None)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_api_key() -> str:
    return "dsk_" + secrets.token_urlsafe(32)


class Authenticator:
    def __init__(self, keys: list[ApiKey], open_access: bool) -> None:
        self._keys = [(bytes.fromhex(k.sha256), k) for k in keys]
        self.open_access = open_access and not keys

    def identify(self, presented: str | None) -> Principal:
        """The key's holder; a 401 problem when the key is missing or unknown."""
        if self.open_access:
            return OPEN_ACCESS
        if not presented:
            raise _unauthorised(
                "send an API key as 'Authorization: Bearer KEY' or 'X-API-Key: KEY'"
            )
        digest = hashlib.sha256(presented.encode()).digest()
        match = None
        for stored, key in self._keys:  # no early exit: time does not depend on which key
            if hmac.compare_digest(stored, digest):
                match = key
        if match is None:
            raise _unauthorised("the API key is not valid")
        return Principal(match.name, match.daily_queries, match.max_work_tflop)


def _unauthorised(detail: str) -> ProblemError:
    return ProblemError(
        status=401,
        slug="unauthorised",
        title="Missing or wrong API key",
        detail=detail,
        headers={"WWW-Authenticate": "Bearer"},
    )


class Quotas(Protocol):
    """Where budgets and rates are counted: this process, or Redis for all replicas
    (:class:`service.distributed.redis_quotas.RedisQuotas`)."""

    async def book(self, name: str, day: dt.date, queries: int, limit: int | None) -> int | None:
        """Book ``queries`` unless the total would pass ``limit``: the new total, or None."""
        ...

    async def unbook(self, name: str, day: dt.date, queries: int) -> None: ...

    async def spent(self, name: str, day: dt.date) -> int: ...

    async def take(self, name: str, per_minute: int) -> float:
        """One request at ``per_minute``: 0 when allowed, else the seconds to wait."""
        ...


class MemoryQuotas:
    """Budgets and rates of this process alone (no Redis: one replica)."""

    def __init__(self) -> None:
        self._spent: dict[tuple[str, dt.date], int] = {}
        self._arrival: dict[str, float] = {}

    async def book(self, name: str, day: dt.date, queries: int, limit: int | None) -> int | None:
        self._spent.pop((name, day - dt.timedelta(days=2)), None)
        total = self._spent.get((name, day), 0) + queries
        if limit is not None and total > limit:
            return None
        self._spent[(name, day)] = total
        return total

    async def unbook(self, name: str, day: dt.date, queries: int) -> None:
        self._spent[(name, day)] = max(0, self._spent.get((name, day), 0) - queries)

    async def spent(self, name: str, day: dt.date) -> int:
        return self._spent.get((name, day), 0)

    async def take(self, name: str, per_minute: int) -> float:
        # The GCRA of the Redis script, on this process's monotonic clock.
        now, interval = time.monotonic(), 60 / per_minute
        arrival = max(self._arrival.get(name, now), now)
        wait = arrival + interval - 60 - now
        if wait > 0:
            return wait
        self._arrival[name] = arrival + interval
        return 0.0


@dataclass(frozen=True, slots=True)
class Booking:
    """Queries booked on one key's budget for one UTC day."""

    key: str
    day: dt.date
    queries: int

    def to_json(self) -> str:
        return json.dumps({"key": self.key, "day": self.day.isoformat(), "queries": self.queries})

    @classmethod
    def from_json(cls, text: str) -> Booking:
        fields = json.loads(text)
        return cls(fields["key"], dt.date.fromisoformat(fields["day"]), int(fields["queries"]))


class DailyBudgets:
    """Queries booked per key per UTC day.

    A request books its planned queries before it starts (check and book are one step, so
    concurrent requests cannot overdraw the budget, on one replica or many) and settles when
    it ends: what it did not send is given back."""

    def __init__(self, quotas: Quotas) -> None:
        self.quotas = quotas

    async def reserve(self, principal: Principal, queries: int) -> Booking:
        """Book ``queries`` for today, or refuse with 429 when the budget would be exceeded."""
        day, limit = dt.datetime.now(dt.UTC).date(), principal.daily_queries
        if await self.quotas.book(principal.name, day, queries, limit) is None:
            assert limit is not None
            spent = await self.quotas.spent(principal.name, day)
            raise ProblemError(
                status=429,
                slug="daily-budget-exhausted",
                title="Daily query budget exhausted",
                detail=f"this request needs {queries:,} queries but the key has "
                f"{max(0, limit - spent):,} left today (of {limit:,}); lower n or n0, or wait "
                "until 00:00 UTC",
            )
        return Booking(principal.name, day, queries)

    async def settle(self, booking: Booking, spent: int) -> None:
        """Give back what was booked but not sent (cached, stopped early, failed), on the day
        it was booked."""
        unsent = booking.queries - spent
        if unsent > 0:
            await self.quotas.unbook(booking.key, booking.day, unsent)

    async def spent_today(self, principal: Principal) -> int:
        return await self.quotas.spent(principal.name, dt.datetime.now(dt.UTC).date())


class RateLimits:
    """Requests per minute per key, a burst of up to one minute's worth (GCRA); 0: unlimited."""

    def __init__(self, per_minute: int, quotas: Quotas) -> None:
        self.per_minute, self.quotas = per_minute, quotas

    async def admit(self, principal: Principal) -> None:
        if not self.per_minute:
            return
        wait = await self.quotas.take(principal.name, self.per_minute)
        if wait > 0:
            raise ProblemError(
                status=429,
                slug="rate-limited",
                title="Too many requests",
                detail=f"this key may send {self.per_minute} requests per minute; slow down",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )
