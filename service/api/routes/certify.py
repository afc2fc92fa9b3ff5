"""POST /v1/certify and POST /v1/predict: answer within the request."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, TypeVar

from fastapi import APIRouter, Request

from service.api.disconnect import unless_disconnected
from service.api.inputs import read_image_request
from service.api.problems import problem_responses
from service.api.routes.deps import CallerDep, ServicesDep
from service.api.routes.openapi_bodies import SAMPLING_PROBLEMS, image_body
from service.api.schemas import CertifyOptions, CertifyRequest, PredictOptions, PredictRequest
from service.api.services import Prepared, Services
from service.core.results import Certificate, Prediction

R = TypeVar("R", Certificate, Prediction)

router = APIRouter(
    prefix="/v1", tags=["certification"], responses=problem_responses(*SAMPLING_PROBLEMS)
)


@router.post("/certify", openapi_extra=image_body(CertifyRequest))
async def certify(request: Request, services: ServicesDep, caller: CallerDep) -> Certificate:
    """Certify an image: the smoothed label and the L2 radius within which it cannot change.

    For large n prefer `POST /v1/jobs`, which answers at once and reports progress. The body
    may also be `multipart/form-data`: the image as a file field `image`, the other fields as
    form fields.
    """
    options, image = await read_image_request(
        request, CertifyOptions, services.settings.max_upload_bytes
    )
    prepared = await services.prepare(caller, options, image)
    return await _answer(request, services, services.certify(prepared), prepared)


@router.post("/predict", openapi_extra=image_body(PredictRequest))
async def predict(request: Request, services: ServicesDep, caller: CallerDep) -> Prediction:
    """Predict the smoothed label, abstaining when the top two classes are not significantly
    apart at alpha. JSON or `multipart/form-data` bodies, as for `POST /v1/certify`."""
    options, image = await read_image_request(
        request, PredictOptions, services.settings.max_upload_bytes
    )
    prepared = await services.prepare(caller, options, image)
    return await _answer(request, services, services.predict(prepared), prepared)


async def _answer(
    request: Request, services: Services, work: Coroutine[Any, Any, R], prepared: Prepared
) -> R:
    """``work`` within the request: stopped if the client leaves, its queries in the access log,
    its admission and booking settled however it ends (a no-op once it settled itself)."""
    try:
        result = await unless_disconnected(request, work)
        request.state.queries = result.queries.total - result.queries.cached
        return result
    finally:
        await services.finish(prepared)
