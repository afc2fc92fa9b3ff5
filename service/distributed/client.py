"""Chunks through a Redis Stream: the gateway enqueues, ``dsmooth worker`` processes execute.

Protocol (all keys of one image share the ``{digest}`` hash tag, hence one Redis Cluster slot):

- ``dsmooth:image:{digest}`` — the certified pixels (float32, C-order), with a TTL;
- stream ``dsmooth:chunks``, consumer group ``workers`` — one entry per chunk task;
- a ``count`` task's result is the chunk's votes in the vote store (``SET NX``);
  a ``copies`` task's result is the list ``...:copies`` of PNG-encoded denoised copies (for
  remote classifiers, queried by the gateway);
- ``<result key>:error`` — why a task could not be done.

Workers ``XACK`` only after the result is stored; a dead worker's tasks are reclaimed by the
others with ``XAUTOCLAIM`` once idle for ``reclaim_idle_ms``. Results are deterministic
functions of the seed, so a task done twice stores the same answer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

import torch
from redis.asyncio import Redis

from service.core.noise import Chunk
from service.core.votes import ChunkCounts, chunk_key
from service.distributed.protocol import (
    HEARTBEATS,
    STREAM,
    ChunkTask,
    StreamError,
    as_bytes,
    image_key,
)

__all__ = [
    "StreamClient",
    "StreamCopies",
    "StreamSampler",
    "workers_alive",
]

if TYPE_CHECKING:
    from service.execution.local import LocalSampler

log = logging.getLogger("dsmooth.stream")


class StreamClient:
    """The gateway's side: store the image once, enqueue chunk tasks, wait for their results."""

    def __init__(self, redis: Redis, timeout_s: float = 600.0, image_ttl_s: int = 3600) -> None:
        self.redis, self.timeout_s, self.image_ttl_s = redis, timeout_s, image_ttl_s

    async def count(
        self, image: torch.Tensor, chunk: Chunk, classifier: str, denoiser: str, rng: str
    ) -> ChunkCounts:
        """The chunk's votes, counted by a worker and stored by it in the vote store."""
        key = chunk_key(chunk)
        task = ChunkTask(
            op="count", chunk=chunk, shape=tuple(image.shape), denoiser=denoiser,
            classifier=classifier, rng=rng, result_key=key,
        )  # fmt: skip
        await self._submit(image, task)
        return ChunkCounts.from_json(await self._wait(key, chunk.digest))

    async def copies(
        self, image: torch.Tensor, chunk: Chunk, denoiser: str, rng: str, min_side: int
    ) -> list[bytes]:
        """The chunk's denoised copies as PNGs, made by a worker."""
        key = (
            f"dsmooth:copies:{{{chunk.digest}}}:{chunk.seed:016x}:{chunk.size}:{min_side}:"
            f"{denoiser}"
        )
        task = ChunkTask(
            op="copies", chunk=chunk, shape=tuple(image.shape), denoiser=denoiser, rng=rng,
            result_key=key, min_side=min_side,
        )  # fmt: skip
        await self._submit(image, task)
        await self._wait(key + ":ready", chunk.digest)
        return [as_bytes(item) for item in await self.redis.lrange(key, 0, -1)]

    async def _submit(self, image: torch.Tensor, task: ChunkTask) -> None:
        pixels = image.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()
        key = image_key(task.chunk.digest)
        await self.redis.set(key, pixels, nx=True, ex=self.image_ttl_s)
        await self.redis.expire(key, self.image_ttl_s)
        await self.redis.xadd(STREAM, task.encode())  # type: ignore[arg-type]

    async def _wait(self, key: str, digest: str) -> bytes:
        """Poll for the result (or the error) until the timeout."""
        deadline, pause = time.monotonic() + self.timeout_s, 0.005
        while time.monotonic() < deadline:
            found, error, image = await self.redis.mget(key, key + ":error", image_key(digest))
            if found is not None:
                return as_bytes(found)
            if error is not None:
                raise StreamError(f"a worker failed the chunk: {as_bytes(error).decode()}")
            if image is None:  # Redis lost its data (a restart without persistence)
                raise StreamError("the chunk's task was lost by Redis (restarted?); retry")
            await asyncio.sleep(pause)
            pause = min(pause * 1.5, 0.1)
        raise StreamError(f"no worker finished the chunk within {self.timeout_s:.0f} s")


async def workers_alive(redis: Redis, within_s: float = 5.0) -> list[str]:
    """The workers that sent a heartbeat recently (they do every loop, at least every 0.5 s)."""
    names: Any = await redis.zrangebyscore(HEARTBEATS, time.time() - within_s, "+inf")
    return [as_bytes(name).decode() for name in names]


class StreamSampler:
    """A local classifier pair whose chunks run in stream workers (the gateway keeps the models
    for their names, versions and the clean-image query)."""

    price_per_query = 0.0
    stores_votes = True  # the worker puts the votes in the vote store itself
    model_version: str | None = None
    device_name = "stream workers"

    def __init__(self, worker: LocalSampler, stream: StreamClient, rng: str) -> None:
        self.worker, self.stream, self.rng = worker, stream, rng
        self.denoiser_ref, self.classifier_ref = worker.denoiser_ref, worker.classifier_ref
        self.precision = worker.precision

    @property
    def noise_params(self) -> dict[str, object]:
        return {**self.worker.noise_params, "rng": self.rng}

    def label_name(self, key: str) -> str:
        return self.worker.label_name(key)

    async def count(self, image: torch.Tensor, chunk: Chunk) -> ChunkCounts:
        return await self.stream.count(
            image, chunk, self.classifier_ref.name, self.denoiser_ref.name, self.rng
        )

    async def clean_votes(self, image: torch.Tensor) -> ChunkCounts:
        return await self.worker.clean_votes(image)


class StreamCopies:
    """Denoised copies for a remote classifier, made by stream workers."""

    def __init__(self, stream: StreamClient, denoiser: str, rng: str) -> None:
        self.stream, self.denoiser, self.rng = stream, denoiser, rng

    async def encoded_copies(self, image: torch.Tensor, chunk: Chunk, min_side: int) -> list[bytes]:
        return await self.stream.copies(image, chunk, self.denoiser, self.rng, min_side)
