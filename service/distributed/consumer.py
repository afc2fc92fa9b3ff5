"""One ``dsmooth worker`` process: takes chunk tasks from the stream, runs them, stores results."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import defaultdict
from typing import Any

import numpy as np
import torch
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from service.adapters.prepare import encode_copies
from service.core.votes import ChunkCounts
from service.distributed.protocol import (
    GROUP,
    HEARTBEATS,
    STREAM,
    ChunkTask,
    Entry,
    StreamError,
    as_bytes,
    image_key,
)
from service.execution.pool import ModelPool

__all__ = ["StreamConsumer"]

log = logging.getLogger("dsmooth.worker")


class StreamConsumer:
    """One ``dsmooth worker`` process: takes chunk tasks, runs them, stores results, XACKs."""

    def __init__(
        self,
        redis: Redis,
        pool: ModelPool,
        name: str | None = None,
        batch: int = 8,
        reclaim_idle_ms: int = 30_000,
        result_ttl_s: int = 7 * 24 * 3600,
        copies_ttl_s: int = 900,
    ) -> None:
        self.redis, self.pool = redis, pool
        self.name = name or f"worker-{uuid.uuid4().hex[:8]}"
        self.batch, self.reclaim_idle_ms = batch, reclaim_idle_ms
        self.result_ttl_s, self.copies_ttl_s = result_ttl_s, copies_ttl_s
        self.done = 0

    async def ensure_group(self) -> None:
        try:
            await self.redis.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        # Listed by XINFO CONSUMERS from the start (a read of an empty stream does not do it).
        await self.redis.xgroup_createconsumer(STREAM, GROUP, self.name)

    async def run(self, stop: asyncio.Event) -> None:
        """Process tasks until ``stop`` is set; the batch in hand is finished first (SIGTERM)."""
        await self.ensure_group()
        log.info("worker %s consuming %s/%s", self.name, STREAM, GROUP)
        while not stop.is_set():
            try:
                await self.redis.zadd(HEARTBEATS, {self.name: time.time()})
                entries = await self._reclaimed() or await self._new(block_ms=500)
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                await self.ensure_group()  # Redis restarted without its data
                continue
            if entries:
                await self.process(entries)

    async def _new(self, block_ms: int) -> list[Entry]:
        answer: Any = await self.redis.xreadgroup(
            GROUP, self.name, {STREAM: ">"}, count=self.batch, block=block_ms
        )
        return [entry for _, entries in answer for entry in entries] if answer else []

    async def _reclaimed(self) -> list[Entry]:
        """Tasks another worker took but did not acknowledge in time (it died): ours now."""
        answer: Any = await self.redis.xautoclaim(
            STREAM, GROUP, self.name, self.reclaim_idle_ms, "0-0", count=self.batch
        )
        return [entry for entry in answer[1] if entry and entry[1]]

    async def process(self, entries: list[Entry]) -> None:
        """Run tasks, sharing forward passes between those of one model pair and image shape."""
        groups: dict[tuple[object, ...], list[tuple[bytes, ChunkTask]]] = defaultdict(list)
        for entry_id, fields in entries:
            task = ChunkTask.decode(fields)
            key = (task.op, task.classifier, task.denoiser, task.rng, task.shape)
            groups[key].append((entry_id, task))
        for group in groups.values():
            tasks = [task for _, task in group]
            try:
                await self._run(tasks)
            except Exception as exc:
                log.exception("chunk tasks failed")
                for task in tasks:
                    await self.redis.set(task.result_key + ":error", str(exc), ex=600)
            # Acknowledged only now: a worker killed before this line leaves them pending.
            await self.redis.xack(STREAM, GROUP, *[entry_id for entry_id, _ in group])
            self.done += len(group)

    async def _run(self, tasks: list[ChunkTask]) -> None:
        first = tasks[0]
        if first.rng == "torch-cuda" and not torch.cuda.is_available():
            raise StreamError("the task's noise stream needs CUDA; this worker has none")
        images = [await self._image(task) for task in tasks]
        if first.op == "count":
            sampler = self.pool.local_sampler(first.classifier, first.denoiser)
            work = [(image, t.chunk) for image, t in zip(images, tasks, strict=True)]
            counts = await sampler.on_model_thread(sampler.count_chunks, work, first.rng)
            for task, row in zip(tasks, counts, strict=True):
                votes = ChunkCounts({str(i): int(c) for i, c in enumerate(row) if c})
                await self.redis.set(
                    task.result_key, votes.to_json(), nx=True, ex=self.result_ttl_s
                )
            return
        denoiser = self.pool.local_denoiser(first.denoiser)
        for image, task in zip(images, tasks, strict=True):
            denoised = await denoiser.on_model_thread(
                denoiser.denoised, image, task.chunk, task.rng
            )
            pngs = await asyncio.to_thread(encode_copies, denoised, task.min_side)
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.delete(task.result_key)
                pipe.rpush(task.result_key, *pngs)
                pipe.expire(task.result_key, self.copies_ttl_s)
                pipe.set(task.result_key + ":ready", b"1", ex=self.copies_ttl_s)
                await pipe.execute()

    async def _image(self, task: ChunkTask) -> torch.Tensor:
        raw = await self.redis.get(image_key(task.chunk.digest))
        if raw is None:
            raise StreamError(f"image {task.chunk.digest[:12]} expired before its chunk ran")
        array = np.frombuffer(as_bytes(raw), dtype=np.float32).reshape(task.shape)
        return torch.from_numpy(array.copy())
