"""Cross-request batching: concurrent work items that can share a forward pass run in one call.

Items queue while the model is busy; when it is free, one call takes every queued item with the
same key as the oldest (up to ``max_size`` units of work, at least one item), so concurrent
certifications fill the device's batches without waiting for a timer. The result of an item never
depends on its companions: each chunk draws its own seeded noise (see ``service/core/noise.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["Batcher"]

W = TypeVar("W")
R = TypeVar("R")


@dataclass(slots=True)
class _Item(Generic[W, R]):
    work: W
    future: asyncio.Future[R]


class Batcher(Generic[W, R]):
    """``await batcher.submit(work)`` -> ``run([work, ...])[i]``, with queued work run together."""

    def __init__(
        self,
        run: Callable[[list[W]], Awaitable[list[R]]],
        size: Callable[[W], int],
        key: Callable[[W], Hashable],
        max_size: int,
    ) -> None:
        self._run, self._size, self._key, self.max_size = run, size, key, max_size
        self._queue: list[_Item[W, R]] = []
        self._drainer: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def submit(self, work: W) -> R:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new event loop (asyncio.run per call): forget the old one's
            self._loop, self._queue, self._drainer = loop, [], None
        item: _Item[W, R] = _Item(work, loop.create_future())
        self._queue.append(item)
        if self._drainer is None or self._drainer.done():
            self._drainer = loop.create_task(self._drain())
        return await item.future

    def _take(self) -> list[_Item[W, R]]:
        """The oldest live item and the queued items that share its key, within ``max_size``."""
        self._queue = [item for item in self._queue if not item.future.done()]  # cancelled
        if not self._queue:
            return []
        key = self._key(self._queue[0].work)
        taken: list[_Item[W, R]] = []
        kept: list[_Item[W, R]] = []
        total = 0
        for item in self._queue:
            size = self._size(item.work)
            if self._key(item.work) == key and (not taken or total + size <= self.max_size):
                taken.append(item)
                total += size
            else:
                kept.append(item)
        self._queue = kept
        return taken

    async def _drain(self) -> None:
        while batch := self._take():
            try:
                results = await self._run([item.work for item in batch])
            except BaseException as exc:  # every caller of this batch sees the failure, none hangs
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
                continue
            for item, result in zip(batch, results, strict=True):
                if not item.future.done():
                    item.future.set_result(result)
