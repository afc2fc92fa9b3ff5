"""POST /v1/certify/estimate: what a certification would cost, before anything runs."""

from __future__ import annotations

from fastapi import APIRouter, Request

from service.api.inputs import read_image_request
from service.api.problems import problem_responses
from service.api.routes.deps import CallerDep, ServicesDep
from service.api.routes.openapi_bodies import ESTIMATE_PROBLEMS, image_body
from service.api.schemas import CertifyEstimateRequest, CertifyOptions, CostEstimate

router = APIRouter(
    prefix="/v1", tags=["certification"], responses=problem_responses(*ESTIMATE_PROBLEMS)
)


@router.post("/certify/estimate", openapi_extra=image_body(CertifyEstimateRequest))
async def estimate_certify(
    request: Request, services: ServicesDep, caller: CallerDep
) -> CostEstimate:
    """The worst-case and the expected queries and dollars of a `POST /v1/certify` with the same
    fields, checked as that request would be (invalid fields, unknown models, caps, `budget`,
    `max_cost`; with an image, its format, size and work). Free: it sends no query, books
    nothing on the key's budgets and draws no noise.

    The image is optional: a sequential plan's looks depend on its size only for images too
    large for 1,000 copies per chunk. The expectation is an estimate (`model` says how it was
    computed); the worst case is what budgets and limits are checked against."""
    options, image = await read_image_request(
        request, CertifyOptions, services.settings.max_upload_bytes, image_required=False
    )
    return await services.estimate(caller, options, image)
