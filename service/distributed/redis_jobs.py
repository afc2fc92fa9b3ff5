"""Job records in Redis, so that any gateway replica answers for any job and a job outlives the
gateway that accepted it.

- ``dsmooth:job:{id}`` — a hash: the job's view (state, progress, result, error as JSON), its
  owner, and what is needed to run it again (its options; the image under ``...:image``).
- ``dsmooth:job:{id}:events`` — a stream of the job's views, one per change: SSE on any replica
  reads it (``XREAD BLOCK``), so no replica needs to be the one running the job.
- ``dsmooth:jobs:leases`` — a sorted set: unfinished jobs by the time their runner's lease ends.
  The runner renews it while it runs; a job whose lease has run out (its gateway died) is
  claimed by one other replica (an atomic script) and run again from its request: chunks whose
  votes were stored are not sampled again, so it continues where it stopped.

Unfinished jobs carry no TTL (never evicted); finished ones expire after the job TTL. Plain
Redis calls rather than a job library: see README ("Jobs across replicas") for why.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from redis.asyncio import Redis

__all__ = ["RedisJobRecords"]

LEASES = "dsmooth:jobs:leases"
_EVENTS_KEPT = 200

# Claim every job whose lease ended before ARGV[1] (now, ms) for ARGV[2] ms more; at most ARGV[3].
_CLAIM = """
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
for _, id in ipairs(expired) do
  redis.call('ZADD', KEYS[1], ARGV[1] + ARGV[2], id)
end
return expired
"""


def _key(job_id: str, part: str = "") -> str:
    return f"dsmooth:job:{{{job_id}}}{part}"  # one hash slot per job


def _now_ms() -> int:
    return int(time.time() * 1000)


class RedisJobRecords:
    def __init__(self, redis: Redis, lease_s: float = 15.0) -> None:
        # redis-py's response types are unions of bytes/str/Any: answers are decoded here.
        self.redis: Any = redis
        self.lease_ms = int(lease_s * 1000)
        self._claim: Any = redis.register_script(_CLAIM)

    async def create(self, job_id: str, fields: Mapping[str, str], image: bytes, view: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            # The view is in the record from the start: another replica may read it at once.
            pipe.hset(_key(job_id), mapping={**fields, "view": view})
            pipe.set(_key(job_id, ":image"), image)
            pipe.zadd(LEASES, {job_id: _now_ms() + self.lease_ms})
            pipe.xadd(_key(job_id, ":events"), {"view": view}, maxlen=_EVENTS_KEPT)
            await pipe.execute()

    async def update(self, job_id: str, view: str) -> None:
        """Record the job's view (an event when it changed) and renew the runner's lease."""
        if await self.redis.hget(_key(job_id), "view") == view.encode():
            await self.redis.zadd(LEASES, {job_id: _now_ms() + self.lease_ms}, xx=True)
            return
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(_key(job_id), "view", view)
            pipe.xadd(_key(job_id, ":events"), {"view": view}, maxlen=_EVENTS_KEPT)
            pipe.zadd(LEASES, {job_id: _now_ms() + self.lease_ms}, xx=True)
            await pipe.execute()

    async def finish(self, job_id: str, view: str, ttl_s: int) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(_key(job_id), mapping={"view": view})
            pipe.xadd(_key(job_id, ":events"), {"view": view}, maxlen=_EVENTS_KEPT)
            pipe.zrem(LEASES, job_id)
            pipe.delete(_key(job_id, ":image"))
            pipe.expire(_key(job_id), ttl_s)
            pipe.expire(_key(job_id, ":events"), ttl_s)
            await pipe.execute()

    async def get(self, job_id: str) -> dict[str, str] | None:
        record = await self.redis.hgetall(_key(job_id))
        if not record:
            return None
        return {k.decode(): v.decode() for k, v in record.items()}

    async def image(self, job_id: str) -> bytes | None:
        data = await self.redis.get(_key(job_id, ":image"))
        return None if data is None else bytes(data)

    async def release(self, job_id: str) -> None:
        """End the runner's lease now (it is shutting down): the next takeover claims it."""
        await self.redis.zadd(LEASES, {job_id: 0}, xx=True)

    async def request_cancel(self, job_id: str) -> None:
        await self.redis.hset(_key(job_id), "cancel", "1")

    async def cancel_requested(self, job_id: str) -> bool:
        return bool(await self.redis.hget(_key(job_id), "cancel"))

    async def claim_expired(self, most: int = 4) -> list[str]:
        """Jobs whose runner stopped renewing its lease, now leased to the caller."""
        claimed = await self._claim(keys=[LEASES], args=[_now_ms(), self.lease_ms, most])
        return [c.decode() if isinstance(c, bytes) else str(c) for c in claimed]

    async def events(self, job_id: str, block_ms: int = 15_000) -> AsyncIterator[str]:
        """The job's views from the first, then each new one as it is recorded (forever: the
        caller stops at the finished one). Nothing new for ``block_ms``: the last view again."""
        last, view = "0", None
        while True:
            answer = await self.redis.xread({_key(job_id, ":events"): last}, block=block_ms)
            if not answer:
                if view is not None:
                    yield view
                continue
            for entry_id, fields in answer[0][1]:
                last = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                view = fields[b"view"].decode()
                yield view
