"""Fake Google Cloud Vision ``images:annotate`` (label detection), with Google's error shapes."""

from __future__ import annotations

import base64
import binascii
import io
import json

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

LABEL_DETECTION = {"LABEL_DETECTION", 4}


def _error(
    status: int, code_name: str, message: str, reason: str | None = None, **headers: str
) -> JSONResponse:
    error: dict[str, object] = {"code": status, "message": message, "status": code_name}
    if reason:
        error["details"] = [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": reason,
                "domain": "googleapis.com",
            }
        ]
    return JSONResponse({"error": error}, status, headers=headers or None)


# How Google refuses credentials, as documented and seen: an invalid key is a 400
# INVALID_ARGUMENT with or without an ErrorInfo reason; a disabled API or a key restricted to
# other APIs a 403 PERMISSION_DENIED; a bad OAuth token a 401 UNAUTHENTICATED.
REFUSALS: dict[str, tuple[int, str, str, str | None]] = {
    "key-invalid": (400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.",
                    "API_KEY_INVALID"),
    "key-invalid-bare": (400, "INVALID_ARGUMENT",
                         "API key not valid. Please pass a valid API key.", None),
    "key-expired": (400, "INVALID_ARGUMENT", "API key expired. Please renew the API key.",
                    "API_KEY_EXPIRED"),
    "permission-denied": (403, "PERMISSION_DENIED", "Cloud Vision API has not been used in "
                          "project 123 before or it is disabled.", "SERVICE_DISABLED"),
    "permission-denied-bare": (403, "PERMISSION_DENIED",
                               "The caller does not have permission", None),
    "unauthenticated": (401, "UNAUTHENTICATED",
                        "Request had invalid authentication credentials.", None),
}  # fmt: skip


# Vision's cap on a request's JSON (content limits: about 10 MB, base64 included).
MAX_REQUEST_BYTES = 10_485_760


def build(state: FakeState) -> Starlette:
    async def annotate(request: Request) -> JSONResponse:
        state.calls += 1
        key = request.query_params.get("key") or request.headers.get("x-goog-api-key")
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        credential = key or bearer
        state.log.append({"path": request.url.path, "credential_kind": "key" if key else "token"})
        if state.faults.refusal:
            return _error(*REFUSALS[state.faults.refusal])
        if not credential:
            return _error(403, "PERMISSION_DENIED", "The request is missing a valid API key.")
        if credential not in state.keys:
            if key:
                return _error(
                    400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.",
                    "API_KEY_INVALID",
                )  # fmt: skip
            return _error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.")
        if not state.admit(credential):
            state.throttled += 1
            return _error(
                429, "RESOURCE_EXHAUSTED",
                "Quota exceeded for quota metric 'Requests' and limit 'Requests per minute'.",
                "RATE_LIMIT_EXCEEDED", **retry_after_headers(state),
            )  # fmt: skip
        fault = await misbehave(state)
        if fault == "throttle":
            state.throttled += 1
            return _error(
                429, "RESOURCE_EXHAUSTED", "Quota exceeded.", **retry_after_headers(state)
            )
        if fault == "error":
            return _error(503, "UNAVAILABLE", "The service is currently unavailable.")
        if fault == "malformed":
            return MALFORMED  # type: ignore[return-value]
        raw = await request.body()
        if len(raw) > MAX_REQUEST_BYTES:
            return _error(
                400, "INVALID_ARGUMENT",
                f"Request payload size exceeds the limit: {MAX_REQUEST_BYTES} bytes.",
            )  # fmt: skip
        try:
            body = json.loads(raw)
            requests = body["requests"]
        except (ValueError, KeyError, TypeError):
            return _error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        if not isinstance(requests, list) or not requests:
            return _error(400, "INVALID_ARGUMENT", "No requests given.")
        if len(requests) > 16:
            return _error(
                400, "INVALID_ARGUMENT",
                f"At most 16 images may be annotated per request; got {len(requests)}.",
            )  # fmt: skip
        return JSONResponse({"responses": [_annotate(state, item) for item in requests]})

    return fake_app(
        state,
        [
            ("/v1/images:annotate", annotate),
            ("/v1/projects/{project}/locations/{location}/images:annotate", annotate),
        ],
    )


def _annotate(state: FakeState, item: dict) -> dict:
    features = item.get("features") or []
    label = next((f for f in features if f.get("type") in LABEL_DETECTION), None)
    try:
        content = base64.b64decode(item["image"]["content"], validate=True)
        Image.open(io.BytesIO(content)).verify()
    except (KeyError, TypeError, binascii.Error, UnidentifiedImageError, OSError, ValueError):
        return {"error": {"code": 3, "message": "Bad image data."}}
    if state.image_fails():
        if not state.faults.image_error_retryable:
            return {"error": {"code": 3, "message": "Bad image data."}}
        return {"error": {"code": 14, "message": "The service is currently unavailable."}}
    if label is None:
        return {}
    guesses = state.labeler.top(content, k=int(label.get("maxResults", 10)))
    annotations = [
        {
            "mid": f"/m/{g.ident}",
            "description": g.name.title(),
            "score": g.score,
            "topicality": g.score,
        }
        for g in guesses
        if g.score >= 0.01
    ]
    return {"labelAnnotations": annotations} if annotations else {}


if __name__ == "__main__":
    run_standalone(build, "fake Google Cloud Vision")
