"""One certification end to end: plan the noise, run the chunks, turn counts into a certificate."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Hashable, Mapping
from typing import TypedDict

import numpy as np
import torch

from service import smoothing
from service.sampling import DEFAULT_CHUNK_SIZE, Phase, image_digest, plan_phase
from service.schemas import (
    Certificate,
    CertifyParams,
    LabelCount,
    ModelRef,
    Prediction,
    PredictParams,
    Queries,
    Timings,
)
from service.worker import LocalWorker

__all__ = ["Certifier", "Progress", "chunk_size_for"]

Progress = Callable[[int, int], None]
"""Called with (samples done, samples planned) after every chunk."""

_NOISE_FLOATS_PER_CHUNK = 1 << 25  # 128 MiB of float32 noise at most per chunk
_TOP_COUNTS = 5


def chunk_size_for(shape: tuple[int, ...]) -> int:
    """Chunk size for an image shape: DEFAULT_CHUNK_SIZE, fewer for large images (memory)."""
    return int(max(1, min(DEFAULT_CHUNK_SIZE, _NOISE_FLOATS_PER_CHUNK // int(np.prod(shape)))))


class _CommonFields(TypedDict):
    request_id: str
    top_counts: list[LabelCount]
    n: int
    alpha: float
    sigma: float
    classifier: ModelRef
    denoiser: ModelRef
    queries: Queries
    device: str
    precision: str
    image_digest: str


class Certifier:
    """CERTIFY and PREDICT on a :class:`LocalWorker`, with noise seeded by ``secret``."""

    def __init__(self, worker: LocalWorker, secret: bytes) -> None:
        if not secret:
            raise ValueError("the server secret must not be empty")
        self.worker, self._secret = worker, secret

    def certify(
        self, image: torch.Tensor, params: CertifyParams, progress: Progress | None = None
    ) -> Certificate:
        start = time.perf_counter()
        digest = image_digest(image)
        planned = params.n + (params.n0 if params.candidate == "noisy" else 0)
        tracker = _Tracker(planned, progress)
        if params.candidate == "clean":
            candidate: int | None = self.worker.clean_label(image)
            queries = 1 + params.n
        else:
            selection = self._counts(image, digest, Phase.SELECTION, params.n0, params, tracker)
            candidate = smoothing.select_candidate(_as_mapping(selection))
            queries = params.n0 + params.n
        selected = time.perf_counter()
        estimation = self._counts(image, digest, Phase.ESTIMATION, params.n, params, tracker)
        result = smoothing.certify(
            candidate, _as_mapping(estimation), params.n, params.sigma, params.alpha
        )
        end = time.perf_counter()
        return Certificate(
            **self._common(digest, estimation, params, queries),
            label=self._name(result.label),
            label_key=_key(result.label),
            abstained=result.abstained,
            radius=result.radius,
            p_lower=result.p_lower,
            candidate=self._name(candidate),
            candidate_source=params.candidate,
            n0=params.n0 if params.candidate == "noisy" else 0,
            timings=Timings(
                selection_s=selected - start, estimation_s=end - selected, total_s=end - start
            ),
        )

    def predict(
        self, image: torch.Tensor, params: PredictParams, progress: Progress | None = None
    ) -> Prediction:
        start = time.perf_counter()
        digest = image_digest(image)
        tracker = _Tracker(params.n, progress)
        counts = self._counts(image, digest, Phase.ESTIMATION, params.n, params, tracker)
        result = smoothing.predict(_as_mapping(counts), params.alpha)
        end = time.perf_counter()
        return Prediction(
            **self._common(digest, counts, params, params.n),
            label=self._name(result.label),
            label_key=_key(result.label),
            abstained=result.abstained,
            p_value=result.p_value,
            timings=Timings(estimation_s=end - start, total_s=end - start),
        )

    def _counts(
        self,
        image: torch.Tensor,
        digest: str,
        phase: Phase,
        total: int,
        params: PredictParams,
        tracker: _Tracker,
    ) -> np.ndarray:
        counts = np.zeros(self.worker.num_classes, dtype=np.int64)
        chunks = plan_phase(
            self._secret,
            digest,
            self._stream_params(params.sigma),
            phase,
            total,
            chunk_size_for(tuple(image.shape)),
        )
        for chunk in chunks:
            counts += self.worker.count_chunk(image, chunk, params.sigma)
            tracker.advance(chunk.size)
        return counts

    def _stream_params(self, sigma: float) -> dict[str, object]:
        """What defines a noise stream besides the image, phase and chunk: part of every seed."""
        worker = self.worker
        return {
            "sigma": sigma,
            "denoiser": f"{worker.denoiser.name}@{worker.denoiser.version}",
            "classifier": f"{worker.classifier.name}@{worker.classifier.version}",
            "rng": worker.rng,
        }

    def _common(
        self, digest: str, counts: np.ndarray, params: PredictParams, queries: int
    ) -> _CommonFields:
        worker = self.worker
        top = smoothing.ranked(_as_mapping(counts))[:_TOP_COUNTS]
        return {
            "request_id": uuid.uuid4().hex,
            "top_counts": [
                LabelCount(label=self._name(label) or "", key=str(label), count=count)
                for label, count in top
            ],
            "n": params.n,
            "alpha": params.alpha,
            "sigma": params.sigma,
            "classifier": ModelRef(name=worker.classifier.name, version=worker.classifier.version),
            "denoiser": ModelRef(name=worker.denoiser.name, version=worker.denoiser.version),
            "queries": Queries(total=queries),
            "device": str(worker.device),
            "precision": "fp32",
            "image_digest": digest,
        }

    def _name(self, label: Hashable | None) -> str | None:
        return None if label is None else self.worker.classifier.classes[int(str(label))]


class _Tracker:
    def __init__(self, planned: int, progress: Progress | None) -> None:
        self.done, self.planned, self.progress = 0, planned, progress

    def advance(self, samples: int) -> None:
        self.done += samples
        if self.progress is not None:
            self.progress(self.done, self.planned)


def _as_mapping(counts: np.ndarray) -> Mapping[int, int]:
    return {index: int(count) for index, count in enumerate(counts) if count}


def _key(label: Hashable | None) -> str | None:
    return None if label is None else str(label)
