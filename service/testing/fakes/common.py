"""What every fake shares: keys, a per-key token bucket, switchable faults, a request log."""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service.testing.fakes.labeler import (
    BytesLabeler,
    MobileNetLabeler,
    PixelLabeler,
    default_labeler,
)


@dataclass
class Faults:
    """Switchable misbehaviour. Counters apply to the next N calls, then run out."""

    throttle: int = 0  # answer 429
    retry_after: float | None = None  # with this Retry-After header (None: no header)
    server_error: int = 0  # answer 500
    hang: int = 0  # never answer (the client's timeout fires)
    malformed: int = 0  # answer 200 with a body that is not JSON
    slow_s: float = 0.0  # delay every answer
    image_error_every: int = 0  # every k-th image gets a per-image error (where the API has them)
    image_error_retryable: bool = True  # ... a transient one, or one that a retry cannot fix
    # Refuse every call's credentials in this documented shape (see each fake's REFUSALS).
    refusal: str | None = None


@dataclass
class TokenBucket:
    rate: float
    burst: float
    tokens: float = -1.0
    stamp: float = field(default_factory=time.monotonic)

    def take(self) -> bool:
        now = time.monotonic()
        if self.tokens < 0:
            self.tokens = self.burst
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


@dataclass
class FakeState:
    """A fake vendor's state; tests hold it and flip faults directly."""

    keys: set[str] = field(default_factory=lambda: {"good-key"})
    rate: float = 1000.0  # requests per second per key
    burst: float = 10.0
    faults: Faults = field(default_factory=Faults)
    labeler: PixelLabeler | MobileNetLabeler | BytesLabeler = field(default_factory=default_labeler)
    model_version: str = "2024-02-01"
    upgrade_at: int | None = None  # after this many images the vendor ships a new model ...
    upgrade_to: str = "2025-01-01"  # ... with this version
    calls: int = 0  # HTTP calls received
    images: int = 0  # images labelled (answers billed)
    throttled: int = 0
    log: list[dict[str, Any]] = field(default_factory=list)
    _buckets: dict[str, TokenBucket] = field(default_factory=dict)

    def admit(self, key: str) -> bool:
        bucket = self._buckets.setdefault(key, TokenBucket(self.rate, self.burst))
        return bucket.take()

    def image_fails(self) -> bool:
        """Bills one image (and ships the upgrade when due); True when the fault plan gives this
        image a per-image error."""
        self.images += 1
        if self.upgrade_at is not None and self.images >= self.upgrade_at:
            self.model_version = self.upgrade_to
        every = self.faults.image_error_every
        return bool(every) and self.images % every == 0


async def misbehave(state: FakeState) -> str | None:
    """Apply the call-level faults; returns 'throttle', 'error', 'malformed' or None."""
    faults = state.faults
    if faults.slow_s:
        await asyncio.sleep(faults.slow_s)
    if faults.hang:
        faults.hang -= 1
        await asyncio.sleep(3600)
    if faults.throttle:
        faults.throttle -= 1
        return "throttle"
    if faults.server_error:
        faults.server_error -= 1
        return "error"
    if faults.malformed:
        faults.malformed -= 1
        return "malformed"
    return None


def retry_after_headers(state: FakeState) -> dict[str, str]:
    value = state.faults.retry_after
    return {} if value is None else {"Retry-After": f"{value:g}"}


MALFORMED = Response(b'{"half": ', media_type="application/json")


def fake_app(
    state: FakeState,
    routes: list[tuple[str, Callable[[Request], Any]]],
) -> Starlette:
    """A Starlette app with the vendor's routes plus ``/_fake/state`` for standalone use."""

    async def describe(request: Request) -> JSONResponse:
        return JSONResponse(
            {"calls": state.calls, "images": state.images, "throttled": state.throttled}
        )

    app = Starlette(
        routes=[Route(path, handler, methods=["POST"]) for path, handler in routes]
        + [Route("/_fake/state", describe, methods=["GET"])]
    )
    app.state.fake = state
    return app


def run_standalone(build: Callable[[FakeState], Starlette], description: str) -> None:
    """``python -m service.testing.fakes.<vendor> --port N [--key K] [--rate R]``: loopback only."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--key", action="append", default=None, help="accepted key (repeatable)")
    parser.add_argument("--rate", type=float, default=1000.0, help="requests/s per key")
    args = parser.parse_args()
    state = FakeState(rate=args.rate)
    if args.key:
        state.keys = set(args.key)
    print(f"{description} on http://127.0.0.1:{args.port}, keys: {sorted(state.keys)}")
    uvicorn.run(build(state), host="127.0.0.1", port=args.port, log_level="warning")
