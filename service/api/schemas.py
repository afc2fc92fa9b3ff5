"""Request parameters and results of a certification, shared by the CLI and the REST gateway."""

from __future__ import annotations

import json
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StringConstraints, field_validator

from service.api.auth import UsageCounts
from service.core.query_estimate import QueryEstimate
from service.core.results import (
    SIGMA_MAX,
    CandidateSource,
    CertifyParams,
    ModelRef,
    PredictParams,
    StrictModel,
)

__all__ = [
    "CertifyEstimateRequest",
    "CertifyOptions",
    "CertifyRequest",
    "CostEstimate",
    "EstimateModel",
    "JobOptions",
    "JobRequest",
    "PredictOptions",
    "PredictRequest",
    "Preview",
    "PreviewOptions",
    "PreviewRequest",
    "QueriesAtPA",
    "Usage",
]


DENOISER_HELP = (
    "catalog name (GET /v1/denoisers); default: the default denoiser, or its sibling trained "
    "for the requested sigma where one is served"
)


LabelKey = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class _ModelChoice(StrictModel):
    classifier: str | None = Field(None, description="catalog name (GET /v1/classifiers)")
    denoiser: str | None = Field(None, description=DENOISER_HELP)
    budget: int | None = Field(
        None, ge=1, description="most classifier queries this request may spend"
    )
    max_cost: float | None = Field(
        None, ge=0, description="most USD this request may spend on classifier queries"
    )
    label_map: dict[LabelKey, LabelKey] | None = Field(
        None,
        max_length=1000,
        description="vendor label key -> class key (synonyms into one class), fixed before "
        "sampling; a JSON object (a JSON string in multipart forms) of at most 1,000 entries. "
        "It is part of the classifier certified, and the certificate names it",
    )

    @field_validator("label_map", mode="before")
    @classmethod
    def _label_map_from_form(cls, value: object) -> object:
        return json.loads(value) if isinstance(value, str) else value


class CertifyOptions(CertifyParams, _ModelChoice):
    """Everything of a certification request but the image."""

    candidate: CandidateSource | None = Field(  # type: ignore[assignment]
        None,
        description="'noisy': top class of n0 noisy samples; 'clean': the classifier's label on "
        "the clean image (one query). Default: clean for paid classifiers, noisy otherwise",
    )

    def params(self, paid: bool) -> CertifyParams:
        """The engine's parameters, the candidate's default resolved (one query instead of n0
        where queries cost money); a ValidationError when the result is inconsistent."""
        fields = self.model_dump(include=set(CertifyParams.model_fields))
        if fields["candidate"] is None:
            fields["candidate"] = "clean" if paid else "noisy"
        return CertifyParams.model_validate(fields).for_queries(paid)


class PredictOptions(PredictParams, _ModelChoice):
    """Everything of a prediction request but the image."""

    def params(self, paid: bool) -> PredictParams:
        return PredictParams.model_validate(
            self.model_dump(include=set(PredictParams.model_fields))
        )


class JobOptions(CertifyOptions):
    operation: Literal["certify", "predict"] = Field("certify", description="what the job runs")

    def request(self) -> CertifyOptions | PredictOptions:
        """The synchronous request this job runs (a prediction drops the certify-only fields)."""
        model = PredictOptions if self.operation == "predict" else CertifyOptions
        return model.model_validate(self.model_dump(include=set(model.model_fields)))


_IMAGE_B64 = Field(
    description="the image (PNG, JPEG, WebP, BMP, GIF), base64-encoded; a data: URL works too"
)


class CertifyRequest(CertifyOptions):
    image: str = _IMAGE_B64


class CertifyEstimateRequest(CertifyOptions):
    image: str | None = Field(
        None,
        description="optional: the image (base64, as for POST /v1/certify), checked like an "
        "upload and never sent to the classifier; the sequential plan's looks depend on its size "
        "only for images too large for 1,000 copies per chunk",
    )


class PredictRequest(PredictOptions):
    image: str = _IMAGE_B64


class JobRequest(JobOptions):
    image: str = _IMAGE_B64


class PreviewOptions(StrictModel):
    denoiser: str | None = Field(None, description=DENOISER_HELP)
    sigma: float = Field(0.25, gt=0, le=SIGMA_MAX, description="noise level in (0, 1] pixel units")
    k: int = Field(8, ge=1, le=16, description="copies to show")


class PreviewRequest(PreviewOptions):
    image: str = _IMAGE_B64


class Preview(StrictModel):
    """Noisy copies and their denoised versions, as PNG data URLs. The noise is fresh randomness,
    never the secret noise of a certification."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "noisy": ["data:image/png;base64,iVBORw0KGgo..."],
                    "denoised": ["data:image/png;base64,iVBORw0KGgo..."],
                    "sigma": 0.25,
                    "denoiser": {"name": "unet-cifar10-s0.25-mse", "version": "20261125"},
                }
            ]
        }
    )

    noisy: list[str]
    denoised: list[str]
    sigma: float
    denoiser: ModelRef


class QueriesAtPA(StrictModel):
    """Where the plan stops when the candidate's true vote share is ``p_a``."""

    p_a: float = Field(description="the candidate's probability under the noise")
    weight: float = Field(description="its weight in the prior the expectation averages over")
    queries: int = Field(description="selection + estimation queries on the expected vote path")
    usd: float
    stop_reason: str | None = Field(
        description="sequential: why the plan stops there (as a certificate's stop_reason); "
        "null for the fixed plan"
    )


class EstimateModel(StrictModel):
    """How the expectation was computed. It is an estimate, not a quote: only the worst case is
    a bound."""

    estimate: Literal[True] = True
    method: Literal["fixed-plan", "expected-vote-paths"] = Field(
        description="fixed-plan: the expected queries are the worst case; expected-vote-paths: "
        "the sequential plan run by the certifier's own stopping rule on round(p_A x samples) "
        "votes for the candidate at every look, averaged over the prior"
    )
    summary: str
    bound: Literal["cp-spending", "betting"] | None = Field(
        description="the sequential plan's anytime-valid bound; null for the fixed plan"
    )
    looks: int = Field(description="looks of the plan (1 for the fixed plan)")
    chunk: int | None = Field(
        description="samples per chunk of the sequential plan, its looks falling on whole "
        "chunks: with a target, look_every (a look every chunk); without one, first_look (looks "
        "at doubling counts); fewer where the image is too large for that many copies per chunk "
        "(from its size when sent, else any image that fits); null for the fixed plan"
    )
    image_used: bool = Field(description="whether the image's size went into the plan")
    alpha_per_look: float | None = Field(
        description="the level of each look's bound, at the first ledger stream's share of "
        "alpha (later streams of one image get less)"
    )
    prior: list[QueriesAtPA] = Field(
        description="the prior over p_A (each with its weight) and the queries at each"
    )


class CostEstimate(StrictModel):
    """What a certification would cost before anything runs: the worst case (what budgets,
    max_cost and the key's limits are checked against) and the expectation. Free: the estimate
    itself sends no query and books nothing."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "classifier": {"name": "azure", "version": "2024-02-01"},
                    "price_per_query": 0.001,
                    "mode": "sequential",
                    "candidate": "clean",
                    "worst_case_queries": 10001,
                    "worst_case_usd": 10.001,
                    "expected_queries": 145.4,
                    "expected_usd": 0.1454,
                    "model": {
                        "estimate": True,
                        "method": "expected-vote-paths",
                        "summary": "an estimate, not a quote: ...",
                        "bound": "betting",
                        "looks": 1250,
                        "chunk": 8,
                        "image_used": False,
                        "alpha_per_look": 0.000608,
                        "prior": [
                            {"p_a": 1.0, "weight": 0.25, "queries": 57, "usd": 0.057,
                             "stop_reason": "target_certified"},
                        ],
                    },
                }
            ]
        }
    )  # fmt: skip

    classifier: ModelRef
    price_per_query: float = Field(description="USD per query (GET /v1/classifiers)")
    mode: Literal["fixed", "sequential"]
    candidate: CandidateSource = Field(description="the candidate source, default resolved")
    worst_case_queries: int = Field(description="n0 + n, or 1 + n with candidate='clean'")
    worst_case_usd: float = Field(description="worst_case_queries x price_per_query")
    expected_queries: float = Field(description="the prior-weighted mean over model.prior")
    expected_usd: float = Field(description="expected_queries x price_per_query")
    model: EstimateModel

    @classmethod
    def of(
        cls, found: QueryEstimate, params: CertifyParams, classifier: ModelRef, image: bool
    ) -> CostEstimate:
        return cls(
            classifier=classifier,
            price_per_query=found.price_per_query,
            mode=params.mode,
            candidate=params.candidate,
            worst_case_queries=found.worst_case_queries,
            worst_case_usd=found.worst_case_usd,
            expected_queries=found.expected_queries,
            expected_usd=found.expected_usd,
            model=EstimateModel(
                method="fixed-plan" if found.bound is None else "expected-vote-paths",
                summary=found.summary,
                bound=found.bound,
                looks=found.looks,
                chunk=found.chunk,
                image_used=image and found.bound is not None,
                alpha_per_look=found.alpha_per_look,
                prior=[
                    QueriesAtPA(
                        p_a=path.p_a,
                        weight=path.weight,
                        queries=path.queries,
                        usd=path.usd,
                        stop_reason=path.stop_reason,
                    )
                    for path in found.paths
                ],
            ),
        )


class Usage(StrictModel):
    """The calling key's counts now (UTC) and its limits."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "key": "alice", "day": "2026-11-30", "queries_today": 1101,
                    "daily_queries": 100000, "queries_left_today": 98899, "month": "2026-11",
                    "spent_usd_this_month": 12.5, "monthly_usd": 50.0,
                    "usd_left_this_month": 37.5,
                }
            ]
        }
    )  # fmt: skip

    key: str = Field(description="the key's name")
    day: str = Field(description="today, UTC (YYYY-MM-DD)")
    queries_today: int = Field(description="queries booked today (in-flight requests at their "
                               "worst case until they settle)")  # fmt: skip
    daily_queries: int | None = Field(description="the key's daily query budget; null: none")
    queries_left_today: int | None
    month: str = Field(description="this month, UTC (YYYY-MM)")
    spent_usd_this_month: float = Field(
        description="USD booked this month (in-flight requests at their worst case until they "
        "settle)"
    )
    monthly_usd: float | None = Field(description="the key's monthly spend limit; null: none")
    usd_left_this_month: float | None

    @classmethod
    def of(cls, counts: UsageCounts) -> Usage:
        daily, monthly = counts.daily_queries, counts.monthly_usd
        spent = round(counts.spent_usd_this_month, 6)
        return cls(
            key=counts.key,
            day=counts.day.isoformat(),
            queries_today=counts.queries_today,
            daily_queries=daily,
            queries_left_today=None if daily is None else max(0, daily - counts.queries_today),
            month=f"{counts.day.year:04d}-{counts.day.month:02d}",
            spent_usd_this_month=spent,
            monthly_usd=monthly,
            usd_left_this_month=None if monthly is None else round(max(0.0, monthly - spent), 6),
        )
