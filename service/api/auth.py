"""API keys and per-key daily query budgets.

Keys are configured as SHA-256 hashes (``dsmooth new-api-key`` makes a key and its hash), compared
in constant time. Open access exists only in development with no key configured.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from aiolimiter import AsyncLimiter

from service.api.problems import ProblemError
from service.config import ApiKey

__all__ = [
    "OPEN_ACCESS",
    "Authenticator",
    "Booking",
    "DailyBudgets",
    "Principal",
    "RateLimits",
    "hash_api_key",
]


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    daily_queries: int | None


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
        return Principal(match.name, match.daily_queries)


def _unauthorised(detail: str) -> ProblemError:
    return ProblemError(
        status=401,
        slug="unauthorised",
        title="Missing or wrong API key",
        detail=detail,
        headers={"WWW-Authenticate": "Bearer"},
    )


@dataclass(frozen=True, slots=True)
class Booking:
    """Queries booked on one key's budget for one UTC day."""

    key: str
    day: dt.date
    queries: int


class DailyBudgets:
    """Queries booked per key per UTC day, in process memory.

    A request books its planned queries before it starts (check and book are one step, so
    concurrent requests cannot overdraw the budget) and settles when it ends: what it did not
    send is given back."""

    def __init__(self) -> None:
        self._spent: dict[tuple[str, dt.date], int] = {}

    async def reserve(self, principal: Principal, queries: int) -> Booking:
        """Book ``queries`` for today, or refuse with 429 when the budget would be exceeded."""
        key = (principal.name, dt.datetime.now(dt.UTC).date())
        spent, limit = self._spent.get(key, 0), principal.daily_queries
        if limit is not None and spent + queries > limit:
            raise ProblemError(
                status=429,
                slug="daily-budget-exhausted",
                title="Daily query budget exhausted",
                detail=f"this request needs {queries:,} queries but the key has "
                f"{max(0, limit - spent):,} left today (of {limit:,}); lower n or n0, or wait "
                "until 00:00 UTC",
            )
        self._spent[key] = spent + queries
        return Booking(principal.name, key[1], queries)

    async def settle(self, booking: Booking, spent: int) -> None:
        """Give back what was booked but not sent (cached, stopped early, failed), on the day
        it was booked."""
        key = (booking.key, booking.day)
        unsent = max(0, booking.queries - spent)
        self._spent[key] = max(0, self._spent.get(key, 0) - unsent)

    async def spent_today(self, principal: Principal) -> int:
        return self._spent.get((principal.name, dt.datetime.now(dt.UTC).date()), 0)


class RateLimits:
    """Requests per minute per key (a leaky bucket each, aiolimiter); 0 means unlimited."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._limiters: dict[str, AsyncLimiter] = {}

    async def admit(self, principal: Principal) -> None:
        if not self.per_minute:
            return
        limiter = self._limiters.setdefault(principal.name, AsyncLimiter(self.per_minute, 60))
        if not limiter.has_capacity():
            raise ProblemError(
                status=429,
                slug="rate-limited",
                title="Too many requests",
                detail=f"this key may send {self.per_minute} requests per minute; slow down",
                headers={"Retry-After": str(max(1, round(60 / self.per_minute)))},
            )
        await limiter.acquire()
