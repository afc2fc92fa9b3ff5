"""One certification end to end: plan the noise, run or recall the chunks, turn counts into a
certificate."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypedDict

import numpy as np
import torch

from service.core import smoothing
from service.core.ledger import Ledger, label_map_digest, ledger_key, stream_id
from service.core.noise import (
    DEFAULT_CHUNK_SIZE,
    Chunk,
    Phase,
    clean_chunk,
    image_digest,
    plan_phase,
)
from service.core.results import (
    LOOK_EVERY_FREE,
    Bound,
    Certificate,
    CertifyParams,
    LabelCount,
    LedgerPosition,
    ModelRef,
    Prediction,
    PredictParams,
    Queries,
    Savings,
    Timings,
)
from service.core.votes import ChunkCounts, VoteStore, chunk_key
from service.observability import current_request_id, span

__all__ = [
    "DEFAULT_FIRST_LOOK", "MAX_LOOKS", "Certifier", "ModelVersionChanged", "Progress", "Sampler",
    "chunk_size_for", "sequential_plan",
]  # fmt: skip

Progress = Callable[[int, int], None]
"""Called with (samples done, samples planned) after every chunk."""

_NOISE_FLOATS_PER_CHUNK = 1 << 25  # 128 MiB of float32 noise at most per chunk
# And at most the pixels of 1,000 CIFAR-10 copies: a 224 px photo's chunk is 20 copies, so a
# photo's progress (reported per chunk) moves every few seconds on a CPU, not once a minute.
_PIXELS_PER_CHUNK = DEFAULT_CHUNK_SIZE * 3 * 32 * 32
_TOP_COUNTS = 5
DEFAULT_FIRST_LOOK = 32  # cp-spending: few looks, each costs alpha
MAX_LOOKS = 2_000  # betting: look_every is raised to n / MAX_LOOKS where n is larger


def chunk_size_for(shape: tuple[int, ...]) -> int:
    """Chunk size for an image shape: DEFAULT_CHUNK_SIZE for CIFAR-10-sized images, fewer for
    larger ones (the work of one chunk, and its memory, stay bounded)."""
    per_copy = int(np.prod(shape))
    limit = min(_NOISE_FLOATS_PER_CHUNK, _PIXELS_PER_CHUNK)
    return int(max(1, min(DEFAULT_CHUNK_SIZE, limit // per_copy)))


class Sampler(Protocol):
    """What executes chunks: noise -> denoiser -> classifier -> label counts."""

    denoiser_ref: ModelRef
    classifier_ref: ModelRef
    device_name: str
    precision: str
    price_per_query: float
    model_version: str | None  # the version the classifier last reported (None: none reported)
    stores_votes: bool  # True: ``count`` has put the votes in the vote store already

    @property
    def noise_params(self) -> dict[str, object]: ...

    @property
    def label_map(self) -> Mapping[str, str]:
        """Vendor label key -> class key, applied to every answer before counting (empty: none)."""
        ...

    def label_name(self, key: str) -> str: ...

    async def count(self, image: torch.Tensor, chunk: Chunk) -> ChunkCounts:
        """The label counts of the chunk's noisy copies of ``image``."""
        ...

    async def clean_votes(self, image: torch.Tensor) -> ChunkCounts:
        """One query on the clean image: its label's count of 1, or one failure."""
        ...


class ModelVersionChanged(RuntimeError):
    """The classifier reported two model versions within one certification: its votes are not
    i.i.d. draws of one base classifier, so no certificate can be given (trap 8)."""


@dataclass
class _Tally:
    """Counts of one certification plus where its queries came from."""

    counts: Counter[str]
    failed: int = 0
    cached: int = 0
    versions: set[str] = field(default_factory=set)
    names: dict[str, str] = field(default_factory=dict)

    def add(self, votes: ChunkCounts, cached: bool) -> None:
        self.counts.update(votes.counts)
        self.names.update(votes.names)
        self.failed += votes.failed
        self.cached += votes.total if cached else 0
        if votes.model_version:
            self.versions.add(votes.model_version)
            if len(self.versions) > 1:
                raise ModelVersionChanged(
                    f"the classifier changed model version during the certification "
                    f"({', '.join(sorted(self.versions))}); retry"
                )


class _CommonFields(TypedDict):
    request_id: str
    top_counts: list[LabelCount]
    n: int
    alpha: float
    sigma: float
    classifier: ModelRef
    denoiser: ModelRef
    device: str
    precision: str
    image_digest: str
    label_map: dict[str, str] | None
    warnings: list[str]


class Certifier:
    """CERTIFY and PREDICT on a :class:`Sampler`, noise seeded by ``secret``, votes memoised in
    ``store`` when one is given.

    With a ``ledger`` (the service always has one) each certificate spends only its stream's
    share of alpha, so that no sequence of requests for one image can fish for a wrong
    certificate (rule 9, :mod:`service.core.ledger`). Without one, each certificate holds at its
    alpha on its own — what a single request or a benchmark needs.

    ``warnings`` (:mod:`service.core.domain`) go into every result as they are: why it may
    mean less than it seems (the image far from the classifier's domain, a denoiser trained for
    another sigma)."""

    def __init__(
        self,
        sampler: Sampler,
        secret: bytes,
        store: VoteStore | None = None,
        ledger: Ledger | None = None,
        warnings: Sequence[str] = (),
    ) -> None:
        if not secret:
            raise ValueError("the server secret must not be empty")
        self.sampler, self.store, self.ledger, self._secret = sampler, store, ledger, secret
        self.warnings = list(warnings)

    async def certify(
        self, image: torch.Tensor, params: CertifyParams, progress: Progress | None = None
    ) -> Certificate:
        start = time.perf_counter()
        digest = image_digest(image)
        params = params.for_queries(paid=self.sampler.price_per_query > 0)
        requested, entry = params, None
        if self.ledger is not None:
            key = ledger_key(digest, self.sampler.noise_params)
            stream = _stream_parts(params, image)
            if self.sampler.label_map:  # another classifier's stream on the unmapped ledger
                stream["label_map"] = label_map_digest(self.sampler.label_map)
            entry = await self.ledger.admit(key, stream_id(stream))
            params = params.model_copy(update={"alpha": params.alpha * entry.share})
        noisy_selection = params.candidate == "noisy"
        tracker = _Tracker(params.n + (params.n0 if noisy_selection else 0), progress)
        # Model versions and label names seen, shared by both phases.
        versions: set[str] = set()
        names: dict[str, str] = {}
        selection = _Tally(Counter(), versions=versions, names=names)
        if noisy_selection:
            await self._tally(selection, image, digest, Phase.SELECTION, params.n0, params, tracker)
            candidate = smoothing.select_candidate(selection.counts)
        else:
            candidate = await self._clean_candidate(selection, image, digest)
        selected = time.perf_counter()
        estimation = _Tally(Counter(), versions=versions, names=names)
        if params.mode == "sequential":
            result, reason = await self._sequential(
                estimation, candidate, image, digest, params, tracker
            )
        else:
            await self._tally(
                estimation, image, digest, Phase.ESTIMATION, params.n, params, tracker
            )
            result = smoothing.certify(
                candidate, estimation.counts, params.n, params.sigma, params.alpha
            )
            reason = None
        end = time.perf_counter()
        betting = params.mode == "sequential" and params.target_radius is not None
        queries = Queries(
            total=result.n + (params.n0 if noisy_selection else 1),
            cached=selection.cached + estimation.cached,
            failed=selection.failed + estimation.failed,
        )
        common = self._common(digest, estimation, requested, n=result.n)
        if not noisy_selection:
            common["warnings"] += self._clean_candidate_warnings(candidate, estimation, result.n)
        return Certificate(
            **common,
            bound=Bound(
                kind="betting" if betting else "clopper-pearson",
                alpha=result.alpha,
                successes=result.bound_counts[0],
                trials=result.bound_counts[1],
            ),
            ledger=None
            if entry is None
            else LedgerPosition(
                stream=entry.position, issued_before=entry.issued_before, alpha_spent=params.alpha
            ),
            queries=queries,
            cost=self._cost(queries),
            label=self._name(result.label, names),
            label_key=_key(result.label),
            abstained=result.abstained,
            radius=result.radius,
            p_lower=result.p_lower,
            candidate=self._name(candidate, names),
            candidate_source=params.candidate,
            n0=params.n0 if noisy_selection else 0,
            mode=params.mode,
            stop_reason=reason,
            target_radius=params.target_radius,
            savings=self._savings(params, queries) if params.mode == "sequential" else None,
            timings=Timings(
                selection_s=selected - start, estimation_s=end - selected, total_s=end - start
            ),
        )

    async def _sequential(
        self,
        tally: _Tally,
        candidate: str | None,
        image: torch.Tensor,
        digest: str,
        params: CertifyParams,
        tracker: _Tracker,
    ) -> tuple[smoothing.CertifyResult, str | None]:
        """Sample in chunks of one look's unit; evaluate at each planned look; stop when told.

        With a target: the betting confidence sequence, looked at after every chunk. Without
        one (the largest radius within the budget): Clopper-Pearson alpha-spending at doubling
        looks, which gives slightly larger radii there.
        """
        plan, unit = sequential_plan(params, tuple(image.shape))
        chunks = self._chunks(image, digest, Phase.ESTIMATION, params.n, params, unit)
        look, drawn = 0, 0
        result: smoothing.CertifyResult | None = None
        async for votes, cached, size in chunks:
            tally.add(votes, cached)
            drawn += size
            tracker.advance(size)
            if drawn < plan.looks[look]:
                continue
            step = smoothing.sequential_look(
                plan, look, candidate, tally.counts, params.sigma, params.target_radius,
                params.tolerance, result,
            )  # fmt: skip
            result = step.result
            if step.stop:
                await chunks.aclose()
                tracker.finish()
                return step.result, step.reason
            look += 1
        raise AssertionError("the last look stops")  # pragma: no cover

    def _savings(self, params: CertifyParams, queries: Queries) -> Savings:
        fixed = 100 + params.n  # the reference plan: n0 = 100 noisy selection, n = the budget
        saved = fixed - queries.total
        return Savings(
            fixed_n_queries=fixed,
            queries_saved=saved,
            cost_saved=round(saved * self.sampler.price_per_query, 6),
        )

    async def predict(
        self, image: torch.Tensor, params: PredictParams, progress: Progress | None = None
    ) -> Prediction:
        start = time.perf_counter()
        digest = image_digest(image)
        tracker = _Tracker(params.n, progress)
        tally = _Tally(Counter())
        await self._tally(tally, image, digest, Phase.PREDICT, params.n, params, tracker)
        result = smoothing.predict(tally.counts, params.alpha, tally.failed)
        end = time.perf_counter()
        queries = Queries(total=params.n, cached=tally.cached, failed=tally.failed)
        return Prediction(
            **self._common(digest, tally, params),
            queries=queries,
            cost=self._cost(queries),
            label=self._name(result.label, tally.names),
            label_key=_key(result.label),
            abstained=result.abstained,
            p_value=result.p_value,
            timings=Timings(estimation_s=end - start, total_s=end - start),
        )

    async def _chunks(
        self,
        image: torch.Tensor,
        digest: str,
        phase: Phase,
        total: int,
        params: PredictParams,
        chunk_size: int,
    ) -> AsyncGenerator[tuple[ChunkCounts, bool, int]]:
        """(votes, from the store?, size) of each chunk of a phase, in the plan's order."""
        stream = self.sampler.noise_params
        for chunk in plan_phase(
            self._secret, digest, params.sigma, stream, phase, total, chunk_size
        ):
            # Looked up under the version the classifier reported last; stored under the one
            # that answered this chunk (rule 7 — docs/statistics.md).
            votes = None
            if self.store is not None:
                votes = await self.store.get(chunk_key(chunk, self.sampler.model_version))
            if votes is not None:
                yield votes, True, chunk.size
                continue
            with span("chunk", **{"dsmooth.phase": str(chunk.phase), "dsmooth.chunk": chunk.index,
                                   "dsmooth.samples": chunk.size}):  # fmt: skip
                votes = await self.sampler.count(image, chunk)
            if not self.sampler.stores_votes:
                await self._store(chunk, votes)
            yield votes, False, chunk.size

    async def _clean_candidate(self, tally: _Tally, image: torch.Tensor, digest: str) -> str | None:
        """The classifier's label on the clean image: one query, or none when the vote store
        has the answer. None (abstain) when the query failed."""
        chunk = clean_chunk(self._secret, digest, self.sampler.noise_params)
        votes = None
        if self.store is not None:
            votes = await self.store.get(chunk_key(chunk, self.sampler.model_version))
        cached = votes is not None
        if votes is None:
            votes = await self.sampler.clean_votes(image)  # asked here, even in stream mode
            await self._store(chunk, votes)
        tally.add(votes, cached=cached)
        return next(iter(votes.counts), None)

    async def _store(self, chunk: Chunk, votes: ChunkCounts) -> None:
        """Memoise the chunk's votes — only answers: a chunk with a failed query is asked again
        by a repeat, never served as a vote against (rule 10)."""
        if self.store is None or votes.failed:
            return
        await self.store.put(chunk_key(chunk, votes.model_version), votes)

    async def _tally(
        self,
        tally: _Tally,
        image: torch.Tensor,
        digest: str,
        phase: Phase,
        total: int,
        params: PredictParams,
        tracker: _Tracker,
    ) -> None:
        """Add all of one phase's chunks to ``tally``."""
        chunk_size = chunk_size_for(tuple(image.shape))
        async for votes, cached, size in self._chunks(
            image, digest, phase, total, params, chunk_size
        ):
            tally.add(votes, cached)
            tracker.advance(size)

    def _common(
        self, digest: str, tally: _Tally, params: PredictParams, n: int | None = None
    ) -> _CommonFields:
        sampler = self.sampler
        classifier = sampler.classifier_ref
        if tally.versions:  # the version the vendor reported is the one certified
            classifier = ModelRef(name=classifier.name, version=next(iter(tally.versions)))
        top = smoothing.ranked(tally.counts)[:_TOP_COUNTS]
        return {
            # The X-Request-ID of the request it answers (a job: the one that submitted it).
            "request_id": current_request_id() or uuid.uuid4().hex,
            "top_counts": [
                LabelCount(label=self._name(key, tally.names) or key, key=key, count=count)
                for key, count in top
            ],
            "n": params.n if n is None else n,
            "alpha": params.alpha,
            "sigma": params.sigma,
            "classifier": classifier,
            "denoiser": sampler.denoiser_ref,
            "device": sampler.device_name,
            "precision": sampler.precision,
            "image_digest": digest,
            "label_map": dict(sampler.label_map) or None,
            "warnings": list(self.warnings),
        }

    def _clean_candidate_warnings(self, candidate: str | None, tally: _Tally, n: int) -> list[str]:
        """Where most noisy copies name another label than the clean image: the smoothed
        classifier predicts that one, and only a candidate selected from noisy copies can
        certify it (a client cannot tell this from an abstention alone)."""
        top = smoothing.ranked(tally.counts)[:1]
        if candidate is None or not top or top[0][0] == candidate or 2 * top[0][1] <= n:
            return []
        label, count = self._name(top[0][0], tally.names), top[0][1]
        return [
            f"the classifier's label on the clean image ({self._name(candidate, tally.names)}) "
            f"got {tally.counts.get(candidate, 0)} of the {n} noisy copies and {label} got "
            f"{count}: the smoothed classifier predicts {label}, which a clean candidate cannot "
            "certify; send candidate=noisy to select the candidate from noisy copies"
        ]

    def _cost(self, queries: Queries) -> float:
        """What the queries sent this time cost: the answered ones (cached ones are free, and a
        query that failed for good was not billed)."""
        answered = max(0, queries.total - queries.cached - queries.failed)
        return round(answered * self.sampler.price_per_query, 6)

    def _name(self, key: object | None, names: dict[str, str]) -> str | None:
        if key is None:
            return None
        return names.get(str(key)) or self.sampler.label_name(str(key))


class _Tracker:
    def __init__(self, planned: int, progress: Progress | None) -> None:
        self.done, self.planned, self.progress = 0, planned, progress

    def advance(self, samples: int) -> None:
        self.done += samples
        if self.progress is not None:
            self.progress(self.done, self.planned)

    def finish(self) -> None:
        """Stopped early: what was planned is what was done."""
        self.planned = self.done
        if self.progress is not None:
            self.progress(self.done, self.planned)


def _stream_parts(params: CertifyParams, image: torch.Tensor) -> dict[str, object]:
    """What selects a certificate's noise and bound: requests that agree on these read one
    stream (and share one ledger position); any difference is a new stream."""
    parts: dict[str, object] = {"sigma": params.sigma, "candidate": params.candidate}
    if params.candidate == "noisy":  # the selection's noise (and so its candidate) is the stream's
        parts.update(n0=params.n0, selection_chunk=chunk_size_for(tuple(image.shape)))
    if params.mode == "fixed":  # Clopper-Pearson holds at one n only
        return {**parts, "bound": "clopper-pearson", "chunk": chunk_size_for(tuple(image.shape)),
                "n": params.n}  # fmt: skip
    unit = _look_unit(params, tuple(image.shape))
    if params.target_radius is None:  # alpha spent over one schedule of looks
        return {**parts, "bound": "cp-spending", "chunk": unit, "n": params.n,
                "first_look": _first_look(params)}  # fmt: skip
    return {**parts, "bound": "betting", "chunk": unit}  # valid at every look of every length


def sequential_plan(
    params: CertifyParams, shape: tuple[int, ...]
) -> tuple[smoothing.SequentialPlan, int]:
    """The looks (and the chunk size under them) of a sequential certification of an image of
    ``shape``: with a target, the betting sequence every ``look_every`` samples (from the
    first, so that a hopeless image stops at once); without one, cp-spending at doubling looks.
    """
    unit = _look_unit(params, shape)
    if params.target_radius is None:
        first = min(unit * -(-_first_look(params) // unit), params.n)  # whole chunks
        return smoothing.SequentialPlan.doubling(first, params.n, params.alpha), unit
    first = min(unit * -(-(params.first_look or unit) // unit), params.n)
    plan = smoothing.SequentialPlan.every(unit, params.n, params.alpha, first, params.futility)
    return plan, unit


def _first_look(params: CertifyParams) -> int:
    return params.first_look or DEFAULT_FIRST_LOOK


def _look_unit(params: CertifyParams, shape: tuple[int, ...]) -> int:
    """The chunk size of a sequential plan: its looks fall on whole chunks."""
    if params.target_radius is None:
        wanted = _first_look(params)
    else:  # each look costs a chunk round trip and ~2 ms of bound arithmetic: a few thousand
        wanted = max(params.look_every or LOOK_EVERY_FREE, -(-params.n // MAX_LOOKS))
    return min(wanted, chunk_size_for(shape))


def _key(label: object | None) -> str | None:
    return None if label is None else str(label)
