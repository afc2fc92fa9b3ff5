"""Model execution: turn a chunk of the noise plan into label counts on the worker's device.

The base classifier f of the certificate is everything :class:`BaseClassifier` does to a noisy
copy: denoise, resize to the classifier's input size when it differs (part of f, allowed by rule 1
because it happens *after* the noise), classify, take the arg-max.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from types import MappingProxyType
from typing import TypeVar

import numpy as np
import torch
from torch import nn

from denoisers.registry import LoadedModel
from service.adapters.prepare import encode_copies
from service.config import DEFAULT_BATCH_SIZE
from service.core.noise import Chunk, draw_noise
from service.core.results import ModelRef
from service.core.votes import ChunkCounts
from service.execution.batching import Batcher
from service.execution.cost import Work, at_size, scaled
from service.execution.devices import (
    Forward,
    Precision,
    compiled,
    for_inference,
    memory_budget,
    resolve_device,
    resolve_precision,
    run_fixed_size,
)
from service.imaging import resize_to

__all__ = [
    "BaseClassifier",
    "LocalDenoiser",
    "LocalSampler",
]


T = TypeVar("T")


class BaseClassifier(nn.Module):
    """denoiser -> (resize to ``input_size``) -> classifier; returns logits."""

    def __init__(self, denoiser: nn.Module, classifier: nn.Module, input_size: int | None) -> None:
        super().__init__()
        self.denoiser, self.classifier, self.input_size = denoiser, classifier, input_size

    def forward(self, noisy: torch.Tensor) -> torch.Tensor:
        return self.classifier(resize_to(self.denoiser(noisy), self.input_size))


class LocalDenoiser:
    """Draws a chunk's noise and denoises it on one device, a batch at a time.

    The async methods run the model on one dedicated thread (shared by all workers of a process),
    so concurrent requests queue for the device instead of oversubscribing it, and the event loop
    stays free.
    """

    def __init__(
        self,
        denoiser: LoadedModel,
        device: torch.device | str = "auto",
        batch_size: int = DEFAULT_BATCH_SIZE,
        executor: ThreadPoolExecutor | None = None,
        rng_device: str | None = None,
        precision: Precision = "fp32",
        compile: bool = False,
        fixed_shapes: bool | None = None,
    ) -> None:
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive (got {batch_size})")
        self.denoiser = denoiser
        self.device = resolve_device(device) if isinstance(device, str) else device
        self.batch_size = batch_size
        self.denoiser_module = for_inference(denoiser.module, self.device)
        self._batch_sizes: dict[tuple[int, ...], int] = {}
        self._executor = executor or ThreadPoolExecutor(1, thread_name_prefix="dsmooth-model")
        self.compute_dtype = resolve_precision(precision, self.device)
        # What the certificate records: a compiled model rounds differently, so it is part of
        # the base classifier (and of every noise seed through ``noise_params``).
        self.precision = self.compute_dtype + ("+compile" if compile else "")
        self._denoise = compiled(self.denoiser_module, compile, self.device)
        # Batches padded to a few fixed sizes: what CUDA graphs need (default: where they run).
        self.fixed_shapes = (
            compile and self.device.type == "cuda" if fixed_shapes is None else fixed_shapes
        )
        self.device_name = str(self.device)
        self.denoiser_ref = ModelRef(name=denoiser.name, version=denoiser.version)
        # Where the noise generator runs: the compute device unless told otherwise. CPU and CUDA
        # generators give different streams from one seed, so it is part of every seed.
        self.rng_device = torch.device(rng_device or self.device.type)

    @property
    def models(self) -> str:
        """What makes its copies, as a certificate names it: a stream worker that runs other
        models (or at another precision) refuses the gateway's chunks."""
        return f"{self.denoiser.name}@{self.denoiser.version}, {self.precision}"

    def batch_for(self, shape: tuple[int, ...]) -> int:
        """Samples per forward pass for images of ``shape``: ``batch_size``, or fewer where a
        batch that large would not fit in memory (large images)."""
        if shape not in self._batch_sizes:
            fits = memory_budget(self.device) // max(1, self.work(shape).peak_bytes)
            self._batch_sizes[shape] = max(1, min(self.batch_size, fits))
        return self._batch_sizes[shape]

    def work(self, shape: tuple[int, ...]) -> Work:
        """What one noisy copy of an image of ``shape`` costs here: the denoiser's pass."""
        return scaled(self.denoiser_module, shape)

    def _batches(self, forward: Forward, stack: torch.Tensor, keep: Forward) -> list[torch.Tensor]:
        """``keep(forward(batch))`` over ``stack`` [B, C, H, W] a batch at a time, at fixed sizes
        when set. ``keep`` runs before the next batch: a CUDA graph overwrites its outputs."""
        largest = self.batch_for(tuple(stack.shape[1:]))
        run = (
            functools.partial(run_fixed_size, forward, largest=largest)
            if self.fixed_shapes
            else forward
        )
        return [keep(run(batch.to(self.device))) for batch in stack.split(largest)]

    @property
    def rng(self) -> str:
        """Which generator family draws the noise: part of what defines a noise stream."""
        return f"torch-{self.rng_device.type}"

    async def on_model_thread(self, function: Callable[..., T], *args: object) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, function, *args)

    def noisy(self, image: torch.Tensor, chunk: Chunk, rng: str | None = None) -> torch.Tensor:
        """The chunk's noisy copies of ``image`` on the device: [size, C, H, W].

        ``rng`` ("torch-cpu", "torch-cuda") overrides the generator family, for tasks planned
        elsewhere."""
        clean = image.to(self.device, torch.float32)
        rng_device = self.rng_device if rng is None else torch.device(rng.removeprefix("torch-"))
        noise = draw_noise(chunk, tuple(clean.shape), rng_device)
        return noise.to(self.device).add_(clean).contiguous(memory_format=torch.channels_last)

    @torch.inference_mode()
    def denoised(self, image: torch.Tensor, chunk: Chunk, rng: str | None = None) -> torch.Tensor:
        """The chunk's denoised copies, on the CPU: [size, C, H, W]."""
        noisy = self.noisy(image, chunk, rng)
        with self.autocast():
            return torch.cat(self._batches(self._denoise, noisy, lambda out: out.float().cpu()))

    def autocast(self) -> torch.autocast:
        """bf16 autocast when that is the precision (the noise itself stays float32)."""
        return torch.autocast(
            self.device.type, dtype=torch.bfloat16, enabled=self.compute_dtype == "bf16"
        )

    async def encoded_copies(self, image: torch.Tensor, chunk: Chunk, min_side: int) -> list[bytes]:
        """The chunk's denoised copies as PNGs for a vendor (quantised, upscaled)."""
        denoised = await self.on_model_thread(self.denoised, image, chunk)
        return await asyncio.to_thread(encode_copies, denoised, min_side)


class LocalSampler(LocalDenoiser):
    """A denoiser + local classifier pair: counts labels of the whole base classifier."""

    price_per_query = 0.0
    model_version: str | None = None  # local models report no version at query time
    stores_votes = False
    label_map: Mapping[str, str] = MappingProxyType({})  # local classes need no map

    def __init__(
        self,
        denoiser: LoadedModel,
        classifier: LoadedModel,
        device: torch.device | str = "auto",
        batch_size: int = DEFAULT_BATCH_SIZE,
        executor: ThreadPoolExecutor | None = None,
        rng_device: str | None = None,
        precision: Precision = "fp32",
        compile: bool = False,
        fixed_shapes: bool | None = None,
    ) -> None:
        super().__init__(
            denoiser, device, batch_size, executor, rng_device, precision, compile, fixed_shapes
        )
        self.classifier = classifier
        self.num_classes = len(classifier.classes)
        self.classifier_module = for_inference(classifier.module, self.device)
        self.model = BaseClassifier(
            self.denoiser_module, self.classifier_module, classifier.input_size
        )
        self._classify = compiled(self.model, compile, self.device)
        self.classifier_ref = ModelRef(name=classifier.name, version=classifier.version)
        # Chunks of concurrent certifications (same image size) share forward passes.
        self._batcher: Batcher[tuple[torch.Tensor, Chunk], np.ndarray] = Batcher(
            lambda work: self.on_model_thread(self.count_chunks, work),
            size=lambda work: work[1].size,
            key=lambda work: tuple(work[0].shape),
            max_size=batch_size,
        )

    @property
    def models(self) -> str:
        return (
            f"{self.denoiser.name}@{self.denoiser.version} + "
            f"{self.classifier.name}@{self.classifier.version}, {self.precision}"
        )

    @property
    def noise_params(self) -> dict[str, object]:
        """What defines a noise stream besides image, phase and chunk: part of every seed."""
        return {
            "denoiser": f"{self.denoiser.name}@{self.denoiser.version}",
            "classifier": f"{self.classifier.name}@{self.classifier.version}",
            "rng": self.rng,
            "precision": self.precision,
        }

    def work(self, shape: tuple[int, ...]) -> Work:
        """Denoiser, then the classifier at its input size (or the image's, when it has none)."""
        size = self.classifier.input_size
        classified = (
            scaled(self.classifier_module, shape)
            if size is None
            else at_size(self.classifier_module, (shape[0], size, size))
        )
        return super().work(shape) + classified

    def label_name(self, key: str) -> str:
        return self.classifier.classes[int(key)]

    async def count(self, image: torch.Tensor, chunk: Chunk) -> ChunkCounts:
        """The chunk's label-key counts, computed on the model thread together with the chunks of
        concurrent requests that are waiting for it."""
        counts = await self._batcher.submit((image, chunk))
        return ChunkCounts({str(i): int(c) for i, c in enumerate(counts) if c})

    async def clean_votes(self, image: torch.Tensor) -> ChunkCounts:
        return ChunkCounts({str(await self.on_model_thread(self.clean_label, image)): 1})

    @torch.inference_mode()
    def labels(self, images: torch.Tensor) -> torch.Tensor:
        """Arg-max labels of f on a stack of images [B, C, H, W] (already noisy), in batches."""
        with self.autocast():
            return torch.cat(self._batches(self._classify, images, lambda out: out.argmax(dim=1)))

    @torch.inference_mode()
    def count_chunk(self, image: torch.Tensor, chunk: Chunk) -> np.ndarray:
        """Label counts [num_classes] of f over the chunk's ``chunk.size`` noisy copies."""
        return self.count_chunks([(image, chunk)])[0]

    @torch.inference_mode()
    def count_chunks(
        self, work: list[tuple[torch.Tensor, Chunk]], rng: str | None = None
    ) -> list[np.ndarray]:
        """Counts of several chunks (same image shape) in shared forward passes."""
        noisy = torch.cat([self.noisy(image, chunk, rng) for image, chunk in work])
        labels = self.labels(noisy).split([chunk.size for _, chunk in work])
        return [
            torch.bincount(part, minlength=self.num_classes).cpu().numpy().astype(np.int64)
            for part in labels
        ]

    @torch.inference_mode()
    def clean_label(self, image: torch.Tensor) -> int:
        """The classifier's label on the clean image (no noise, no denoiser)."""
        batch = resize_to(image.to(self.device, torch.float32)[None], self.classifier.input_size)
        with self.autocast():
            return int(self.classifier_module(batch).argmax(dim=1).item())
