"""Fake Azure AI Vision: v3.2 analyze/tag and 4.0 Image Analysis, with Azure's error envelope."""

from __future__ import annotations

import io
import uuid

from PIL import Image, UnidentifiedImageError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse

from service.testing.fakes.common import (
    MALFORMED,
    FakeState,
    fake_app,
    misbehave,
    retry_after_headers,
    run_standalone,
)

API_VERSIONS = {"2023-10-01", "2024-02-01"}


def _error(
    status: int, code: str, message: str, inner: str | None = None, **headers: str
) -> JSONResponse:
    error: dict[str, object] = {"code": code, "message": message}
    if inner:
        error["innererror"] = {"code": inner, "message": message}
    return JSONResponse({"error": error}, status, headers=headers or None)


_ACCESS_DENIED = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a "
    "valid key for an active subscription and use a correct regional API endpoint for your "
    "resource."
)
# How Azure refuses credentials: a 401 with its JSON envelope, and a 403 for a key of a resource
# that may not call this API (quota or tier).
REFUSALS: dict[str, tuple[int, str, str]] = {
    "401": (401, "401", _ACCESS_DENIED),
    "403": (403, "403", "Out of call volume quota for ComputerVision F0 pricing tier."),
}


def build(state: FakeState) -> Starlette:
    async def handle(request: Request, v4: bool, tags_wanted: bool) -> JSONResponse:
        state.calls += 1
        state.log.append({"path": request.url.path, "query": dict(request.query_params)})
        if state.faults.refusal:
            return _error(*REFUSALS[state.faults.refusal])
        if request.headers.get("ocp-apim-subscription-key") not in state.keys:
            return _error(
                401,
                "401",
                "Access denied due to invalid subscription key or wrong API endpoint. Make sure "
                "to provide a valid key for an active subscription and use a correct regional "
                "API endpoint for your resource.",
            )
        if not state.admit(request.headers["ocp-apim-subscription-key"]):
            state.throttled += 1
            return JSONResponse(
                {
                    "error": {
                        "code": "429",
                        "message": "Requests to the Analyze Operation under Computer Vision API "
                        "have exceeded rate limit of your current tier. Please retry after 1 "
                        "second(s). To increase your rate limit you can upgrade your tier.",
                    }
                },
                429,
                headers=retry_after_headers(state),
            )
        fault = await misbehave(state)
        if fault == "throttle":
            state.throttled += 1
            headers = retry_after_headers(state)
            return _error(
                429, "429", "Rate limit exceeded. Please retry after 1 second(s).", **headers
            )
        if fault == "error":
            return _error(500, "InternalServerError", "An internal server error occurred.")
        if fault == "malformed":
            return MALFORMED  # type: ignore[return-value]
        if request.headers.get("content-type", "").split(";")[0] != "application/octet-stream":
            return _error(415, "InvalidRequest", "Unsupported media type.", "UnsupportedMediaType")
        body = await request.body()
        limit = 20_971_520 if v4 else 4 * 1024 * 1024
        if len(body) > limit:
            return _error(400, "InvalidRequest", "Image too large.", "InvalidImageSize")
        try:
            with Image.open(io.BytesIO(body)) as image:
                width, height = image.size
                image_format = image.format or ""
        except (UnidentifiedImageError, OSError):
            return _error(
                400, "InvalidRequest", "Input data is not a valid image.", "InvalidImageFormat"
            )
        if min(width, height) < 50 or max(width, height) > 16_000:
            return _error(
                400, "InvalidRequest",
                "The image must be between 50 and 16000 pixels in each dimension.",
                "InvalidImageSize",
            )  # fmt: skip
        guesses = state.labeler.top(body) if tags_wanted else []
        state.images += 1
        tags = [{"name": g.name.lower(), "confidence": g.score} for g in guesses if g.score > 0.01]
        metadata = {"width": width, "height": height}
        if v4:
            return JSONResponse(
                {
                    "modelVersion": state.model_version,
                    "metadata": metadata,
                    "tagsResult": {"values": tags},
                }
            )
        answer: dict[str, object] = {
            "requestId": str(uuid.uuid4()),
            "metadata": {**metadata, "format": image_format.title()},
            "modelVersion": state.model_version,
        }
        if tags_wanted:
            answer["tags"] = tags
        return JSONResponse(answer)

    async def analyze_v3(request: Request) -> JSONResponse:
        features = request.query_params.get("visualFeatures", "")
        wanted = "tags" in [f.strip().lower() for f in features.split(",")]
        return await handle(request, v4=False, tags_wanted=wanted)

    async def tag_v3(request: Request) -> JSONResponse:
        return await handle(request, v4=False, tags_wanted=True)

    async def analyze_v4(request: Request) -> JSONResponse:
        if request.query_params.get("api-version") not in API_VERSIONS:
            return _error(
                400, "InvalidRequest", "The api-version query parameter is missing or unsupported."
            )
        features = request.query_params.get("features", "")
        if not features:
            return _error(400, "InvalidRequest", "The features query parameter is required.")
        wanted = "tags" in [f.strip().lower() for f in features.split(",")]
        return await handle(request, v4=True, tags_wanted=wanted)

    return fake_app(
        state,
        [
            ("/vision/v3.2/analyze", analyze_v3),
            ("/vision/v3.2/tag", tag_v3),
            ("/computervision/imageanalysis:analyze", analyze_v4),
        ],
    )


if __name__ == "__main__":
    run_standalone(build, "fake Azure AI Vision")
