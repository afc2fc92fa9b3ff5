"""Admission control: how much sampling runs at once, how much may wait, and each key's share.

Every certification, prediction, job and preview holds a :class:`Ticket` from admission to its
end. At most ``running`` of them sample at once — their chunks take turns on the model thread, so
a large job slows small requests down but never starves them — and at most ``queued`` more wait
for a turn. Beyond that the server answers 503; beyond ``per_key`` tickets of one key, 429 (one
client cannot fill the queue for everyone). Both with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from types import TracebackType

from service.api.auth import Principal
from service.api.problems import ProblemError

__all__ = ["Admission", "Ticket"]

RETRY_AFTER_S = 5


class Ticket:
    """One admitted request: ``async with ticket`` waits for a running slot and, on leaving
    (or when cancelled while waiting), frees the slot and the request's place in its key's
    share. A ticket that is never entered must be released (:meth:`release` is idempotent)."""

    def __init__(self, admission: Admission, key: str) -> None:
        self._admission, self._key = admission, key
        self._running = self._released = False

    async def __aenter__(self) -> Ticket:
        try:
            await self._admission._slots.acquire()
        except BaseException:  # cancelled while waiting: leave the queue
            self.release()
            raise
        self._running = True
        self._admission._waiting -= 1
        self._admission._sampling += 1
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        admission = self._admission
        if self._running:
            admission._sampling -= 1
            admission._slots.release()
        else:
            admission._waiting -= 1
        admission._per_key[self._key] -= 1
        if not admission._per_key[self._key]:
            del admission._per_key[self._key]


class Admission:
    def __init__(self, running: int, queued: int, per_key: int) -> None:
        self.running, self.queued, self.per_key = running, queued, per_key
        self._slots = asyncio.Semaphore(running)
        self._waiting = 0  # admitted, not yet running
        self._sampling = 0  # holding a running slot
        self._per_key: Counter[str] = Counter()

    def admit(self, principal: Principal) -> Ticket:
        """A ticket for one more request of ``principal``, or a 429/503 problem when the key's
        share or the server's queue is full. Nothing waits here."""
        if self._per_key[principal.name] >= self.per_key:
            raise ProblemError(
                status=429,
                slug="too-many-concurrent-requests",
                title="Too many concurrent requests",
                detail=f"this key has {self.per_key} certifications, predictions or jobs running "
                "or waiting, its most at once; wait for one to finish (or cancel a job)",
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
        if self._waiting >= self.queued and self._slots.locked():
            raise ProblemError(
                status=503,
                slug="server-busy",
                title="Server busy",
                detail=f"{self.running} requests are sampling and {self._waiting} are waiting, "
                "as many as this server queues; retry later",
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
        self._per_key[principal.name] += 1
        self._waiting += 1
        return Ticket(self, principal.name)

    @property
    def load(self) -> dict[str, int]:
        """Requests running and waiting (for metrics and /readyz)."""
        return {"running": self._sampling, "waiting": self._waiting}
