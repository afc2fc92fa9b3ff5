"""API keys, per-key daily query budgets, monthly spend limits and request rates.

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
from dataclasses import dataclass, field
from typing import Literal, Protocol

from service.api.problems import ProblemError
from service.config import ApiKey

__all__ = [
    "OPEN_ACCESS",
    "Authenticator",
    "Booking",
    "BudgetRefusal",
    "DailyBudgets",
    "MemoryQuotas",
    "Principal",
    "Quotas",
    "RateLimits",
    "UsageCounts",
    "hash_api_key",
    "micro_usd",
    "month_of",
]


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    daily_queries: int | None
    max_work_tflop: float | None = None  # this key's share of the work limit
    monthly_usd: float | None = None  # USD of classifier queries per UTC month; None: no limit


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
        return Principal(match.name, match.daily_queries, match.max_work_tflop, match.monthly_usd)


def _unauthorised(detail: str) -> ProblemError:
    return ProblemError(
        status=401,
        slug="unauthorised",
        title="Missing or wrong API key",
        detail=detail,
        headers={"WWW-Authenticate": "Bearer"},
    )


_TWO_DAYS = dt.timedelta(days=2)

BudgetRefusal = Literal["daily", "monthly"]
"""Which limit a booking would have passed: the key's daily queries or its monthly dollars."""


def micro_usd(queries: int, price_per_query: float) -> int:
    """The price of ``queries`` in whole millionths of a dollar: spend is counted in integers,
    so that booking and settling many requests adds up exactly (no float drift in Redis)."""
    return round(queries * price_per_query * 1_000_000)


def month_of(day: dt.date) -> str:
    """The UTC calendar month a day's spend counts in, ``YYYY-MM``."""
    return f"{day.year:04d}-{day.month:02d}"


class Quotas(Protocol):
    """Where budgets and rates are counted: this process, or Redis for all replicas
    (:class:`service.distributed.redis_quotas.RedisQuotas`).

    Each key has two counts that are booked and settled together: queries per UTC day, and
    spend in millionths of a dollar per UTC month (the month of the day booked)."""

    async def book(
        self,
        name: str,
        day: dt.date,
        queries: int,
        limit: int | None,
        micros: int = 0,
        monthly_limit: int | None = None,
    ) -> BudgetRefusal | None:
        """Book ``queries`` on the day's count and ``micros`` on the month's, both or neither
        (one atomic step): None when booked, else the limit the booking would have passed."""
        ...

    async def unbook(
        self,
        name: str,
        day: dt.date,
        queries: int,
        micros: int = 0,
        settlement: str | None = None,
    ) -> None:
        """Give back queries to the day's count and micros to its month's (never below 0).

        With ``settlement`` (a job's booking id; one atomic step): a booking settled more than
        once — a job taken over by another replica while its first gateway still ran — gets
        back the smallest refund asked, whatever the order (a larger one before is charged
        back)."""
        ...

    async def spent(self, name: str, day: dt.date) -> int:
        """Queries booked on ``day``."""
        ...

    async def spent_micros(self, name: str, day: dt.date) -> int:
        """Millionths of a dollar booked in the month of ``day``."""
        ...

    async def take(self, name: str, per_minute: int) -> float:
        """One request at ``per_minute``: 0 when allowed, else the seconds to wait."""
        ...


class MemoryQuotas:
    """Budgets and rates of this process alone (no Redis: one replica)."""

    def __init__(self) -> None:
        self._spent: dict[tuple[str, dt.date], int] = {}
        self._micros: dict[tuple[str, str], int] = {}
        # jobs' settlements by the day booked: booking id -> (queries, micros) given back
        self._settled: dict[dt.date, dict[str, tuple[int, int]]] = {}
        self._arrival: dict[str, float] = {}

    async def book(
        self,
        name: str,
        day: dt.date,
        queries: int,
        limit: int | None,
        micros: int = 0,
        monthly_limit: int | None = None,
    ) -> BudgetRefusal | None:
        self._spent.pop((name, day - _TWO_DAYS), None)
        total = self._spent.get((name, day), 0) + queries
        if limit is not None and total > limit:
            return "daily"
        month = (name, month_of(day))
        spend = self._micros.get(month, 0) + micros
        if micros > 0 and monthly_limit is not None and spend > monthly_limit:
            return "monthly"
        self._spent[(name, day)] = total
        if micros > 0:
            self._micros[month] = spend
        return None

    async def unbook(
        self,
        name: str,
        day: dt.date,
        queries: int,
        micros: int = 0,
        settlement: str | None = None,
    ) -> None:
        if settlement is not None:
            for stale in [d for d in self._settled if d < day - _TWO_DAYS]:
                del self._settled[stale]
            settled = self._settled.setdefault(day, {})
            if settlement in settled:  # settled before: keep the smaller refund
                given_q, given_m = settled[settlement]
                self._spent[(name, day)] = self._spent.get((name, day), 0) + max(
                    0, given_q - queries
                )
                month = (name, month_of(day))
                self._micros[month] = self._micros.get(month, 0) + max(0, given_m - micros)
                settled[settlement] = (min(given_q, queries), min(given_m, micros))
                return
            settled[settlement] = (queries, micros)
        self._spent[(name, day)] = max(0, self._spent.get((name, day), 0) - queries)
        if micros > 0:
            month = (name, month_of(day))
            self._micros[month] = max(0, self._micros.get(month, 0) - micros)

    async def spent(self, name: str, day: dt.date) -> int:
        return self._spent.get((name, day), 0)

    async def spent_micros(self, name: str, day: dt.date) -> int:
        return self._micros.get((name, month_of(day)), 0)

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
    """Queries booked on one key's budget for one UTC day, and their worst-case price on the
    key's spend for that day's month (``price_per_query`` x ``queries``)."""

    key: str
    day: dt.date
    queries: int
    price_per_query: float = 0.0
    # A job's settlements go by this id: taken over by another replica while its first gateway
    # still runs (a lease lost in a Redis outage), it ends twice and must be refunded once.
    id: str = field(default_factory=lambda: secrets.token_hex(12))

    @property
    def micros(self) -> int:
        return micro_usd(self.queries, self.price_per_query)

    def to_json(self) -> str:
        return json.dumps(
            {
                "key": self.key,
                "day": self.day.isoformat(),
                "queries": self.queries,
                "price_per_query": self.price_per_query,
                "id": self.id,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Booking:
        fields = json.loads(text)
        return cls(
            fields["key"],
            dt.date.fromisoformat(fields["day"]),
            int(fields["queries"]),
            float(fields.get("price_per_query", 0.0)),  # absent in records of older versions
            # Older records have no id: one from the record itself, the same at every reading.
            str(fields.get("id") or hashlib.sha256(text.encode()).hexdigest()[:24]),
        )


@dataclass(frozen=True, slots=True)
class UsageCounts:
    """A key's counts now: today's queries and this month's spend, with their limits."""

    key: str
    day: dt.date
    queries_today: int
    daily_queries: int | None
    spent_usd_this_month: float
    monthly_usd: float | None


class DailyBudgets:
    """Queries booked per key per UTC day, and dollars per key per UTC month.

    A request books its planned queries (and their worst-case price) before it starts (check
    and book are one step, so concurrent requests cannot overdraw either budget, on one replica
    or many) and settles when it ends: what it did not send is given back."""

    def __init__(self, quotas: Quotas) -> None:
        self.quotas = quotas

    async def reserve(
        self, principal: Principal, queries: int, price_per_query: float = 0.0
    ) -> Booking:
        """Book ``queries`` for today and their price for this month, or refuse with 429 when
        the daily query budget or the monthly spend limit would be exceeded."""
        day, limit = dt.datetime.now(dt.UTC).date(), principal.daily_queries
        booking = Booking(principal.name, day, queries, price_per_query)
        monthly = principal.monthly_usd
        monthly_limit = None if monthly is None else micro_usd(1, monthly)
        refused = await self.quotas.book(
            principal.name, day, queries, limit, booking.micros, monthly_limit
        )
        if refused == "daily":
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
        if refused == "monthly":
            assert monthly is not None
            spent_usd = await self.quotas.spent_micros(principal.name, day) / 1_000_000
            raise ProblemError(
                status=429,
                slug="monthly-spend-exhausted",
                title="Monthly spend limit reached",
                detail=f"this request may cost up to ${booking.micros / 1_000_000:,.4f} "
                f"({queries:,} queries at ${price_per_query:g}) but the key has "
                f"${max(0.0, monthly - spent_usd):,.4f} left this month (of ${monthly:,.2f}); "
                "lower n or n0, use candidate='clean', or wait until the 1st, 00:00 UTC "
                "(POST /v1/certify/estimate prices a request, GET /v1/usage shows the spend)",
            )
        return booking

    async def settle(
        self, booking: Booking, spent: int, paid: int | None = None, *, job: bool = False
    ) -> None:
        """Give back what was booked but not sent (cached, stopped early, failed), on the day
        (and month) it was booked. ``paid``: the queries billed, for the dollars (the sent ones
        less those that failed for good, as a certificate's ``cost``); default ``spent``.
        A ``job``'s booking may be settled by two replicas: it keeps the smaller refund."""
        unsent = max(0, booking.queries - spent)
        paid = spent if paid is None else min(paid, spent)
        refund = max(0, booking.micros - micro_usd(max(0, paid), booking.price_per_query))
        if job:
            await self.quotas.unbook(booking.key, booking.day, unsent, refund, booking.id)
        elif unsent > 0 or refund > 0:
            await self.quotas.unbook(booking.key, booking.day, unsent, refund)

    async def spent_today(self, principal: Principal) -> int:
        return await self.quotas.spent(principal.name, dt.datetime.now(dt.UTC).date())

    async def usage(self, principal: Principal) -> UsageCounts:
        """The key's queries today and spend this month (UTC), with its limits."""
        day = dt.datetime.now(dt.UTC).date()
        return UsageCounts(
            key=principal.name,
            day=day,
            queries_today=await self.quotas.spent(principal.name, day),
            daily_queries=principal.daily_queries,
            spent_usd_this_month=await self.quotas.spent_micros(principal.name, day) / 1_000_000,
            monthly_usd=principal.monthly_usd,
        )


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
