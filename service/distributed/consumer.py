"""One ``dsmooth worker`` process: takes chunk tasks from the stream, runs them, stores results.

What it survives:

- Redis outages (down, restarting, loading): every step is retried with jittered exponential
  backoff until Redis answers again; a worker never exits on a connection error. Tasks in hand
  when Redis went away are taken up again; a Redis that lost its data gets the group back.
- a worker that died holding tasks: they are reclaimed once idle for ``reclaim_idle_ms``. A
  live worker refreshes the tasks it holds at every heartbeat, so a slow task is not reclaimed.
- poison tasks: one handed out ``max_deliveries`` times and never finished (it crashed every
  worker that took it), or one that cannot be decoded, goes to the dead-letter stream
  ``DEAD_LETTERS`` with the reason; its ``:error`` key tells the waiting gateway why.

Acknowledged entries are trimmed from the stream after every batch (``XTRIM MINID``: Redis 7
has no ``XACKDEL``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Any

import numpy as np
import torch
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_random_exponential

from service.adapters.prepare import encode_copies
from service.core.votes import ChunkCounts
from service.distributed.protocol import (
    DEAD_LETTER_MARK,
    DEAD_LETTERS,
    GROUP,
    HEARTBEATS,
    MODELS_DIFFER_MARK,
    OUTAGES,
    STREAM,
    ChunkTask,
    Entry,
    ModelsDiffer,
    StreamError,
    as_bytes,
    image_key,
)
from service.execution.pool import ModelPool
from service.observability import span, with_trace_parent

__all__ = ["StreamConsumer"]

log = logging.getLogger("dsmooth.worker")

DEAD_LETTERS_KEPT = 10_000  # about: older dead letters are trimmed
ERROR_TTL_S = 600
DEAD_ERROR_TTL_S = 3600  # a dead-lettered chunk is refused this long (workers are spared)
GONE_AFTER_S = 24 * 3600  # a heartbeat this old is a worker that will not come back


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
        max_deliveries: int = 3,
        max_backoff_s: float = 2.0,
    ) -> None:
        self.redis, self.pool = redis, pool
        self.name = name or f"worker-{uuid.uuid4().hex[:8]}"
        self.batch, self.reclaim_idle_ms = batch, reclaim_idle_ms
        self.result_ttl_s, self.copies_ttl_s = result_ttl_s, copies_ttl_s
        self.max_deliveries, self.max_backoff_s = max_deliveries, max_backoff_s
        # Heartbeats (which also refresh the held tasks) well within the reclaim time.
        self.beat_s = min(0.5, reclaim_idle_ms / 3000)
        self.held: dict[bytes, dict[bytes, bytes]] = {}  # taken, not yet acknowledged
        self.done = 0
        self.dead = 0  # tasks this worker moved to the dead-letter stream

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
        beats = asyncio.create_task(self._heartbeats())
        try:
            await self._outlasting(stop, self.ensure_group)
            log.info("worker %s consuming %s/%s", self.name, STREAM, GROUP)
            while not stop.is_set():
                await self._outlasting(stop, self._step)
        finally:
            beats.cancel()
            with suppress(asyncio.CancelledError):
                await beats
            with suppress(*OUTAGES):  # gone at once for the gateways, not after the timeout
                await self.redis.zrem(HEARTBEATS, self.name)

    async def _outlasting(self, stop: asyncio.Event, step: Callable[[], Awaitable[None]]) -> None:
        """``step()``, retried through Redis outages with jittered exponential backoff until it
        succeeds or ``stop`` is set (then it returns quietly)."""
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(OUTAGES),
            wait=wait_random_exponential(multiplier=0.1, max=self.max_backoff_s),
            stop=lambda _: stop.is_set(),
            sleep=lambda seconds: _pause(stop, seconds),
            before_sleep=self._outage,
            retry_error_callback=lambda _: None,
        )
        async for attempt in retrying:
            with attempt:
                await step()

    def _outage(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        pause = state.next_action.sleep if state.next_action else 0.0
        log.warning(
            "worker %s: Redis unreachable (%s, attempt %d); retrying in %.1f s",
            self.name, error, state.attempt_number, pause,
        )  # fmt: skip

    async def _step(self) -> None:
        try:
            entries = await self._resumed() or await self._reclaimed() or await self._new(500)
            if entries:
                await self.process(entries)
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self.held.clear()  # Redis restarted without its data: nothing of ours is pending
            await self.ensure_group()

    async def _heartbeats(self) -> None:
        """Until cancelled: tell the gateways this worker is alive, and reset the idle time of
        the tasks it holds (``XCLAIM JUSTID`` counts no delivery) so that a slow task is not
        taken for an orphan."""
        while True:
            now = time.time()
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    pipe.zadd(HEARTBEATS, {self.name: now})
                    pipe.zremrangebyscore(HEARTBEATS, "-inf", now - GONE_AFTER_S)
                    if self.held:
                        pipe.xclaim(STREAM, GROUP, self.name, 0, list(self.held), justid=True)
                    await pipe.execute()
            except RedisError as exc:  # the main loop reconnects (and recreates the group)
                log.debug("heartbeat failed: %s", exc)
            await asyncio.sleep(self.beat_s)

    async def _new(self, block_ms: int) -> list[Entry]:
        answer: Any = await self.redis.xreadgroup(
            GROUP, self.name, {STREAM: ">"}, count=self.batch, block=block_ms
        )
        return [entry for _, entries in answer for entry in entries] if answer else []

    async def _resumed(self) -> list[Entry]:
        """Tasks in hand when Redis went away, if they are still pending (Redis kept its data)."""
        if not self.held:
            return []
        ids: Any = await self.redis.xclaim(
            STREAM, GROUP, self.name, 0, list(self.held), justid=True
        )
        pending = {as_bytes(entry_id) for entry_id in ids}
        entries = [(i, fields) for i, fields in self.held.items() if i in pending]
        self.held.clear()
        return entries

    async def _reclaimed(self) -> list[Entry]:
        """Tasks another worker took but did not acknowledge in time (it died): ours now, unless
        they were handed out ``max_deliveries`` times already (then they are dead letters)."""
        idle: Any = await self.redis.xpending_range(
            STREAM, GROUP, "-", "+", self.batch, idle=self.reclaim_idle_ms
        )
        retry = []
        for info in idle:
            if info["times_delivered"] >= self.max_deliveries:
                await self._bury(info["message_id"], info["times_delivered"], info["consumer"])
            else:
                retry.append(info["message_id"])
        if not retry:
            return []
        answer: Any = await self.redis.xclaim(
            STREAM, GROUP, self.name, self.reclaim_idle_ms, retry
        )  # only those still idle: two workers never both take one
        return [(entry_id, fields) for entry_id, fields in answer if entry_id and fields]

    async def _bury(self, entry_id: bytes, deliveries: int, last: bytes | str) -> None:
        """A task that crashed every worker it was handed to: to the dead-letter stream."""
        # Claimed first (JUSTID counts no delivery), so that one worker alone buries it.
        claimed: Any = await self.redis.xclaim(
            STREAM, GROUP, self.name, self.reclaim_idle_ms, [entry_id], justid=True
        )
        if not claimed:
            return
        found: Any = await self.redis.xrange(STREAM, entry_id, entry_id)
        reason = (
            f"the chunk was handed to stream workers {deliveries} times and none of them "
            "finished it (it crashes them), so it was moved to the dead-letter stream and is "
            "not retried"
        )
        fields = found[0][1] if found else {}
        await self._dead_letter(entry_id, fields, reason, {b"last_worker": as_bytes(last)})

    async def _dead_letter(
        self,
        entry_id: bytes,
        fields: dict[bytes, bytes],
        reason: str,
        extra: dict[bytes, bytes] | None = None,
    ) -> None:
        """Move one task to the dead-letter stream, tell its gateway why, acknowledge it."""
        letter = {
            **fields, **(extra or {}), b"id": entry_id, b"reason": reason.encode(),
            b"worker": self.name.encode(), b"time": b"%.3f" % time.time(),
        }  # fmt: skip
        result_key = _result_key(fields)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xadd(DEAD_LETTERS, letter, maxlen=DEAD_LETTERS_KEPT)  # type: ignore[arg-type]
            if result_key:  # the same chunk is refused at once while this is kept
                pipe.set(result_key + ":error", DEAD_LETTER_MARK + reason, ex=DEAD_ERROR_TTL_S)
            pipe.xack(STREAM, GROUP, entry_id)
            await pipe.execute()
        self.held.pop(entry_id, None)
        self.dead += 1
        log.error(
            "worker %s: chunk task %s moved to %s: %s",
            self.name, entry_id.decode(), DEAD_LETTERS, reason,
        )  # fmt: skip

    async def process(self, entries: list[Entry]) -> None:
        """Run tasks, sharing forward passes between those of one model pair and image shape."""
        self.held.update(entries)
        groups: dict[tuple[object, ...], list[tuple[bytes, ChunkTask]]] = defaultdict(list)
        for entry_id, fields in entries:
            try:
                task = ChunkTask.decode(fields)
            except Exception as exc:  # garbage, or a gateway of another version: never runnable
                reason = (
                    f"the chunk task cannot be decoded ({type(exc).__name__}: a gateway and "
                    "workers of different versions?), so it was moved to the dead-letter stream"
                )
                await self._dead_letter(entry_id, fields, reason)
                continue
            key = (task.op, task.classifier, task.denoiser, task.rng, task.shape, task.models)
            groups[key].append((entry_id, task))
        for group in groups.values():
            tasks = [task for _, task in group]
            first = tasks[0]
            try:
                # In the trace (and under the request id) of the request that sent the chunk.
                with with_trace_parent(first.trace, first.request_id), span(
                    "chunk.worker", **{"dsmooth.worker": self.name, "dsmooth.tasks": len(tasks),
                                       "dsmooth.op": first.op},
                ):  # fmt: skip
                    await self._run(tasks)
            except OUTAGES:
                raise  # not the tasks' fault: still held, taken up again once Redis is back
            except Exception as exc:
                log.exception("chunk tasks failed")
                mark = MODELS_DIFFER_MARK if isinstance(exc, ModelsDiffer) else ""
                async with self.redis.pipeline(transaction=False) as pipe:
                    for task in tasks:
                        pipe.set(task.result_key + ":error", f"{mark}{exc}", ex=ERROR_TTL_S)
                    await pipe.execute()
            # Acknowledged only now: a worker killed before this line leaves them pending.
            ids = [entry_id for entry_id, _ in group]
            await self.redis.xack(STREAM, GROUP, *ids)
            for entry_id in ids:
                self.held.pop(entry_id, None)
            self.done += len(group)
        await self._trim()

    async def _trim(self) -> None:
        """Drop the acknowledged entries: all before the oldest one pending or undelivered."""
        try:
            async with self.redis.pipeline(transaction=True) as pipe:  # one consistent snapshot
                pipe.xinfo_groups(STREAM)
                pipe.xpending(STREAM, GROUP)
                groups, pending = await pipe.execute()
        except ResponseError as exc:  # the stream or group is gone (Redis lost its data)
            log.debug("not trimmed: %s", exc)
            return
        if [group["name"] for group in groups] != [GROUP.encode()]:
            return  # another group reads the stream too: its progress is not known here
        if pending["pending"]:
            keep_from = as_bytes(pending["min"])
        else:  # everything delivered was acknowledged: keep what comes after
            millis, seq = as_bytes(groups[0]["last-delivered-id"]).split(b"-")
            keep_from = b"%d-%d" % (int(millis), int(seq) + 1)
        await self.redis.xtrim(STREAM, minid=keep_from, approximate=False)

    async def _run(self, tasks: list[ChunkTask]) -> None:
        first = tasks[0]
        if first.rng == "torch-cuda" and not torch.cuda.is_available():
            raise StreamError("the task's noise stream needs CUDA; this worker has none")
        images = [await self._image(task) for task in tasks]
        if first.op == "count":
            sampler = self.pool.local_sampler(first.classifier, first.denoiser)
            _same_models(first, sampler.models)
            work = [(image, t.chunk) for image, t in zip(images, tasks, strict=True)]
            counts = await sampler.on_model_thread(sampler.count_chunks, work, first.rng)
            for task, row in zip(tasks, counts, strict=True):
                votes = ChunkCounts({str(i): int(c) for i, c in enumerate(row) if c})
                await self.redis.set(
                    task.result_key, votes.to_json(), nx=True, ex=self.result_ttl_s
                )
            return
        denoiser = self.pool.local_denoiser(first.denoiser)
        _same_models(first, denoiser.models)
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


def _result_key(fields: dict[bytes, bytes]) -> str | None:
    """Where a (possibly undecodable) task wanted its result, if that much can be read."""
    try:
        key = json.loads(fields[b"task"])["result_key"]
    except (KeyError, TypeError, ValueError):
        return None
    return key if isinstance(key, str) and key else None


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds``, or less if ``stop`` is set meanwhile."""
    with suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


def _same_models(task: ChunkTask, mine: str) -> None:
    """Refuse a task whose certificate would name other models than this worker runs (another
    checkpoint version during a rollout, another precision): its votes would certify a
    classifier the certificate does not name."""
    if task.models and task.models != mine:
        raise ModelsDiffer(
            f"the gateway certifies {task.models} but a worker runs {mine}: gateways and "
            "workers need the same checkpoints and DSMOOTH_PRECISION"
        )
