"""POST /v1/preview: what the classifier sees — noisy copies and their denoised versions."""

from __future__ import annotations

from fastapi import APIRouter, Request

from service.api.inputs import read_image_request
from service.api.problems import problem_responses
from service.api.routes.deps import CallerDep, ServicesDep
from service.api.routes.openapi_bodies import PREVIEW_PROBLEMS, image_body
from service.api.schemas import Preview, PreviewOptions, PreviewRequest

router = APIRouter(
    prefix="/v1", tags=["certification"], responses=problem_responses(*PREVIEW_PROBLEMS)
)


@router.post("/preview", openapi_extra=image_body(PreviewRequest))
async def preview(request: Request, services: ServicesDep, caller: CallerDep) -> Preview:
    """k noisy copies of an image (at most 512x512) and their denoised versions, as PNG data
    URLs. The noise is fresh randomness, never a certification's secret noise. JSON or
    `multipart/form-data` bodies, as for `POST /v1/certify`."""
    options, image = await read_image_request(
        request, PreviewOptions, services.settings.max_upload_bytes
    )
    return await services.preview(caller, options, image)
