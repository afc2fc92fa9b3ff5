"""The engine's parameters and results: what a certification is asked and what it answers."""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "SIGMA_MAX",
    "Bound",
    "CandidateSource",
    "Certificate",
    "CertifyParams",
    "LabelCount",
    "LedgerPosition",
    "ModelRef",
    "PredictParams",
    "Prediction",
    "Queries",
    "Savings",
    "Signature",
    "StrictModel",
    "Timings",
]

CandidateSource = Literal["noisy", "clean"]
SIGMA_DECIMALS = 4  # sigma is certified on this grid
SIGMA_MAX = 1.0  # sigma lives in (0, 1] pixel units: beyond 1 the noise drowns any [0, 1] image

_EXAMPLE_COMMON: dict[str, Any] = {
    "request_id": "5f0c2d7e9b1a4c3e8d6f7a2b1c0d9e8f",
    "top_counts": [
        {"label": "cat", "key": "3", "count": 962},
        {"label": "dog", "key": "5", "count": 38},
    ],
    "n": 1000,
    "alpha": 0.001,
    "sigma": 0.25,
    "classifier": {"name": "cifar10-resnet20", "version": "cifar10-resnet20-20261125"},
    "denoiser": {"name": "unet-cifar10-s0.25-mse", "version": "unet-cifar10-s0.25-mse-20261125"},
    "queries": {"total": 1100, "cached": 0, "failed": 0},
    "cost": 0.0,
    "timings": {"selection_s": 0.21, "estimation_s": 1.93, "total_s": 2.14},
    "device": "cpu",
    "precision": "fp32",
    "image_digest": "9c1e6b0d4f3a2e1b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b",
}


class StrictModel(BaseModel):
    # No infinities: JSON's 1e400 parses to one, and no field has a use for it (a certificate
    # holding one could not be signed: JCS has no infinity).
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


ALPHA_MIN = 1e-12  # below it the ledger's share of alpha per look can underflow to 0


class PredictParams(StrictModel):
    sigma: float = Field(
        0.25, gt=0, le=SIGMA_MAX,
        description="noise level in (0, 1] pixel units, on a grid of 1e-4 (0.2500001 is 0.25: "
        "sigma in the 7th decimal is no fresh chance at a certificate)",
    )  # fmt: skip
    n: int = Field(10_000, ge=1, le=10_000_000, description="number of noisy samples")
    alpha: float = Field(
        0.001, ge=ALPHA_MIN, lt=0.5,
        description="failure probability (at least 1e-12)",
    )  # fmt: skip

    @field_validator("sigma")
    @classmethod
    def _on_the_grid(cls, sigma: float) -> float:
        snapped = round(sigma, SIGMA_DECIMALS)
        if snapped <= 0:
            raise ValueError(f"sigma must be at least {10.0**-SIGMA_DECIMALS:g}")
        return snapped


LOOK_EVERY_PAID = 8  # stops within 7 queries of the first look that could stop
LOOK_EVERY_FREE = 32  # a local model: fewer, larger batches run faster


class CertifyParams(PredictParams):
    n0: int = Field(100, ge=0, le=1_000_000, description="selection samples (0 with 'clean')")
    candidate: CandidateSource = Field(
        "noisy",
        description="'noisy': candidate = top class of n0 noisy samples; "
        "'clean': the classifier's label on the clean image (one query)",
    )
    mode: Literal["fixed", "sequential"] = Field(
        "fixed",
        description="'fixed': n samples, one bound; 'sequential': sample in rounds (up to n) "
        "with anytime-valid bounds and stop as soon as the answer is known — with a "
        "target_radius a betting confidence sequence checked every look_every samples, without "
        "one Clopper-Pearson with alpha spread over looks at 2^k x first_look samples",
    )
    target_radius: float | None = Field(
        None, gt=0, description="sequential: stop once this radius is certified or unreachable"
    )
    first_look: int | None = Field(
        None, ge=1, le=100_000, description="sequential: samples at look 1 (default: 32 without a "
        "target; with one, the fewest with which a unanimous stream could certify it)",
    )  # fmt: skip
    look_every: int | None = Field(
        None, ge=1, le=100_000, description="sequential with a target: samples between looks "
        "(the betting bound holds at every look, so looking often only saves queries). Default: "
        "8 where queries are paid, 32 for local models (fewer, larger batches run faster); "
        "raised to n / 2,000 where n is larger (at most 2,000 looks)",
    )  # fmt: skip
    futility: float = Field(
        0.01, ge=0, lt=1, description="sequential with a target: stop (target_unlikely) once "
        "the predictive chance that the budget certifies the target falls below this; 0 never "
        "gives up early. Decides when to stop, never what is certified",
    )  # fmt: skip
    tolerance: float = Field(
        0.02, gt=0, description="sequential without a target: stop when more samples could "
        "raise the radius by less than this"
    )  # fmt: skip

    def for_queries(self, paid: bool) -> CertifyParams:
        """With the defaults that depend on what a query costs filled in: looks every
        LOOK_EVERY_PAID samples where each query is paid, LOOK_EVERY_FREE where not."""
        if self.look_every is not None:
            return self
        return self.model_copy(update={"look_every": LOOK_EVERY_PAID if paid else LOOK_EVERY_FREE})

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.candidate == "noisy" and self.n0 < 1:
            raise ValueError("n0 must be at least 1 when the candidate comes from noisy samples")
        if self.mode == "fixed" and self.target_radius is not None:
            raise ValueError("target_radius needs mode='sequential'")
        if self.mode == "sequential" and (self.first_look or 0) > self.n:
            raise ValueError("first_look must not exceed n")
        return self


class ModelRef(StrictModel):
    name: str
    version: str


class LabelCount(StrictModel):
    label: str
    key: str
    count: int


class Queries(StrictModel):
    total: int = Field(description="classifier queries this result rests on")
    cached: int = Field(0, description="of which answered from the vote store")
    failed: int = Field(0, description="of which failed (each counted against the candidate)")


class Timings(StrictModel):
    selection_s: float = 0.0
    estimation_s: float = 0.0
    total_s: float


class _Result(StrictModel):
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
    label_map: dict[str, str] | None = Field(
        None,
        description="the request's label_map (vendor label key -> class key), applied to every "
        "answer before counting: part of the classifier certified; null when none",
    )
    warnings: list[str] = Field(
        default_factory=list,
        description="why the result may mean less than it seems, though it is valid: the image "
        "far from what the classifier was made for (size, shape), a denoiser trained for "
        "another sigma; empty when none",
    )


class LedgerPosition(StrictModel):
    """Where the certificate stands among those the service issued for its image and base
    classifier (rule 9)."""

    stream: int = Field(description="its stream's number for this image and classifier, from 1")
    issued_before: int = Field(description="certificates issued for them before this one")
    alpha_spent: float = Field(
        description="the failure probability this certificate was computed at: alpha times "
        "6 / (pi^2 stream^2), so that all certificates for the image together stay within alpha"
    )


class Bound(StrictModel):
    """The confidence bound p_lower is, so that a reader can recompute it from the counts."""

    kind: Literal["clopper-pearson", "betting"]
    alpha: float = Field(description="the level it was computed at (per look, where spent)")
    successes: int = Field(description="the candidate's count at the look that gave p_lower")
    trials: int = Field(description="the samples drawn by that look")


class Signature(StrictModel):
    """Ed25519 over the RFC 8785 canonical JSON of the certificate without this member and
    without nulls; the key is published at GET /v1/signing-keys under ``kid``."""

    alg: Literal["EdDSA"] = "EdDSA"
    kid: str
    value: str = Field(description="base64url")


class Savings(StrictModel):
    fixed_n_queries: int = Field(description="queries of the fixed-n plan (n0 = 100, n = max)")
    queries_saved: int
    cost_saved: float = Field(description="USD")


class Certificate(_Result):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    **_EXAMPLE_COMMON,
                    "label": "cat",
                    "label_key": "3",
                    "abstained": False,
                    "radius": 0.372541,
                    "p_lower": 0.932851,
                    "candidate": "cat",
                    "candidate_source": "noisy",
                    "n0": 100,
                }
            ]
        }
    )

    radius: float = Field(description="certified L2 radius in [0, 1] pixel units (0 if abstained)")
    p_lower: float = Field(description="(1 - alpha) lower confidence bound on p_A")
    candidate: str | None = Field(description="the class tested, also when abstaining")
    candidate_source: CandidateSource
    n0: int
    mode: Literal["fixed", "sequential"] = "fixed"
    stop_reason: str | None = Field(
        None,
        description="sequential: target_certified, target_unreachable, target_unlikely, "
        "converged, budget_exhausted or no_candidate",
    )
    target_radius: float | None = None
    savings: Savings | None = Field(None, description="sequential: against the fixed-n plan")
    ledger: LedgerPosition | None = Field(
        None, description="the certificate's place in the service's ledger (null: none kept)"
    )
    bound: Bound | None = None
    issued_at: str | None = Field(None, description="when the service signed it (RFC 3339, UTC)")
    signature: Signature | None = Field(None, description="null: not signed (see the CLI)")


class Prediction(_Result):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    **_EXAMPLE_COMMON,
                    "queries": {"total": 1000, "cached": 0, "failed": 0},
                    "label": "cat",
                    "label_key": "3",
                    "abstained": False,
                    "p_value": 1.2e-240,
                }
            ]
        }
    )

    p_value: float = Field(description="two-sided binomial test of the top two counts")
