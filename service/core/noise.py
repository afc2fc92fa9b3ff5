"""Noise streams: the chunk plan of a certification and each chunk's secret, reproducible noise.

A certification draws its samples in two disjoint phases, selection (n0) and estimation (n), each
cut into chunks of a fixed size. Chunk k of a phase always holds the same noise, whatever n is,
whichever process runs it and in whatever order, because its seed is

    HMAC-SHA256(server secret, image digest | parameters | phase | k)

and its noise is drawn in one call from a fresh ``torch.Generator`` seeded with it. The secret
keeps the noise unpredictable to an attacker (statistical rule 6); the phase in the message makes
selection and estimation noise independent (rule 2), and PREDICT's of both: a prediction shows
its counts without spending a ledger position, so they must not be a certificate's. The noise is
always drawn in float32: drawing it in a lower precision would make it non-Gaussian and void the
guarantee.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

import torch

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "Chunk",
    "Phase",
    "chunk_seed",
    "clean_chunk",
    "draw_noise",
    "image_digest",
    "plan_phase",
]

DEFAULT_CHUNK_SIZE = 1000
_SEED_MASK = (1 << 63) - 1


class Phase(StrEnum):
    SELECTION = "selection"
    ESTIMATION = "estimation"
    CLEAN = "clean"  # the one query on the clean image (no noise): a candidate
    # PREDICT's own noise: it takes no ledger position, so its counts must say nothing about a
    # certificate's (seeing them first, a client could certify only the luckiest sigma or n).
    PREDICT = "predict"


@dataclass(frozen=True, slots=True, kw_only=True)
class Chunk:
    """One unit of sampling work: ``size`` copies of the image ``digest`` with noise of std
    ``sigma`` drawn from ``seed``."""

    phase: Phase
    index: int
    size: int
    seed: int
    sigma: float
    digest: str

    @property
    def id(self) -> str:
        """Stable name of the chunk within one certification plan (vote-store key part)."""
        return f"{self.phase.value}:{self.index}:{self.size}"


def image_digest(image: torch.Tensor) -> str:
    """SHA-256 of the image as certified: float32, [C, H, W], values in [0, 1]."""
    array = image.detach().to("cpu", torch.float32).contiguous().numpy()
    digest = hashlib.sha256(repr(tuple(array.shape)).encode())
    digest.update(array.tobytes())
    return digest.hexdigest()


def chunk_seed(
    secret: bytes, digest: str, params: Mapping[str, object], phase: Phase, index: int
) -> int:
    """The chunk's 63-bit seed: HMAC(secret, digest | params | phase | index)."""
    if not secret:
        raise ValueError("the server secret must not be empty")
    canonical = json.dumps(dict(params), sort_keys=True, separators=(",", ":"), default=str)
    message = "|".join((digest, canonical, phase.value, str(index))).encode()
    mac = hmac.new(secret, message, hashlib.sha256).digest()
    return int.from_bytes(mac[:8], "big") & _SEED_MASK


def plan_phase(
    secret: bytes,
    digest: str,
    sigma: float,
    params: Mapping[str, object],
    phase: Phase,
    total: int,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> list[Chunk]:
    """Cut ``total`` samples of one phase into chunks of ``chunk_size`` (the last may be short).

    ``params`` name the base classifier (models, versions, noise generator); ``sigma`` and
    ``chunk_size`` are added to them for the seeds, so plans with different chunk sizes never
    share a seed.
    """
    if total < 0 or chunk_size <= 0:
        raise ValueError(f"need total >= 0 and chunk_size > 0 (got {total}, {chunk_size})")
    seeded = {**params, "sigma": sigma, "chunk_size": chunk_size}
    return [
        Chunk(
            phase=phase,
            index=index,
            size=min(chunk_size, total - start),
            seed=chunk_seed(secret, digest, seeded, phase, index),
            sigma=sigma,
            digest=digest,
        )
        for index, start in enumerate(range(0, total, chunk_size))
    ]


def clean_chunk(secret: bytes, digest: str, params: Mapping[str, object]) -> Chunk:
    """The clean-image query as a chunk of one copy without noise: its seed names it in the vote
    store (per image and base classifier, whatever sigma)."""
    seed = chunk_seed(secret, digest, params, Phase.CLEAN, 0)
    return Chunk(phase=Phase.CLEAN, index=0, size=1, seed=seed, sigma=0.0, digest=digest)


def draw_noise(
    chunk: Chunk, shape: tuple[int, ...], device: torch.device | str = "cpu"
) -> torch.Tensor:
    """The chunk's Gaussian noise, [size, *shape] float32 on ``device``, std ``chunk.sigma``.

    Drawn in one call so that it never depends on how the chunk is later cut into batches. The
    stream depends on the device type (CPU and CUDA generators differ), which is why the device
    type is part of a chunk's cache key.
    """
    generator = torch.Generator(device=device)
    generator.manual_seed(chunk.seed)
    noise = torch.randn(
        (chunk.size, *shape), generator=generator, device=device, dtype=torch.float32
    )
    return noise.mul_(chunk.sigma)
