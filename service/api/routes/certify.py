"""POST /v1/certify and POST /v1/predict: answer within the request."""

from __future__ import annotations

from fastapi import APIRouter, Request

from service.api.disconnect import unless_disconnected
from service.api.inputs import read_image_request
from service.api.problems import problem_responses
from service.api.routes.deps import CallerDep, ServicesDep
from service.api.routes.openapi_bodies import SAMPLING_PROBLEMS, image_body
from service.api.schemas import CertifyOptions, CertifyRequest, PredictOptions, PredictRequest
from service.core.results import Certificate, Prediction

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
    try:
        certificate = await unless_disconnected(request, services.certify(prepared))
        request.state.queries = certificate.queries.total - certificate.queries.cached
        return certificate
    finally:
        await services.finish(prepared)  # a no-op once the certification has settled


@router.post("/predict", openapi_extra=image_body(PredictRequest))
async def predict(request: Request, services: ServicesDep, caller: CallerDep) -> Prediction:
    """Predict the smoothed label, abstaining when the top two classes are not significantly
    apart at alpha. JSON or `multipart/form-data` bodies, as for `POST /v1/certify`."""
    options, image = await read_image_request(
        request, PredictOptions, services.settings.max_upload_bytes
    )
    prepared = await services.prepare(caller, options, image)
    try:
        prediction = await unless_disconnected(request, services.predict(prepared))
        request.state.queries = prediction.queries.total - prediction.queries.cached
        return prediction
    finally:
        await services.finish(prepared)
