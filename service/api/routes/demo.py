"""The demo page at ``/``, the interactive docs at ``/docs`` and ``/redoc``, and their assets
(no CDN: they work offline; Swagger UI and ReDoc come from the ``fastapi-offline`` package)."""

from __future__ import annotations

import io
from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, Response

from service.examples import EXAMPLES, example_image

router = APIRouter(include_in_schema=False)

WEB = Path(__file__).resolve().parents[1] / "web"
ASSETS = {"app.js": "text/javascript", "style.css": "text/css"}
# Swagger UI and ReDoc, as files of an installed package.
DOCS = Path(str(files("fastapi_offline") / "static"))
DOCS_ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "text/javascript",
    "favicon.png": "image/png",
}


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


def _title(request: Request) -> str:
    return str(request.app.title)


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url=str(request.app.openapi_url),
        title=f"{_title(request)} — Swagger UI",
        swagger_js_url="/docs/assets/swagger-ui-bundle.js",
        swagger_css_url="/docs/assets/swagger-ui.css",
        swagger_favicon_url="/docs/assets/favicon.png",
    )


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    return get_redoc_html(
        openapi_url=str(request.app.openapi_url),
        title=f"{_title(request)} — ReDoc",
        redoc_js_url="/docs/assets/redoc.standalone.js",
        redoc_favicon_url="/docs/assets/favicon.png",
        with_google_fonts=False,
    )


@router.get("/docs/assets/{asset}")
async def docs_asset(asset: str) -> FileResponse:
    if asset not in DOCS_ASSETS:
        raise HTTPException(404, f"no docs asset {asset!r}")
    return FileResponse(DOCS / asset, media_type=DOCS_ASSETS[asset])
