"""The Redis Stream protocol between the gateway and the workers: keys, the stream, tasks."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Literal

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError

from service.core.noise import Chunk, Phase

__all__ = [
    "DEAD_LETTERS",
    "DEAD_LETTER_MARK",
    "GROUP",
    "HEARTBEATS",
    "MODELS_DIFFER_MARK",
    "OUTAGES",
    "STREAM",
    "ChunkTask",
    "DeadLettered",
    "Entry",
    "ModelsDiffer",
    "NoWorkers",
    "StreamError",
    "as_bytes",
    "image_key",
]


Entry = tuple[bytes, dict[bytes, bytes]]

STREAM = "dsmooth:chunks"
GROUP = "workers"
HEARTBEATS = "dsmooth:workers"  # sorted set: worker name -> time of its last heartbeat
DEAD_LETTERS = "dsmooth:chunks:dead"  # tasks no worker could finish, with the reason
DEAD_LETTER_MARK = "dead-letter: "  # starts the ``<result key>:error`` of a dead-lettered task
MODELS_DIFFER_MARK = "models differ: "  # ... of a task refused for the models it names

# Redis unreachable (down, restarting, loading its data) or failing over (a replica, read-only
# until promoted): wait and reconnect, never give up.
OUTAGES: tuple[type[Exception], ...] = (RedisConnectionError, RedisTimeoutError, ReadOnlyError)


class StreamError(RuntimeError):
    """A task failed in a worker, or no worker answered in time."""


class ModelsDiffer(StreamError):
    """A worker runs other models (a checkpoint version, a precision) than the gateway's
    certificate would name, so it refused the chunk."""


class NoWorkers(StreamError):
    """No ``dsmooth worker`` sent a heartbeat recently: a chunk would wait for nobody."""


class DeadLettered(StreamError):
    """The chunk's task crashed every worker it was handed to (or could not be decoded): it is
    in the dead-letter stream, and the same chunk is refused until its error expires."""


@dataclass(frozen=True, kw_only=True)
class ChunkTask:
    """One chunk for a worker: what to compute and where to put the result."""

    op: Literal["count", "copies"]  # label counts (local classifier) or PNGs (remote one)
    chunk: Chunk
    shape: tuple[int, ...]  # of the image stored under image_key(chunk.digest)
    denoiser: str  # catalog names
    classifier: str = ""  # none for copies
    rng: str  # noise generator family: "torch-cpu" or "torch-cuda"
    result_key: str
    min_side: int = 1  # copies: upscaled to at least this side for the vendor
    # The models (versions, precision) the gateway's certificate names: a worker whose own
    # differ refuses the task rather than vote for a classifier the certificate does not name.
    models: str = ""
    request_id: str | None = None  # the X-Request-ID it serves (worker logs and spans)
    trace: dict[str, str] = field(default_factory=dict)  # W3C traceparent of the request's span

    def encode(self) -> dict[str, str]:
        return {"task": json.dumps(asdict(self))}

    @classmethod
    def decode(cls, fields: dict[bytes, bytes]) -> ChunkTask:
        data = json.loads(fields[b"task"])
        chunk, shape = data.pop("chunk"), tuple(data.pop("shape"))
        chunk["phase"] = Phase(chunk["phase"])
        return cls(**data, chunk=Chunk(**chunk), shape=shape)


def image_key(digest: str) -> str:
    return f"dsmooth:image:{{{digest}}}"


def as_bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()
