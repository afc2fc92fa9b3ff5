"""Keys, rate limits, CORS, URL inputs, and secrets that must never leak."""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import numpy as np
import pytest
from asgi_lifespan import LifespanManager
from PIL import Image
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

from service.api.app import create_app
from service.api.auth import hash_api_key
from service.config import ApiKey, Settings
from service.testing.fakes import azure as fake_azure
from service.testing.fakes import google as fake_google
from service.testing.fakes.common import FakeState
from service.testing.live_server import live_server

pytestmark = pytest.mark.anyio
KEY = "dsk_security_test_key_42"
SECRET = "an-hmac-secret-that-must-never-leak-0123"
VENDOR_KEY = "vendor-key-that-must-never-leak"


@asynccontextmanager
async def client(**overrides: object) -> AsyncIterator[httpx.AsyncClient]:
    values: dict[str, object] = {
        "denoiser": "none",
        "secret": SECRET,
        "api_keys": [ApiKey(name="ci", sha256=hash_api_key(KEY))],
    }
    app = create_app(Settings(**{**values, **overrides}))  # type: ignore[arg-type]
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://x", headers={"X-API-Key": KEY}
        ) as c:
            yield c


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


async def test_each_key_is_rate_limited() -> None:
    async with client(requests_per_minute_per_key=3) as c:
        answers = [await c.get("/v1/denoisers") for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[-1].headers["retry-after"] == "20"
    assert answers[-1].headers["content-type"] == "application/problem+json"


async def test_cors_is_closed_unless_configured() -> None:
    preflight = {
        "Origin": "https://evil.example",
        "Access-Control-Request-Method": "POST",
    }
    async with client() as c:
        closed = await c.options("/v1/certify", headers=preflight)
    async with client(cors_origins=["https://app.example"]) as c:
        other = await c.options("/v1/certify", headers=preflight)
        allowed = await c.options(
            "/v1/certify", headers={**preflight, "Origin": "https://app.example"}
        )
    assert "access-control-allow-origin" not in closed.headers
    assert "access-control-allow-origin" not in other.headers
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"


@pytest.mark.subprocess
@pytest.mark.slow
async def test_image_urls_are_never_fetched() -> None:
    hits: list[str] = []

    async def photo(request: object) -> Response:
        hits.append("fetched")
        return Response(_png(), media_type="image/png")

    with live_server(Starlette(routes=[Route("/cat.png", photo)])) as url:
        async with client() as c:
            answer = await c.post("/v1/certify", json={"image": f"{url}/cat.png", "n": 100})
    assert answer.status_code == 422 and "base64" in answer.json()["detail"]
    assert hits == []


@pytest.mark.subprocess
@pytest.mark.slow
async def test_secrets_never_appear_in_logs_answers_or_errors(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.DEBUG)
    refusing = FakeState()  # knows only "good-key": the Azure key below is refused
    accepting = FakeState(keys={VENDOR_KEY})  # Google takes it (and must not log it)
    with (
        live_server(fake_azure.build(refusing)) as azure,
        live_server(fake_google.build(accepting)) as google,
    ):
        monkeypatch.setenv("DSMOOTH_AZURE_ENDPOINT", azure)
        monkeypatch.setenv("DSMOOTH_AZURE_KEY", VENDOR_KEY)
        monkeypatch.setenv("DSMOOTH_GOOGLE_ENDPOINT", google)
        monkeypatch.setenv("DSMOOTH_GOOGLE_API_KEY", VENDOR_KEY)
        async with client() as c:
            texts = [
                (await c.post("/v1/certify", files={"image": ("x.png", _png())},
                              data={"classifier": "azure", "n": "20"})).text,
                (await c.get("/v1/classifiers", headers={"X-API-Key": KEY + "x"})).text,
                (await c.post("/v1/certify", json={"image": base64.b64encode(_png()).decode(),
                                                   "n": 100})).text,
                (await c.get("/openapi.json")).text,
                (await c.get("/metrics")).text,
                (await c.post("/v1/certify", files={"image": ("x.png", _png())},
                              data={"classifier": "google", "n": "16"})).text,
            ]  # fmt: skip
    assert "credentials refused" in texts[0]  # the failure is explained ...
    assert '"classifier":{"name":"google"' in texts[-1] and accepting.images == 17
    everything = "\n".join(texts) + caplog.text
    for secret in (VENDOR_KEY, KEY, SECRET, hash_api_key(KEY)):  # ... without the secrets
        assert secret not in everything
