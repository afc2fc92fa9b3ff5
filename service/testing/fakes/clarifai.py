"""Fake Clarifai v2 ``outputs`` for general-image-recognition, with Clarifai status codes."""

from __future__ import annotations

import base64
import binascii
import io

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

MODEL = "general-image-recognition"


def _status(code: int | str, description: str, http: int = 200, **extra: object) -> JSONResponse:
    return JSONResponse({"status": {"code": code, "description": description}, **extra}, http)


# How Clarifai refuses credentials: a 401 with a CONN_* status, or a generic FAILURE (10020) /
# CONN_INVALID_REQUEST (11102) whose text names the key or the authorization header.
REFUSALS: dict[str, tuple[int, str, str, int]] = {
    "11008": (11008, "Invalid API key or Invalid API key/application pair",
              "Invalid format of key.", 401),
    "11009": (11009, "API key not found", "invalid key", 401),
    "10020": (10020, "Failure", "Invalid API key or personal access token", 401),
    "11102": (11102, "Invalid request", "Empty or malformed authorization header. Please "
              "provide an API key or session token.", 400),
}  # fmt: skip


def build(state: FakeState) -> Starlette:
    throttle_count = 0

    async def outputs(request: Request) -> JSONResponse:
        nonlocal throttle_count
        state.calls += 1
        authorization = request.headers.get("authorization", "")
        state.log.append({"path": request.url.path})
        if state.faults.refusal:
            number, description, details, http = REFUSALS[state.faults.refusal]
            body = {"status": {"code": number, "description": description, "details": details}}
            return JSONResponse(body, http)
        if not authorization.startswith("Key "):
            return _status(11008, "Invalid API key or Invalid API key/application pair", 401)
        key = authorization.removeprefix("Key ")
        if key not in state.keys:
            return _status(11009, "API key not found", 401)
        fault = "throttle" if not state.admit(key) else await misbehave(state)
        if fault == "throttle":
            state.throttled += 1
            throttle_count += 1
            # The number, the number as a string, or the name (the rate-limit docs' example).
            code: int | str = (11005, "11005", "CONN_THROTTLED")[throttle_count % 3]
            response = _status(code, "Making too many requests", 429)
            response.headers.update(retry_after_headers(state))
            return response
        if fault == "error":
            return _status(98004, "Internal error", 500)
        if fault == "malformed":
            return MALFORMED  # type: ignore[return-value]
        try:
            body = await request.json()
            inputs = body["inputs"]
        except (ValueError, KeyError, TypeError):
            return _status(11102, "Invalid request", 400)
        if not isinstance(inputs, list) or not 1 <= len(inputs) <= 128:
            return _status(11102, f"Invalid request: 1 to 128 inputs, got {len(inputs)}", 400)
        config = body.get("model", {}).get("output_info", {}).get("output_config", {})
        max_concepts = int(config.get("max_concepts", 20))
        min_value = float(config.get("min_value", 0.0))
        version = request.path_params.get("version", state.model_version)
        results = [_one(state, item, version, max_concepts, min_value) for item in inputs]
        answered = sum(r["status"]["code"] == 10000 for r in results)
        top = {"code": 10000, "description": "Ok"}
        if answered == 0:  # every input failed: FAILURE, still with one status per input
            top = {"code": 10020, "description": "Failure"}
        elif answered < len(results):
            top = {"code": 10010, "description": "Mixed Success"}
        return JSONResponse({"status": top, "outputs": results})

    return fake_app(
        state,
        [
            (f"/v2/users/clarifai/apps/main/models/{MODEL}/outputs", outputs),
            (f"/v2/users/clarifai/apps/main/models/{MODEL}/versions/{{version}}/outputs", outputs),
        ],
    )


def _one(state: FakeState, item: dict, version: str, max_concepts: int, min_value: float) -> dict:
    model = {"id": MODEL, "model_version": {"id": version}}
    try:
        image = base64.b64decode(item["data"]["image"]["base64"], validate=True)
        Image.open(io.BytesIO(image)).verify()
    except (KeyError, TypeError, binascii.Error, UnidentifiedImageError, OSError, ValueError):
        return {"status": {"code": 30002, "description": "Download failed"}, "model": model}
    if state.image_fails():
        if not state.faults.image_error_retryable:  # MODEL_UNTRAINED: a retry cannot fix it
            return {"status": {"code": 21102, "description": "Model untrained"}, "model": model}
        # MODEL_BUSY_PLEASE_RETRY or an internal error, alternately
        code = 21354 if state.images % 2 else 99009
        return {"status": {"code": code, "description": "Try again"}, "model": model}
    guesses = sorted(state.labeler.top(image, k=max_concepts), key=lambda g: -g.score)
    concepts = [
        {"id": g.ident, "name": g.name, "value": g.score, "app_id": "main"}
        for g in guesses
        if g.score >= min_value
    ]
    return {
        "status": {"code": 10000, "description": "Ok"},
        "model": model,
        "data": {"concepts": concepts},
    }


if __name__ == "__main__":
    run_standalone(build, "fake Clarifai")
