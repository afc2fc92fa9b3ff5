"""Request parameters and results of a certification, shared by the CLI and the REST gateway."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "Certificate",
    "CertifyParams",
    "LabelCount",
    "ModelRef",
    "PredictParams",
    "Prediction",
    "Queries",
    "Timings",
]

CandidateSource = Literal["noisy", "clean"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PredictParams(_Strict):
    sigma: float = Field(0.25, gt=0, le=4.0, description="noise level in [0, 1] pixel units")
    n: int = Field(10_000, ge=1, le=10_000_000, description="number of noisy samples")
    alpha: float = Field(0.001, gt=0, le=0.5, description="failure probability")


class CertifyParams(PredictParams):
    n0: int = Field(100, ge=0, le=1_000_000, description="selection samples (0 with 'clean')")
    candidate: CandidateSource = Field(
        "noisy",
        description="'noisy': candidate = top class of n0 noisy samples; "
        "'clean': the classifier's label on the clean image (one query)",
    )

    @model_validator(mode="after")
    def _selection_needs_samples(self) -> Self:
        if self.candidate == "noisy" and self.n0 < 1:
            raise ValueError("n0 must be at least 1 when the candidate comes from noisy samples")
        return self


class ModelRef(_Strict):
    name: str
    version: str


class LabelCount(_Strict):
    label: str
    key: str
    count: int


class Queries(_Strict):
    total: int = Field(description="classifier queries this result rests on")
    cached: int = Field(0, description="of which answered from the vote store")
    failed: int = Field(0, description="of which failed (each counted against the candidate)")


class Timings(_Strict):
    selection_s: float = 0.0
    estimation_s: float = 0.0
    total_s: float


class _Result(_Strict):
    request_id: str
    label: str | None = Field(description="the certified (or predicted) class; null if abstained")
    label_key: str | None = Field(description="stable key of the class (index for local models)")
    abstained: bool
    top_counts: list[LabelCount] = Field(description="most frequent labels of the counted samples")
    n: int
    alpha: float
    sigma: float
    classifier: ModelRef
    denoiser: ModelRef
    queries: Queries
    cost: float = Field(0.0, description="estimated cost of the queries, in USD")
    timings: Timings
    device: str
    precision: str
    image_digest: str = Field(description="SHA-256 of the certified float32 pixels")


class Certificate(_Result):
    radius: float = Field(description="certified L2 radius in [0, 1] pixel units (0 if abstained)")
    p_lower: float = Field(description="(1 - alpha) lower confidence bound on p_A")
    candidate: str | None = Field(description="the class tested, also when abstaining")
    candidate_source: CandidateSource
    n0: int


class Prediction(_Result):
    p_value: float = Field(description="two-sided binomial test of the top two counts")
