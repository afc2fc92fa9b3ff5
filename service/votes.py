"""The vote store: memoised chunk counts, so a repeated or extended request costs no new queries.

A chunk's noise is a deterministic function of its seed (see :mod:`service.sampling`), so its
counts can be stored and reused: a cached answer equals what a fresh run with the same seed gives
(statistical rule 5). Keys carry the image digest in a hash tag, so one request's keys share a
Redis Cluster slot.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Protocol

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from service.sampling import Chunk

__all__ = [
    "ChunkCounts",
    "InMemoryVoteStore",
    "RedisVoteStore",
    "VoteStore",
    "chunk_key",
    "connect_redis",
]


@dataclass(frozen=True, slots=True)
class ChunkCounts:
    """Votes of one chunk: label key -> count, plus copies whose query failed (votes against)."""

    counts: dict[str, int] = field(default_factory=dict)
    failed: int = 0
    model_version: str | None = None  # what the classifier reported, where it reports one
    names: dict[str, str] = field(default_factory=dict)  # label key -> display name, if not the key

    @property
    def total(self) -> int:
        return sum(self.counts.values()) + self.failed

    def to_json(self) -> str:
        return json.dumps(
            {
                "counts": self.counts,
                "failed": self.failed,
                "model_version": self.model_version,
                "names": self.names,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, raw: str | bytes) -> ChunkCounts:
        data = json.loads(raw)
        counts = {str(k): int(v) for k, v in data["counts"].items()}
        return cls(counts, int(data["failed"]), data.get("model_version"), data.get("names", {}))


def chunk_key(digest: str, chunk: Chunk, model_version: str | None = None) -> str:
    """Store key of a chunk. The seed already encodes secret, image, models, sigma, phase and
    index; ``model_version`` adds the version a vendor reports only at query time (rule 7)."""
    suffix = f":{model_version}" if model_version else ""
    return f"dsmooth:votes:{{{digest}}}:{chunk.seed:016x}:{chunk.size}{suffix}"


class VoteStore(Protocol):
    async def get(self, key: str) -> ChunkCounts | None: ...

    async def put(self, key: str, votes: ChunkCounts) -> bool:
        """Store ``votes`` under ``key`` unless already there; True when this call stored it."""
        ...

    async def ping(self) -> bool: ...


class InMemoryVoteStore:
    """A bounded LRU vote store with a TTL, for the single-process deployment."""

    def __init__(self, max_chunks: int = 100_000, ttl_seconds: float = 7 * 24 * 3600) -> None:
        self.max_chunks, self.ttl = max_chunks, ttl_seconds
        self._items: OrderedDict[str, tuple[float, ChunkCounts]] = OrderedDict()

    async def get(self, key: str) -> ChunkCounts | None:
        item = self._items.get(key)
        if item is None:
            return None
        stored_at, votes = item
        if time.monotonic() - stored_at > self.ttl:
            del self._items[key]
            return None
        self._items.move_to_end(key)
        return votes

    async def put(self, key: str, votes: ChunkCounts) -> bool:
        if await self.get(key) is not None:
            return False
        self._items[key] = (time.monotonic(), votes)
        while len(self._items) > self.max_chunks:
            self._items.popitem(last=False)
        return True

    async def ping(self) -> bool:
        return True


class RedisVoteStore:
    """Votes in Redis: ``SET NX`` makes storing a chunk atomic and idempotent (the first answer
    wins; a repeat of the same deterministic chunk could only store the same counts)."""

    def __init__(self, redis: Redis, ttl_seconds: int = 7 * 24 * 3600) -> None:
        self.redis, self.ttl = redis, ttl_seconds

    async def get(self, key: str) -> ChunkCounts | None:
        raw = await self.redis.get(key)
        return None if raw is None else ChunkCounts.from_json(raw)

    async def put(self, key: str, votes: ChunkCounts) -> bool:
        return bool(await self.redis.set(key, votes.to_json(), nx=True, ex=self.ttl))

    async def ping(self) -> bool:
        return bool(await self.redis.ping())


def connect_redis(url: str) -> Redis:
    """An asyncio Redis client that rides out short outages (a restart, a failover)."""
    return Redis.from_url(
        url,
        socket_timeout=5,
        socket_connect_timeout=2,
        health_check_interval=10,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=3),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )
