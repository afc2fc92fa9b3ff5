"""Fake Triton/KServe server: Open Inference Protocol v2 REST ``/v2/models/{model}/infer``."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from service.testing.fakes.common import MALFORMED, FakeState, fake_app, misbehave, run_standalone
from service.testing.fakes.labeler import PixelLabeler

LABELS = list(PixelLabeler.NAMES)


# How a KServe/Triton server (or the auth proxy in front of it) refuses a token.
REFUSALS = ("401", "403", "401-text")


def build(state: FakeState, model: str | tuple[str, ...] = "colours") -> Starlette:
    models = (model,) if isinstance(model, str) else model

    labeler = PixelLabeler()

    async def infer(request: Request) -> Response:
        state.calls += 1
        if request.path_params["model"] not in models:
            return JSONResponse(
                {"error": f"Request for unknown model: '{request.path_params['model']}'"}, 400
            )
        if state.faults.refusal:  # an auth proxy in front of the server: JSON or plain text
            status = int(state.faults.refusal.split("-")[0])
            if state.faults.refusal.endswith("-text"):
                return PlainTextResponse("Unauthorized", status)
            return JSONResponse({"error": "unauthorized"}, status)
        if state.keys and request.headers.get("authorization") not in {
            f"Bearer {k}" for k in state.keys
        }:
            return JSONResponse({"error": "unauthorized"}, 401)
        fault = await misbehave(state)
        if fault == "throttle":
            return JSONResponse({"error": "too many requests"}, 429)
        if fault == "error":
            return JSONResponse({"error": "internal error"}, 500)
        if fault == "malformed":
            return MALFORMED
        body = await request.json()
        tensor = body["inputs"][0]
        if tensor.get("datatype") != "UINT8" or len(tensor.get("shape", [])) != 4:
            return JSONResponse({"error": "expected one UINT8 [B, H, W, 3] input"}, 400)
        pixels = np.asarray(tensor["data"], dtype=np.uint8).reshape(tensor["shape"])
        scores = np.zeros((len(pixels), len(LABELS)), dtype=np.float32)
        for row, image in enumerate(pixels):
            buffer = io.BytesIO()
            Image.fromarray(image).save(buffer, format="PNG")
            for guess in labeler.top(buffer.getvalue(), k=len(LABELS)):
                scores[row, int(guess.ident[1:])] = guess.score
        state.images += len(pixels)
        return JSONResponse(
            {
                "model_name": model,
                "model_version": request.path_params.get("version", "1"),
                "outputs": [
                    {
                        "name": "scores",
                        "shape": list(scores.shape),
                        "datatype": "FP32",
                        "data": scores.reshape(-1).tolist(),
                    }
                ],
            }
        )

    return fake_app(
        state,
        [
            ("/v2/models/{model}/infer", infer),
            ("/v2/models/{model}/versions/{version}/infer", infer),
        ],
    )


if __name__ == "__main__":
    run_standalone(build, "fake KServe / Triton (Open Inference Protocol v2)")
