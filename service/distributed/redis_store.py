"""The vote store in Redis, shared by gateway replicas and workers."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from service.core.votes import ChunkCounts

__all__ = ["RedisVoteStore", "connect_redis"]


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
