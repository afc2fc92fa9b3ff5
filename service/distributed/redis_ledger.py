"""The certificate ledger in Redis: one atomic script numbers a key's streams and counts its
certificates, so gateway replicas share one guarantee per image. Ledger keys carry no TTL and
must not be evicted (see service/core/ledger.py)."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from service.core.ledger import LedgerEntry

__all__ = ["RedisLedger"]

_ADMIT = """
local position = redis.call('HGET', KEYS[1], ARGV[1])
if not position then
  position = redis.call('HINCRBY', KEYS[1], '#streams', 1)
  redis.call('HSET', KEYS[1], ARGV[1], position)
end
local issued = redis.call('HINCRBY', KEYS[1], '#issued', 1) - 1
return {tonumber(position), issued}
"""


class RedisLedger:
    def __init__(self, redis: Redis) -> None:
        self._admit: Any = redis.register_script(_ADMIT)

    async def admit(self, key: str, stream: str) -> LedgerEntry:
        position, issued = await self._admit(keys=[key], args=[stream])
        return LedgerEntry(int(position), int(issued))
