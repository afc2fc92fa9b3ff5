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
import json
import logging
import time
import uuid
from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from service.adapters.prepare import encode_copies
from service.sampling import Chunk, Phase
from service.votes import ChunkCounts, chunk_key

__all__ = [
    "STREAM",
    "ChunkTask",
    "StreamClient",
    "StreamConsumer",
    "StreamCopies",
    "StreamError",
    "StreamSampler",
    "workers_alive",
]

if TYPE_CHECKING:
    from service.catalog import Catalog
    from service.worker import LocalWorker

log = logging.getLogger("dsmooth.stream")

Entry = tuple[bytes, dict[bytes, bytes]]

STREAM = "dsmooth:chunks"
GROUP = "workers"
HEARTBEATS = "dsmooth:workers"  # sorted set: worker name -> time of its last loop


class StreamError(RuntimeError):
    """A task failed in a worker, or no worker answered in time."""


@dataclass(frozen=True)
class ChunkTask:
    op: str  # "count" (local classifier) or "copies" (denoised PNGs for a remote classifier)
    digest: str
    shape: tuple[int, ...]
    phase: str
    index: int
    size: int
    seed: int
    sigma: float
    denoiser: str
    classifier: str  # catalog name ("" for copies)
    rng: str  # "torch-cpu" or "torch-cuda"
    result_key: str
    min_side: int = 1

    @property
    def chunk(self) -> Chunk:
        return Chunk(Phase(self.phase), self.index, self.size, self.seed)

    def encode(self) -> dict[str, str]:
        return {"task": json.dumps(asdict(self))}

    @classmethod
    def decode(cls, fields: dict[bytes, bytes]) -> ChunkTask:
        data = json.loads(fields[b"task"])
        data["shape"] = tuple(data["shape"])
        return cls(**data)


def image_key(digest: str) -> str:
    return f"dsmooth:image:{{{digest}}}"


class StreamClient:
    """The gateway's side: store the image once, enqueue chunk tasks, wait for their results."""

    def __init__(self, redis: Redis, timeout_s: float = 600.0, image_ttl_s: int = 3600) -> None:
        self.redis, self.timeout_s, self.image_ttl_s = redis, timeout_s, image_ttl_s

    async def count(
        self, image: torch.Tensor, digest: str, chunk: Chunk, sigma: float, pair: tuple[str, str],
        rng: str,
    ) -> ChunkCounts:  # fmt: skip
        classifier, denoiser = pair
        key = chunk_key(digest, chunk)
        task = self._task("count", image, digest, chunk, sigma, denoiser, classifier, rng, key)
        await self._submit(image, task)
        return ChunkCounts.from_json(await self._wait(key, digest))

    async def copies(
        self, image: torch.Tensor, digest: str, chunk: Chunk, sigma: float, denoiser: str,
        rng: str, min_side: int,
    ) -> list[bytes]:  # fmt: skip
        key = f"dsmooth:copies:{{{digest}}}:{chunk.seed:016x}:{chunk.size}:{min_side}:{denoiser}"
        task = self._task("copies", image, digest, chunk, sigma, denoiser, "", rng, key, min_side)
        await self._submit(image, task)
        await self._wait(key + ":ready", digest)
        return [_bytes(item) for item in await self.redis.lrange(key, 0, -1)]

    @staticmethod
    def _task(
        op: str, image: torch.Tensor, digest: str, chunk: Chunk, sigma: float, denoiser: str,
        classifier: str, rng: str, key: str, min_side: int = 1,
    ) -> ChunkTask:  # fmt: skip
        return ChunkTask(
            op, digest, tuple(image.shape), chunk.phase.value, chunk.index, chunk.size,
            chunk.seed, sigma, denoiser, classifier, rng, key, min_side,
        )  # fmt: skip

    async def _submit(self, image: torch.Tensor, task: ChunkTask) -> None:
        pixels = image.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()
        await self.redis.set(image_key(task.digest), pixels, nx=True, ex=self.image_ttl_s)
        await self.redis.expire(image_key(task.digest), self.image_ttl_s)
        await self.redis.xadd(STREAM, task.encode())  # type: ignore[arg-type]

    async def _wait(self, key: str, digest: str) -> bytes:
        """Poll for the result (or the error) until the timeout."""
        deadline, pause = time.monotonic() + self.timeout_s, 0.005
        while time.monotonic() < deadline:
            found, error, image = await self.redis.mget(key, key + ":error", image_key(digest))
            if found is not None:
                return _bytes(found)
            if error is not None:
                raise StreamError(f"a worker failed the chunk: {_bytes(error).decode()}")
            if image is None:  # Redis lost its data (a restart without persistence)
                raise StreamError("the chunk's task was lost by Redis (restarted?); retry")
            await asyncio.sleep(pause)
            pause = min(pause * 1.5, 0.1)
        raise StreamError(f"no worker finished the chunk within {self.timeout_s:.0f} s")


async def workers_alive(redis: Redis, within_s: float = 5.0) -> list[str]:
    """The workers that sent a heartbeat recently (they do every loop, at least every 0.5 s)."""
    names: Any = await redis.zrangebyscore(HEARTBEATS, time.time() - within_s, "+inf")
    return [_bytes(name).decode() for name in names]


class StreamSampler:
    """A local classifier pair whose chunks run in stream workers (the gateway keeps the models
    for their names, versions and the clean-image query)."""

    price_per_query = 0.0
    model_version: str | None = None
    device_name = "stream workers"

    def __init__(self, worker: LocalWorker, stream: StreamClient, rng: str) -> None:
        self.worker, self.stream, self.rng = worker, stream, rng
        self.denoiser_ref, self.classifier_ref = worker.denoiser_ref, worker.classifier_ref
        self.precision = worker.precision

    @property
    def stream_params(self) -> dict[str, object]:
        return {**self.worker.stream_params, "rng": self.rng}

    def label_name(self, key: str) -> str:
        return self.worker.label_name(key)

    async def count(
        self, image: torch.Tensor, digest: str, chunk: Chunk, sigma: float
    ) -> ChunkCounts:
        pair = (self.classifier_ref.name, self.denoiser_ref.name)
        return await self.stream.count(image, digest, chunk, sigma, pair, self.rng)

    async def clean_votes(self, image: torch.Tensor) -> ChunkCounts:
        return await self.worker.clean_votes(image)


class StreamCopies:
    """Denoised copies for a remote classifier, made by stream workers."""

    def __init__(self, stream: StreamClient, denoiser: str, rng: str) -> None:
        self.stream, self.denoiser, self.rng = stream, denoiser, rng

    async def encoded_copies(
        self, image: torch.Tensor, digest: str, chunk: Chunk, sigma: float, min_side: int
    ) -> list[bytes]:
        return await self.stream.copies(
            image, digest, chunk, sigma, self.denoiser, self.rng, min_side
        )


class StreamConsumer:
    """One ``dsmooth worker`` process: takes chunk tasks, runs them, stores results, XACKs."""

    def __init__(
        self,
        redis: Redis,
        catalog: Catalog,
        name: str | None = None,
        batch: int = 8,
        reclaim_idle_ms: int = 30_000,
        result_ttl_s: int = 7 * 24 * 3600,
        copies_ttl_s: int = 900,
    ) -> None:
        self.redis, self.catalog = redis, catalog
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
            worker = self.catalog.local_worker(first.classifier, first.denoiser)
            work = [(image, t.chunk, t.sigma) for image, t in zip(images, tasks, strict=True)]
            counts = await worker.on_model_thread(worker.count_chunks, work, first.rng)
            for task, row in zip(tasks, counts, strict=True):
                votes = ChunkCounts({str(i): int(c) for i, c in enumerate(row) if c})
                await self.redis.set(
                    task.result_key, votes.to_json(), nx=True, ex=self.result_ttl_s
                )
            return
        denoising = self.catalog.denoising(first.denoiser)
        for image, task in zip(images, tasks, strict=True):
            denoised = await denoising.on_model_thread(
                denoising.denoised, image, task.chunk, task.sigma, task.rng
            )
            pngs = await asyncio.to_thread(encode_copies, denoised, task.min_side)
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.delete(task.result_key)
                pipe.rpush(task.result_key, *pngs)
                pipe.expire(task.result_key, self.copies_ttl_s)
                pipe.set(task.result_key + ":ready", b"1", ex=self.copies_ttl_s)
                await pipe.execute()

    async def _image(self, task: ChunkTask) -> torch.Tensor:
        raw = await self.redis.get(image_key(task.digest))
        if raw is None:
            raise StreamError(f"image {task.digest[:12]} expired before its chunk ran")
        array = np.frombuffer(_bytes(raw), dtype=np.float32).reshape(task.shape)
        return torch.from_numpy(array.copy())


def _bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()
