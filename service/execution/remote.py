"""Sampling with a remote classifier: denoise here, ask the vendor about every copy.

The base classifier is: noise -> denoiser -> clip and quantise to 8 bits -> upscale to the
vendor's minimum side -> PNG -> the vendor's top label (after the optional label map). A copy
whose query failed for good is counted as failed: a vote against the candidate (rule 4).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import Counter
from collections.abc import Mapping
from typing import Protocol

import torch

from service.adapters.base import Answer
from service.adapters.fanout import FanOut
from service.adapters.prepare import encode_copies
from service.core.certifier import ModelVersionChanged
from service.core.ledger import label_map_digest
from service.core.noise import Chunk
from service.core.results import ModelRef
from service.core.votes import ChunkCounts
from service.execution.local import LocalDenoiser

__all__ = ["CopySource", "RemoteSampler"]


class CopySource(Protocol):
    """Where denoised copies come from: this process, or a worker through the stream."""

    @property
    def rng(self) -> str: ...

    async def encoded_copies(
        self, image: torch.Tensor, chunk: Chunk, min_side: int
    ) -> list[bytes]: ...


class RemoteSampler:
    def __init__(
        self,
        name: str,
        denoising: LocalDenoiser,
        fanout: FanOut,
        label_map: Mapping[str, str] | None = None,
        copies: CopySource | None = None,
    ) -> None:
        self.denoising, self.fanout = denoising, fanout
        self.copies: CopySource = copies or denoising
        self.adapter = fanout.adapter
        self.label_map = dict(label_map or {})
        self.denoiser_ref = denoising.denoiser_ref
        self.classifier_ref = ModelRef(
            name=name, version=self.adapter.pinned_version or "as reported"
        )
        self.device_name = denoising.device_name
        self.precision = denoising.precision
        self.price_per_query = self.adapter.price_per_image
        self.stores_votes = False
        self.model_version: str | None = fanout.last_model_version

    @property
    def noise_params(self) -> dict[str, object]:
        identity = json.dumps(self.adapter.identity, sort_keys=True, default=str).encode()
        return {
            "denoiser": f"{self.denoising.denoiser.name}@{self.denoising.denoiser.version}",
            "classifier": f"{self.classifier_ref.name}@{self.adapter.pinned_version}",
            "adapter": self.adapter.name,
            "vendor": hashlib.sha256(identity).hexdigest()[:16],
            "encoding": "png",
            "min_side": self.adapter.min_side,
            "label_map": label_map_digest(self.label_map),
            "rng": self.copies.rng,
            "precision": self.precision,
        }

    def label_name(self, key: str) -> str:
        return key  # display names travel with the votes (ChunkCounts.names)

    async def count(self, image: torch.Tensor, chunk: Chunk) -> ChunkCounts:
        copies = await self.copies.encoded_copies(image, chunk, self.adapter.min_side)
        return await self._ask(copies)

    async def clean_votes(self, image: torch.Tensor) -> ChunkCounts:
        clean = await asyncio.to_thread(encode_copies, image[None], self.adapter.min_side)
        return await self._ask(clean)

    async def _ask(self, encoded: list[bytes]) -> ChunkCounts:
        results = await self.fanout.classify(encoded)
        counts: Counter[str] = Counter()
        names: dict[str, str] = {}
        versions = set()
        for result in results:
            if isinstance(result, Answer):
                top = result.top(self.label_map)
                counts[top.key] += 1
                if top.name != top.key:
                    names[top.key] = top.name
                if result.model_version:
                    versions.add(result.model_version)
        if len(versions) > 1:
            raise ModelVersionChanged(
                f"{self.adapter.name} answered with model versions {sorted(versions)} in one batch"
            )
        version = versions.pop() if versions else None
        if version:
            self.model_version = self.fanout.last_model_version = version
        failed = len(results) - sum(counts.values())
        return ChunkCounts(dict(counts), failed, version, names)
