"""Request parameters and results of a certification, shared by the CLI and the REST gateway."""

from __future__ import annotations

import json
from typing import Literal

from pydantic import ConfigDict, Field, field_validator

from service.core.results import (
    SIGMA_MAX,
    CandidateSource,
    CertifyParams,
    ModelRef,
    PredictParams,
    StrictModel,
)

__all__ = [
    "CertifyOptions",
    "CertifyRequest",
    "JobOptions",
    "JobRequest",
    "PredictOptions",
    "PredictRequest",
    "Preview",
    "PreviewOptions",
    "PreviewRequest",
]


DENOISER_HELP = (
    "catalog name (GET /v1/denoisers); default: the default denoiser, or its sibling trained "
    "for the requested sigma where one is served"
)


class _ModelChoice(StrictModel):
    classifier: str | None = Field(None, description="catalog name (GET /v1/classifiers)")
    denoiser: str | None = Field(None, description=DENOISER_HELP)
    budget: int | None = Field(
        None, ge=1, description="most classifier queries this request may spend"
    )
    max_cost: float | None = Field(
        None, ge=0, description="most USD this request may spend on classifier queries"
    )
    label_map: dict[str, str] | None = Field(
        None,
        description="vendor label key -> class key (synonyms into one class), fixed before "
        "sampling; a JSON object (a JSON string in multipart forms)",
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
        return CertifyParams.model_validate(fields)


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
