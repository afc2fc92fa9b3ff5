"""The fan-out engine: many images through one adapter, politely and without losing a vote.

- batches of the adapter's ``images_per_call`` (and ``bytes_per_call``), at most
  ``concurrency`` calls in flight;
- a client-side rate limiter per credential (aiolimiter), so that 429s are rare;
- retries with jittered exponential backoff on 429, 5xx, timeouts and connection errors, waiting
  at least what the server asked (tenacity); images failed alone with a transient per-image error
  go again, after a backoff too, in a smaller call;
- an overall deadline, after which unanswered images are failures;
- a circuit breaker that fails fast while the vendor is down.

Every image ends as an :class:`Answer` or a :class:`Failure`; a failure is a vote against the
candidate (statistical rule 4). Only refused credentials abort the whole certification.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol

import httpx
from aiolimiter import AsyncLimiter
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)

from service.adapters.base import Adapter, AdapterError, Answer, CredentialsError, Failure
from service.observability import span

__all__ = ["CircuitBreaker", "CircuitOpenError", "FanOut", "FanOutPolicy"]


@dataclass(frozen=True)
class FanOutPolicy:
    concurrency: int = 8
    requests_per_second: float = 10.0
    max_attempts: int = 5
    backoff_base_s: float = 0.5
    backoff_max_s: float = 20.0
    deadline_s: float = 300.0
    breaker_failures: int = 5
    breaker_reset_s: float = 30.0


class CircuitOpenError(AdapterError):
    def __init__(self, name: str, seconds: float) -> None:
        super().__init__(f"{name}: circuit open for {seconds:.0f} s more", retryable=False)


class CircuitBreaker:
    """Opens after ``threshold`` calls in a row failed for good; half-opens after ``reset_s``."""

    def __init__(self, name: str, threshold: int, reset_s: float) -> None:
        self.name, self.threshold, self.reset_s = name, threshold, reset_s
        self.failures, self.opened_at = 0, 0.0

    def check(self) -> None:
        if self.failures >= self.threshold:
            remaining = self.opened_at + self.reset_s - time.monotonic()
            if remaining > 0:
                raise CircuitOpenError(self.name, remaining)

    def record(self, ok: bool) -> None:
        if ok:
            self.failures = 0
            return
        self.failures += 1
        if self.failures >= self.threshold:
            self.opened_at = time.monotonic()

    @property
    def open(self) -> bool:
        return self.failures >= self.threshold and (
            time.monotonic() < self.opened_at + self.reset_s
        )


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, AdapterError):
        return exc.retryable
    return isinstance(exc, httpx.TimeoutException | httpx.NetworkError | httpx.RemoteProtocolError)


def _batches(sizes: Sequence[int], per_call: int, limit: int | None) -> list[list[int]]:
    """Indices in calls of at most ``per_call`` images and, where the vendor caps the request's
    size, ``limit`` bytes (an image larger than that goes alone)."""
    batches: list[list[int]] = []
    used = 0
    for index, size in enumerate(sizes):
        full = batches and len(batches[-1]) >= per_call
        if not batches or full or (limit is not None and used + size > limit):
            batches.append([])
            used = 0
        batches[-1].append(index)
        used += size
    return batches


def _retry_image(result: Answer | Failure) -> bool:
    return isinstance(result, Failure) and result.retryable


class _WaitRetryAfter:
    """Jittered exponential backoff, but never shorter than a server-given Retry-After."""

    def __init__(self, base: float, cap: float) -> None:
        self.backoff = wait_random_exponential(multiplier=base, max=cap)
        self.cap = cap

    def __call__(self, state: RetryCallState) -> float:
        wait = self.backoff(state)
        exc = state.outcome.exception() if state.outcome else None
        asked = exc.retry_after if isinstance(exc, AdapterError) else None
        return _at_least_asked(float(wait), [asked] if asked is not None else [], self.cap)


def _at_least_asked(wait: float, asked: list[float], cap: float) -> float:
    """``wait``, or longer where the vendor asked for more (up to three times the cap)."""
    return max([wait, *(min(a, 3 * cap) for a in asked)])


class Pacer(Protocol):
    """Spaces the calls of one credential: ``async with pacer`` waits for the call's turn."""

    async def __aenter__(self) -> object: ...

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> object: ...


class FanOut:
    """Shared by every request that uses one adapter (one credential, one rate limit)."""

    def __init__(
        self, adapter: Adapter, policy: FanOutPolicy | None = None, pacer: Pacer | None = None
    ) -> None:
        self.adapter = adapter
        self.policy = policy or FanOutPolicy()
        # Paced one request per 1/rate seconds, no burst: a vendor's token bucket never empties.
        # In this process by default; a shared pacer (Redis) keeps all replicas together under
        # the credential's rate.
        self.limiter: Pacer = pacer or AsyncLimiter(1, 1.0 / self.policy.requests_per_second)
        self.breaker = CircuitBreaker(
            adapter.name, self.policy.breaker_failures, self.policy.breaker_reset_s
        )
        self._slots = asyncio.Semaphore(self.policy.concurrency)
        self.calls = 0  # HTTP calls sent, retries included
        self.last_model_version: str | None = None  # what the vendor reported last

    async def classify(self, images: Sequence[bytes]) -> list[Answer | Failure]:
        """One result per image, in order. Raises :class:`CredentialsError` only."""
        adapter = self.adapter
        sizes = [adapter.call_bytes(image) for image in images]
        batches = _batches(sizes, adapter.images_per_call, adapter.bytes_per_call)
        results: list[Answer | Failure] = [Failure("deadline exceeded")] * len(images)
        deadline = time.monotonic() + self.policy.deadline_s

        async def run(indices: list[int]) -> None:
            answers = await self._batch([images[i] for i in indices], deadline)
            for index, answer in zip(indices, answers, strict=True):
                results[index] = answer

        try:
            async with asyncio.timeout(self.policy.deadline_s), asyncio.TaskGroup() as group:
                for batch in batches:
                    group.create_task(run(batch))
        except TimeoutError:
            pass  # unanswered images stay failures
        except ExceptionGroup as errors:
            refused = [e for e in errors.exceptions if isinstance(e, CredentialsError)]
            if refused:
                raise refused[0] from None
            raise
        return results

    async def _batch(self, images: list[bytes], deadline: float) -> list[Answer | Failure]:
        """One batch with retries; per-image retryable failures are retried in a smaller call."""
        results: list[Answer | Failure] = [Failure("not sent")] * len(images)
        pending = list(range(len(images)))
        for round_ in range(self.policy.max_attempts):
            if round_:  # the images a vendor could not answer now: back off before asking again
                await asyncio.sleep(self._image_backoff(round_, [results[i] for i in pending]))
            try:
                answers = await self._call([images[i] for i in pending], deadline)
            except CredentialsError:
                raise
            except AdapterError as exc:
                for index in pending:
                    results[index] = Failure(str(exc))
                return results
            for index, answer in zip(pending, answers, strict=True):
                results[index] = answer
            pending = [i for i in pending if _retry_image(results[i])]
            if not pending:
                break
        return results

    def _image_backoff(self, round_: int, failed: list[Answer | Failure]) -> float:
        """Jittered exponential, at least what the vendor asked for one of the images."""
        policy = self.policy
        wait = random.uniform(0, min(policy.backoff_max_s, policy.backoff_base_s * 2**round_))
        asked = [f.retry_after for f in failed if isinstance(f, Failure) and f.retry_after]
        return _at_least_asked(wait, asked, policy.backoff_max_s)

    async def _call(self, images: list[bytes], deadline: float) -> list[Answer | Failure]:
        """One HTTP call, retried on 429/5xx/timeouts until attempts or time run out."""
        retrying = AsyncRetrying(
            retry=retry_if_exception(_retryable),
            wait=_WaitRetryAfter(self.policy.backoff_base_s, self.policy.backoff_max_s),
            stop=stop_after_attempt(self.policy.max_attempts)
            | stop_after_delay(max(0.0, deadline - time.monotonic())),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    async with self._slots, self.limiter:
                        self.breaker.check()  # checked once a slot is ours: it may have opened
                        self.calls += 1
                        with span(
                            "vendor.call",
                            **{"dsmooth.vendor": self.adapter.name, "dsmooth.images": len(images),
                               "dsmooth.attempt": attempt.retry_state.attempt_number},
                        ):  # fmt: skip
                            answers = await self._classify(images)
        except CredentialsError:
            raise
        except (AdapterError, httpx.HTTPError) as exc:
            if not isinstance(exc, CircuitOpenError):
                self.breaker.record(ok=False)
            raise exc if isinstance(exc, AdapterError) else AdapterError(str(exc), False) from exc
        self.breaker.record(ok=True)
        return answers

    async def _classify(self, images: list[bytes]) -> list[Answer | Failure]:
        """The adapter's call; an answer it cannot read (a field missing or of another type, a
        result per image missing) fails this call, never the request around it."""
        try:
            answers = await self.adapter.classify(images)
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            raise AdapterError(
                f"{self.adapter.name}: unreadable answer ({type(exc).__name__}: {exc})", False
            ) from exc
        if len(answers) != len(images):
            raise AdapterError(
                f"{self.adapter.name}: {len(answers)} results for {len(images)} images", False
            )
        return answers
