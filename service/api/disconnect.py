"""Synchronous requests stop sampling when their client goes away.

A client that gives up on ``POST /v1/certify`` (a timeout, a closed tab) must not leave the
server computing for nobody: the work runs as a task that is cancelled at the next chunk once
the connection is gone. What it drew until then is charged, and its votes are kept, so a repeat
continues where it stopped."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from starlette.requests import Request

from service.api.problems import ProblemError

__all__ = ["POLL_S", "unless_disconnected"]

T = TypeVar("T")

POLL_S = 0.25  # how often the connection is looked at while the work runs


async def unless_disconnected(request: Request, work: Coroutine[Any, Any, T]) -> T:
    """``await work``, cancelled as soon as the client of ``request`` has disconnected."""
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=POLL_S)
            if done:
                return task.result()
            if await request.is_disconnected():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                raise ProblemError(  # nobody reads it; logs and metrics do
                    status=499,
                    slug="client-closed-request",
                    title="Client closed the request",
                    detail="the client disconnected; sampling stopped at the next chunk",
                )
    finally:
        if not task.done():  # this handler itself was cancelled (server shutdown)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
