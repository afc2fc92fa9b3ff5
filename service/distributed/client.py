"""Chunks through a Redis Stream: the gateway enqueues, ``dsmooth worker`` processes execute.

Protocol (all keys of one image share the ``{digest}`` hash tag, hence one Redis Cluster slot):

- ``dsmooth:image:{digest}`` — the certified pixels (float32, C-order), with a TTL;
- stream ``dsmooth:chunks``, consumer group ``workers`` — one entry per chunk task;
- a ``count`` task's result is the chunk's votes in the vote store (``SET NX``);
  a ``copies`` task's result is the list ``...:copies`` of PNG-encoded denoised copies (for
  remote classifiers, queried by the gateway);
- ``<result key>:error`` — why a task could not be done.

Workers ``XACK`` only after the result is stored; a dead worker's tasks are reclaimed by the
others with ``XCLAIM`` once idle for ``reclaim_idle_ms`` (a live worker keeps its tasks fresh).
Results are deterministic functions of the seed, so a task done twice stores the same answer. A
task handed out ``max_deliveries`` times and never finished crashed its workers: it goes to the
dead-letter stream ``dsmooth:chunks:dead`` and its ``:error`` key says so. Acknowledged entries
are trimmed from the stream (``XTRIM MINID``).

Workers send a heartbeat (sorted set ``dsmooth:workers``) at least every 0.5 s, busy or not. The
gateway refuses to enqueue, and stops waiting, when none was heard for ``heartbeat_timeout_s``
(:class:`NoWorkers`, a 503); where workers scale from zero, it enqueues anyway and gives them
``cold_start_s`` to appear. Both sides ride out Redis outages: workers reconnect with backoff and
never exit; the gateway retries its polls for ``heartbeat_timeout_s``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

import torch
from redis.asyncio import Redis
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_delay,
    wait_random_exponential,
)

from service.core.noise import Chunk
from service.core.votes import ChunkCounts, chunk_key
from service.distributed.protocol import (
    DEAD_LETTER_MARK,
    HEARTBEATS,
    MODELS_DIFFER_MARK,
    OUTAGES,
    STREAM,
    ChunkTask,
    DeadLettered,
    ModelsDiffer,
    NoWorkers,
    StreamError,
    as_bytes,
    image_key,
)
from service.observability import current_request_id, trace_carrier

__all__ = [
    "StreamClient",
    "StreamCopies",
    "StreamSampler",
    "workers_alive",
]

if TYPE_CHECKING:
    from service.execution.local import LocalSampler

log = logging.getLogger("dsmooth.stream")

T = TypeVar("T")


class StreamClient:
    """The gateway's side: store the image once, enqueue chunk tasks, wait for their results."""

    def __init__(
        self,
        redis: Redis,
        timeout_s: float = 600.0,
        image_ttl_s: int = 3600,
        heartbeat_timeout_s: float = 10.0,
        cold_start_s: float = 0.0,
    ) -> None:
        self.redis, self.timeout_s, self.image_ttl_s = redis, timeout_s, image_ttl_s
        self.heartbeat_timeout_s = heartbeat_timeout_s
        # With no live worker: 0 refuses at once; more enqueues anyway (the waiting chunk is
        # what wakes an autoscaler, KEDA, from zero) and waits this long for a worker.
        self.cold_start_s = cold_start_s

    async def count(
        self,
        image: torch.Tensor,
        chunk: Chunk,
        classifier: str,
        denoiser: str,
        rng: str,
        models: str = "",
    ) -> ChunkCounts:
        """The chunk's votes, counted by a worker and stored by it in the vote store."""
        key = chunk_key(chunk)
        task = ChunkTask(
            op="count", chunk=chunk, shape=tuple(image.shape), denoiser=denoiser,
            classifier=classifier, rng=rng, result_key=key, models=models,
            request_id=current_request_id(), trace=trace_carrier(),
        )  # fmt: skip
        await self._submit(image, task)
        return ChunkCounts.from_json(await self._wait(key, key + ":error", chunk.digest))

    async def copies(
        self,
        image: torch.Tensor,
        chunk: Chunk,
        denoiser: str,
        rng: str,
        min_side: int,
        models: str = "",
    ) -> list[bytes]:
        """The chunk's denoised copies as PNGs, made by a worker."""
        key = (
            f"dsmooth:copies:{{{chunk.digest}}}:{chunk.seed:016x}:{chunk.size}:{min_side}:"
            f"{denoiser}"
        )
        task = ChunkTask(
            op="copies", chunk=chunk, shape=tuple(image.shape), denoiser=denoiser, rng=rng,
            result_key=key, min_side=min_side, models=models,
            request_id=current_request_id(), trace=trace_carrier(),
        )  # fmt: skip
        await self._submit(image, task)
        await self._wait(key + ":ready", key + ":error", chunk.digest)
        return [as_bytes(item) for item in await self.redis.lrange(key, 0, -1)]

    async def _submit(self, image: torch.Tensor, task: ChunkTask) -> None:
        if not self.cold_start_s and not await self._any_worker():
            raise NoWorkers(
                f"no stream worker sent a heartbeat in the last {self.heartbeat_timeout_s:g} s "
                "(start `dsmooth worker` processes); nothing was enqueued"
            )
        error_key = task.result_key + ":error"
        _raise_dead_letter(await self.redis.get(error_key))  # never fed to workers again
        key = image_key(task.chunk.digest)
        # The pixels go over the wire only when Redis lacks them: a look every 8 samples is a
        # chunk each, and re-sending a 12 MB photo for every one was gigabytes per request.
        if not await self.redis.expire(key, self.image_ttl_s):
            await self._upload(key, image)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.expire(key, self.image_ttl_s)
            pipe.delete(error_key)  # an earlier attempt's error (image expired...) is not ours
            pipe.xadd(STREAM, task.encode())  # type: ignore[arg-type]
            still_there, *_ = await pipe.execute()
        if not still_there:  # lost since (a Redis restart): at once, before a worker looks
            await self._upload(key, image)

    async def _upload(self, key: str, image: torch.Tensor) -> None:
        pixels = image.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()
        await self.redis.set(key, pixels, nx=True, ex=self.image_ttl_s)

    async def _wait(self, key: str, error_key: str, digest: str) -> bytes:
        """Poll for the result (or the error) until the timeout, or until no worker is alive."""
        start = time.monotonic()
        deadline, pause, checked = start + self.timeout_s, 0.005, start
        while time.monotonic() < deadline:
            found, error, image = await self._poll(key, error_key, image_key(digest))
            if found is not None:
                return as_bytes(found)
            if error is not None:
                _raise_dead_letter(error)
                text = as_bytes(error).decode(errors="replace")
                if text.startswith(MODELS_DIFFER_MARK):  # this attempt's: another may not be
                    raise ModelsDiffer(text.removeprefix(MODELS_DIFFER_MARK))
                raise StreamError(f"a worker failed the chunk: {text}")
            if image is None:  # Redis lost its data (a restart without persistence)
                raise StreamError("the chunk's task was lost by Redis (restarted?); retry")
            if time.monotonic() - checked >= 1.0:
                checked = time.monotonic()
                waited = checked - start
                if waited >= self.cold_start_s and not await self._any_worker():
                    raise NoWorkers(
                        f"no stream worker sent a heartbeat for {self.heartbeat_timeout_s:g} s "
                        f"while the chunk waited {waited:.0f} s (they went silent, or none "
                        "started); start `dsmooth worker` processes and retry"
                    )
            await asyncio.sleep(pause)
            pause = min(pause * 1.5, 0.1)
        raise StreamError(f"no worker finished the chunk within {self.timeout_s:.0f} s")

    async def _poll(self, *keys: str) -> list[Any]:
        return list(await self._outlasting(lambda: self.redis.mget(*keys)))

    async def _any_worker(self) -> bool:
        return bool(
            await self._outlasting(lambda: workers_alive(self.redis, self.heartbeat_timeout_s))
        )

    async def _outlasting(self, call: Callable[[], Awaitable[T]]) -> T:
        """``call()``, retried through a Redis outage as long as a worker would wait for Redis
        (``heartbeat_timeout_s``), with jittered exponential backoff; then its error is raised."""
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(OUTAGES),
            wait=wait_random_exponential(multiplier=0.05, max=1.0),
            stop=stop_after_delay(self.heartbeat_timeout_s),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await call()
        raise AssertionError("unreachable: tenacity re-raises the last error")


def _raise_dead_letter(error: bytes | str | None) -> None:
    text = as_bytes(error).decode(errors="replace") if error is not None else ""
    if text.startswith(DEAD_LETTER_MARK):
        raise DeadLettered(text.removeprefix(DEAD_LETTER_MARK))


async def workers_alive(redis: Redis, within_s: float = 5.0) -> list[str]:
    """The workers that sent a heartbeat recently (they do every loop, at least every 0.5 s)."""
    names: Any = await redis.zrangebyscore(HEARTBEATS, time.time() - within_s, "+inf")
    return [as_bytes(name).decode() for name in names]


class StreamSampler:
    """A local classifier pair whose chunks run in stream workers (the gateway keeps the models
    for their names, versions and the clean-image query)."""

    price_per_query = 0.0
    stores_votes = True  # the worker puts the votes in the vote store itself
    label_map: Mapping[str, str] = MappingProxyType({})  # local classes need no map
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
            image, chunk, self.classifier_ref.name, self.denoiser_ref.name, self.rng,
            self.worker.models,
        )  # fmt: skip

    async def clean_votes(self, image: torch.Tensor) -> ChunkCounts:
        return await self.worker.clean_votes(image)


class StreamCopies:
    """Denoised copies for a remote classifier, made by stream workers."""

    def __init__(self, stream: StreamClient, denoiser: str, rng: str, models: str = "") -> None:
        self.stream, self.denoiser, self.rng, self.models = stream, denoiser, rng, models

    async def encoded_copies(self, image: torch.Tensor, chunk: Chunk, min_side: int) -> list[bytes]:
        return await self.stream.copies(
            image, chunk, self.denoiser, self.rng, min_side, self.models
        )
