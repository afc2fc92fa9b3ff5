"""The vote store: memoised chunk counts, so a repeated or extended request costs no new queries.

A chunk's noise is a deterministic function of its seed (see :mod:`service.core.noise`), so its
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

from service.core.noise import Chunk

__all__ = [
    "ChunkCounts",
    "InMemoryVoteStore",
    "VoteStore",
    "chunk_key",
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


def chunk_key(chunk: Chunk, model_version: str | None = None) -> str:
    """Store key of a chunk. The seed already encodes secret, image, models, sigma, phase and
    index; ``model_version`` adds the version a vendor reports only at query time (rule 7)."""
    suffix = f":{model_version}" if model_version else ""
    return f"dsmooth:votes:{{{chunk.digest}}}:{chunk.seed:016x}:{chunk.size}{suffix}"


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
