"""A local torch classifier behind the adapter interface (PNG in, labels out).

The in-process pipeline classifies local models on the tensors directly and never goes through
here; this adapter serves a local model to code written against the adapter interface (and lets
the fan-out engine be tested without a network).
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Sequence
from functools import cached_property
from typing import ClassVar

import numpy as np
import torch
from PIL import Image
from pydantic_settings import BaseSettings, SettingsConfigDict

from denoisers.registry import LoadedModel, load_classifier
from service.adapters.base import Adapter, Answer, Failure, Label
from service.imaging import resize_to

__all__ = ["LocalAdapter", "LocalAdapterSettings"]


class LocalAdapterSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DSMOOTH_LOCAL_", env_file=".env", extra="ignore")
    model: str = ""  # classifier spec, NAME[:WEIGHTS]
    requests_per_second: float = 1000.0


class LocalAdapter(Adapter):
    name: ClassVar[str] = "local"
    max_images_per_call: ClassVar[int] = 256
    settings_class: ClassVar[type[BaseSettings]] = LocalAdapterSettings
    settings: LocalAdapterSettings

    @property
    def configured(self) -> bool:
        return bool(self.settings.model)

    @cached_property
    def classifier(self) -> LoadedModel:
        return load_classifier(self.settings.model)

    async def classify(self, images: Sequence[bytes]) -> list[Answer | Failure]:
        return await asyncio.to_thread(self._classify, images)

    @torch.inference_mode()
    def _classify(self, images: Sequence[bytes]) -> list[Answer | Failure]:
        model = self.classifier
        arrays = [np.asarray(Image.open(io.BytesIO(i)).convert("RGB")) for i in images]
        batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div(255)
        probabilities = model.module(resize_to(batch, model.input_size)).softmax(dim=1)
        scores, indices = probabilities.topk(min(5, probabilities.shape[1]), dim=1)
        return [
            Answer(
                tuple(
                    Label(str(int(i)), model.classes[int(i)], float(s))
                    for s, i in zip(row_scores, row_indices, strict=True)
                ),
                model.version,
            )
            for row_scores, row_indices in zip(scores, indices, strict=True)
        ]
