"""The demo page at ``/`` and its assets (no CDN: it works offline)."""

from __future__ import annotations

import io
from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, Response

from service.examples import EXAMPLES, example_image

router = APIRouter(include_in_schema=False)

WEB = Path(__file__).resolve().parents[1] / "web"
ASSETS = {"app.js": "text/javascript", "style.css": "text/css"}


@router.get("/")
async def page() -> FileResponse:
    return FileResponse(WEB / "index.html", media_type="text/html")


@router.get("/demo/{asset}")
async def asset(asset: str) -> FileResponse:
    if asset not in ASSETS:
        raise HTTPException(404, f"no demo asset {asset!r}")
    return FileResponse(WEB / asset, media_type=ASSETS[asset])


@router.get("/demo/samples/{name}.png")
async def sample(name: str, size: int = 32) -> Response:
    """A sample photo from scikit-image, square, ``size`` pixels (32 for CIFAR models)."""
    if name not in EXAMPLES or not 8 <= size <= 512:
        raise HTTPException(404, f"no sample {name!r} at {size} px")
    buffer = io.BytesIO()
    example_image(name, size).save(buffer, format="PNG")
    return Response(buffer.getvalue(), media_type="image/png")
