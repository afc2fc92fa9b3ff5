"""The REST gateway, through the ASGI transport and through a real uvicorn server."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
from asgi_lifespan import LifespanManager
from PIL import Image

from denoisers.checkpoints import save_checkpoint
from denoisers.classifiers import cifar_resnet
from service.api.app import create_app
from service.api.auth import hash_api_key
from service.config import ApiKey, Settings
from service.testing.live_server import free_port, live_server

pytestmark = pytest.mark.anyio

KEY = "dsk_test_key_0123456789"
DSMOOTH = str(Path(sys.executable).with_name("dsmooth"))


@pytest.fixture(scope="module")
def classifier_spec(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("models") / "r20.safetensors"
    save_checkpoint(path, cifar_resnet(20).state_dict(), {"architecture": "cifar-resnet20"})
    return f"cifar-resnet20:{path}"


@pytest.fixture
def settings_for(classifier_spec: str) -> Callable[..., Settings]:
    def make(**overrides: object) -> Settings:
        values: dict[str, object] = {
            "environment": "development",
            "classifier": classifier_spec,
            "denoiser": "none",
            "device": "cpu",
        }
        return Settings(**{**values, **overrides})  # type: ignore[arg-type]

    return make


@pytest.fixture(params=["asgi", "uvicorn"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def _client(settings: Settings, transport: str) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    if transport == "asgi":
        async with LifespanManager(app) as manager:
            asgi = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=asgi, base_url="http://asgi") as client:
                yield client
    else:
        with live_server(app) as url:
            async with httpx.AsyncClient(base_url=url, timeout=60) as client:
                yield client


@pytest.fixture
async def client(
    settings_for: Callable[..., Settings], transport: str
) -> AsyncIterator[httpx.AsyncClient]:
    async for c in _client(settings_for(), transport):
        yield c


@pytest.fixture
async def keyed_client(settings_for: Callable[..., Settings]) -> AsyncIterator[httpx.AsyncClient]:
    keys = [
        ApiKey(name="alice", sha256=hash_api_key(KEY), daily_queries=1500),
        ApiKey(name="bob", sha256=hash_api_key(KEY + "-bob")),
    ]
    async for c in _client(settings_for(api_keys=keys, secret="s" * 32), "asgi"):
        yield c


def _png(image: Image.Image, **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **kwargs)
    return buffer.getvalue()


def _photo(seed: int = 0, size: int = 32) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    return _png(Image.fromarray(pixels))


def _upload(image: bytes, **fields: object) -> dict[str, object]:
    return {
        "files": {"image": ("image.png", image, "image/png")},
        "data": {k: str(v) for k, v in fields.items()},
    }


@pytest.mark.slow
async def test_certify_by_upload_and_by_json_agree_and_repeat_from_the_store(
    client: httpx.AsyncClient,
) -> None:
    image = _photo()
    first = await client.post("/v1/certify", **_upload(image, n0=50, n=400, sigma=0.25))
    assert first.status_code == 200, first.text
    body = {"image": base64.b64encode(image).decode(), "n0": 50, "n": 400, "sigma": 0.25}
    second = await client.post("/v1/certify", json=body)
    assert second.status_code == 200, second.text
    a, b = first.json(), second.json()
    assert a["top_counts"] == b["top_counts"] and a["p_lower"] == b["p_lower"]
    assert a["queries"] == {"total": 450, "cached": 0, "failed": 0}
    assert b["queries"] == {"total": 450, "cached": 450, "failed": 0}
    assert a["request_id"] != b["request_id"]
    assert {"label", "abstained", "radius", "classifier", "denoiser", "timings"} <= a.keys()


@pytest.mark.slow
async def test_predict_answers_with_a_p_value(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/predict", **_upload(_photo(1), n=200))
    assert response.status_code == 200, response.text
    assert {"p_value", "abstained", "label"} <= response.json().keys()


async def test_a_transparent_image_is_certified_with_a_warning_that_says_so(
    client: httpx.AsyncClient,
) -> None:
    pixels = np.random.default_rng(3).integers(0, 256, (32, 32, 4), dtype=np.uint8)
    see_through = await client.post("/v1/certify", **_upload(_png(Image.fromarray(pixels)), n=20))
    opaque = await client.post("/v1/certify", **_upload(_photo(3), n=20))  # control
    assert see_through.status_code == opaque.status_code == 200, see_through.text
    assert any("composited onto white" in w for w in see_through.json()["warnings"])
    assert not any("composited" in w for w in opaque.json()["warnings"])


async def test_certificates_and_job_results_verify_with_the_published_keys(
    client: httpx.AsyncClient,
) -> None:
    from service.core.signing import verify_certificate

    keys = (await client.get("/v1/signing-keys")).json()
    assert keys["keys"][0]["kty"] == "OKP" and keys["keys"][0]["crv"] == "Ed25519"
    direct = (await client.post("/v1/certify", **_upload(_photo(5), n0=20, n=100))).json()
    assert verify_certificate(direct, keys) == []
    created = await client.post("/v1/jobs", **_upload(_photo(5), n0=20, n=200))
    job_url = created.headers["location"]
    for _ in range(600):
        job = (await client.get(job_url)).json()
        if job["state"] in ("succeeded", "failed"):
            break
        await asyncio.sleep(0.05)
    assert job["state"] == "succeeded", job
    assert verify_certificate(job["result"], keys) == []
    # Both read streams of one image: the ledger counts them in order.
    assert (direct["ledger"]["stream"], job["result"]["ledger"]["stream"]) == (1, 2)


async def test_an_unknown_model_is_a_422_that_names_the_choices(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/certify", **_upload(_photo(), classifier="resnet9000"))
    assert response.status_code == 422 and response.json()["type"] == "/problems/unknown-classifier"
    detail = response.json()["detail"]
    assert "'resnet9000'" in detail and "google" in detail and "cifar-resnet20" in detail
    response = await client.post("/v1/certify", **_upload(_photo(), denoiser="dncnn-9000"))
    assert response.status_code == 422 and "unet-cifar10-s0.25-mse" in response.json()["detail"]


async def test_catalog_lists_models_with_versions(client: httpx.AsyncClient) -> None:
    classifiers = (await client.get("/v1/classifiers")).json()
    denoisers = (await client.get("/v1/denoisers")).json()
    default = next(c for c in classifiers if c["default"])
    assert default["name"] == "cifar-resnet20" and default["version"].startswith("sha256:")
    assert default["credentials_configured"] is True
    assert any(d["name"] == "none" and d["default"] for d in denoisers)


async def test_health_readiness_and_metrics(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok", "checks": {}}
    for _ in range(600):  # the models warm up in the background after start-up
        ready = await client.get("/readyz")
        if ready.status_code == 200:
            break
        await asyncio.sleep(0.1)
    assert ready.status_code == 200 and ready.json()["checks"] == {
        "models": True,
        "vote_store": True,
    }
    await client.post("/v1/certify", **_upload(_photo(2), n0=10, n=100))
    metrics = (await client.get("/metrics")).text
    assert 'dsmooth_http_requests_total{method="POST",route="/v1/certify",status="200"} 1.0' in (
        metrics
    )
    assert 'dsmooth_classifier_queries_total{classifier="cifar-resnet20",outcome="answered"}' in (
        metrics
    )


def _events(text: str) -> list[tuple[str, dict]]:
    events, name = [], ""
    for line in text.splitlines():
        if line.startswith("event:"):
            name = line.removeprefix("event:").strip()
        elif line.startswith("data:"):
            events.append((name, json.loads(line.removeprefix("data:"))))
    return events


@pytest.mark.slow
async def test_a_job_is_followed_over_sse_to_its_certificate(client: httpx.AsyncClient) -> None:
    created = await client.post("/v1/jobs", **_upload(_photo(3), n0=100, n=2500, sigma=0.5))
    assert created.status_code == 202, created.text
    job = created.json()
    assert created.headers["location"] == f"/v1/jobs/{job['id']}"
    assert job["progress"]["planned"] == 2600
    async with client.stream("GET", f"/v1/jobs/{job['id']}/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        events = _events((await stream.aread()).decode())
    assert events[-1][0] == "end" and events[-1][1]["state"] == "succeeded"
    done = [e["progress"]["done"] for _, e in events]
    assert done == sorted(done) and done[-1] == 2600
    final = (await client.get(f"/v1/jobs/{job['id']}")).json()
    assert final["result"]["n"] == 2500 and final["result"]["queries"]["total"] == 2600


@pytest.mark.slow
async def test_a_cancelled_job_stops_sampling(client: httpx.AsyncClient) -> None:
    created = await client.post("/v1/jobs", **_upload(_photo(4), n0=100, n=500_000))
    job_id = created.json()["id"]
    for _ in range(600):  # until the first chunk is done
        if (await client.get(f"/v1/jobs/{job_id}")).json()["progress"]["done"] > 0:
            break
        await asyncio.sleep(0.05)
    cancelled = await client.delete(f"/v1/jobs/{job_id}")
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    done = cancelled.json()["progress"]["done"]
    await asyncio.sleep(1.0)
    later = (await client.get(f"/v1/jobs/{job_id}")).json()
    assert later["state"] == "cancelled" and later["progress"]["done"] == done < 500_100
    assert later["result"] is None


def _png_bomb(side: int = 20_000) -> bytes:
    """A valid 1-bit PNG of side x side pixels: tiny on the wire, huge once decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    row = b"\x00" * (1 + side // 8)
    compressor = zlib.compressobj(9)
    data = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )


BAD_INPUTS: list[tuple[str, Callable[[], dict[str, object]], int, str]] = [
    ("zero bytes", lambda: _upload(b""), 422, "empty"),
    ("truncated PNG", lambda: _upload(_photo(size=64)[:300]), 422, "could not be decoded"),
    ("a text file", lambda: _upload(b"hello, world\n"), 415, "accepted formats"),
    ("a 20000x20000 PNG bomb", lambda: _upload(_png_bomb()), 413, "over 16,000,000 pixels"),
    ("n = 10^9", lambda: _upload(_photo(), n=10**9), 422, "n: Input should be less than"),
    ("negative sigma", lambda: _upload(_photo(), sigma=-0.25), 422, "sigma: Input should be"),
    ("alpha >= 0.5", lambda: _upload(_photo(), alpha=0.5), 422, "alpha: Input should be less"),
    ("unknown classifier", lambda: _upload(_photo(), classifier="gpt-vision"), 422, "gpt-vision"),
    ("unknown field", lambda: _upload(_photo(), sigmaa=0.3), 422, "sigmaa: Extra inputs"),
    ("n0 = 0, noisy by default", lambda: _upload(_photo(), n0=0), 422, "n0 must be at least 1"),
    ("n0 + n over the cap", lambda: _upload(_photo(), n=1_000_000), 422, "cap of 1,000,000"),
    ("over the request budget", lambda: _upload(_photo(), n=900, budget=500), 422, "budget"),
    ("no image field", lambda: {"data": {"n": "100"}, "files": {"x": ("x", b"1")}}, 422, "image"),
    ("bad base64", lambda: {"json": {"image": "%%%"}}, 422, "not valid base64"),
    ("malformed JSON", lambda: {"content": b"{", "headers": _json}, 400, "not valid JSON"),
    ("plain text body", lambda: {"content": b"x", "headers": _text}, 415, "multipart/form-data"),
]
_json = {"content-type": "application/json"}
_text = {"content-type": "text/plain"}


@pytest.mark.parametrize(
    ("request_kwargs", "status", "message"),
    [pytest.param(make, status, message, id=name) for name, make, status, message in BAD_INPUTS],
)
@pytest.mark.slow
async def test_bad_input_gets_a_problem_document(
    client: httpx.AsyncClient, request_kwargs: Callable, status: int, message: str
) -> None:
    response = await client.post("/v1/certify", **request_kwargs())
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == status and problem["instance"] == "/v1/certify"
    assert message in problem["detail"], problem


def _cmyk_jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("CMYK", (32, 32), (0, 255, 0, 0)).save(buffer, format="JPEG")
    return buffer.getvalue()


def _palette_with_alpha() -> bytes:
    image = Image.new("P", (32, 32), 0)
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    image.info["transparency"] = 0
    return _png(image, transparency=0)


def _sixteen_bit_png() -> bytes:
    return _png(Image.fromarray(np.full((32, 32), 40000, np.uint16)))


def _animated_gif() -> bytes:
    frames = [Image.new("RGB", (32, 32), (255, 0, 0)), Image.new("RGB", (32, 32), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    return buffer.getvalue()


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(_cmyk_jpeg, id="CMYK JPEG"),
        pytest.param(
            lambda: _png(Image.fromarray(np.full((32, 32), 40000, np.uint16))), id="16-bit"
        ),
        pytest.param(_palette_with_alpha, id="palette PNG with alpha"),
        pytest.param(_animated_gif, id="animated GIF"),
    ],
)
@pytest.mark.slow
async def test_unusual_but_valid_images_are_certified(
    client: httpx.AsyncClient, make: Callable[[], bytes]
) -> None:
    response = await client.post("/v1/certify", **_upload(make(), n0=10, n=100))
    assert response.status_code == 200, response.text


async def test_uploads_over_the_limit_are_refused(
    settings_for: Callable[..., Settings], transport: str
) -> None:
    async for client in _client(settings_for(max_upload_bytes=2_000), transport):
        multipart = await client.post("/v1/certify", **_upload(_photo(size=64)))
        assert multipart.status_code == 413 and "2,000 bytes" in multipart.json()["detail"]
        big = {"image": base64.b64encode(b"x" * 10_000).decode()}
        declared = await client.post("/v1/certify", json=big)
        assert declared.status_code == 413


async def test_keys_are_required_and_accepted_in_both_headers(
    keyed_client: httpx.AsyncClient,
) -> None:
    missing = await keyed_client.get("/v1/classifiers")
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert missing.headers["content-type"] == "application/problem+json"
    wrong = await keyed_client.get("/v1/classifiers", headers={"X-API-Key": "nope"})
    assert wrong.status_code == 401 and "not valid" in wrong.json()["detail"]
    for headers in ({"X-API-Key": KEY}, {"Authorization": f"Bearer {KEY}"}):
        assert (await keyed_client.get("/v1/classifiers", headers=headers)).status_code == 200
    mixed = {"Authorization": "Basic Zm9vOmJhcg==", "X-API-Key": KEY}  # a bad header decides
    assert (await keyed_client.get("/v1/classifiers", headers=mixed)).status_code == 401
    assert (await keyed_client.get("/healthz")).status_code == 200


@pytest.mark.slow
async def test_the_daily_budget_of_a_key_is_enforced(keyed_client: httpx.AsyncClient) -> None:
    headers = {"X-API-Key": KEY}
    first = await keyed_client.post("/v1/certify", headers=headers, **_upload(_photo(5), n=1000))
    assert first.status_code == 200
    second = await keyed_client.post("/v1/certify", headers=headers, **_upload(_photo(6), n=1000))
    assert second.status_code == 429
    assert "400 left today (of 1,500)" in second.json()["detail"]


async def test_jobs_of_another_key_are_invisible(keyed_client: httpx.AsyncClient) -> None:
    alice, bob = {"X-API-Key": KEY}, {"X-API-Key": KEY + "-bob"}
    job = (await keyed_client.post("/v1/jobs", headers=alice, **_upload(_photo(7), n=100))).json()
    assert (await keyed_client.get(f"/v1/jobs/{job['id']}", headers=bob)).status_code == 404
    assert (await keyed_client.delete(f"/v1/jobs/{job['id']}", headers=bob)).status_code == 404


async def test_openapi_has_stable_operation_ids_bodies_and_problem_models(
    client: httpx.AsyncClient,
) -> None:
    spec = (await client.get("/openapi.json")).json()
    ids = {op["operationId"] for path in spec["paths"].values() for op in path.values()}
    assert ids >= {"certify", "predict", "create_job", "get_job", "stream_job_events",
                   "cancel_job", "list_classifiers", "list_denoisers", "healthz", "readyz",
                   "metrics"}  # fmt: skip
    certify = spec["paths"]["/v1/certify"]["post"]
    content = certify["requestBody"]["content"]
    assert set(content) == {"application/json", "multipart/form-data"}
    assert content["application/json"]["example"]["n"] == 1000
    form = spec["components"]["schemas"]["CertifyForm"]
    assert form["properties"]["image"]["format"] == "binary"
    assert "CertifyRequest" in spec["components"]["schemas"]
    problem = certify["responses"]["422"]["content"]["application/problem+json"]
    assert problem["schema"]["$ref"].endswith("/Problem") and problem["example"]["status"] == 422
    assert "/problems/unknown-classifier" in certify["responses"]["422"]["description"]
    assert "HTTPBearer" in spec["components"]["securitySchemes"]
    # Only the statuses an operation can answer with.
    statuses = {
        (path, method): set(op["responses"])
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
    }
    assert statuses["/v1/classifiers", "get"] == {"200", "401", "429", "503"}
    assert statuses["/v1/jobs/{job_id}", "get"] == {"200", "401", "404", "429", "503"}
    assert statuses["/v1/jobs", "post"] == {"202", "400", "401", "413", "415", "422", "429", "503"}
    assert statuses["/v1/certify", "post"] == {
        "200", "400", "401", "413", "415", "422", "429", "502", "503",
    }  # fmt: skip
    assert statuses["/healthz", "get"] == {"200"}
    assert "Location" in spec["paths"]["/v1/jobs"]["post"]["responses"]["202"]["headers"]
    events = spec["paths"]["/v1/jobs/{job_id}/events"]["get"]["responses"]["200"]["content"]
    assert events["text/event-stream"]["example"]["event"] == "progress"
    # Every request and response body has an example (in its media type or its schema).
    schemas = spec["components"]["schemas"]
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            bodies = [*op.get("requestBody", {}).get("content", {}).values()]
            for response in op["responses"].values():
                bodies += response.get("content", {}).values()
            for body in bodies:
                ref = body.get("schema", {}).get("$ref", "")
                items = body.get("schema", {}).get("items", {}).get("$ref", "")
                named = schemas.get((ref or items).rsplit("/", 1)[-1], {})
                has = "example" in body or "examples" in named
                assert has or path == "/metrics", (path, method)


async def test_secret_and_keys_never_appear_in_answers(
    keyed_client: httpx.AsyncClient, settings_for: Callable[..., Settings]
) -> None:
    response = await keyed_client.get("/v1/classifiers", headers={"X-API-Key": KEY})
    spec = (await keyed_client.get("/openapi.json")).text
    for text in (response.text, spec):
        assert KEY not in text and hash_api_key(KEY) not in text
        assert settings_for().secret.get_secret_value() not in text


@pytest.mark.subprocess
@pytest.mark.slow
def test_serve_prints_a_curl_example_that_works(classifier_spec: str, tmp_path: Path) -> None:
    """What `make run` does: start `dsmooth serve`, then run the curl line it prints."""
    image = tmp_path / "example.png"
    image.write_bytes(_photo(8))
    port = free_port()
    env = {**os.environ, "DSMOOTH_CLASSIFIER": classifier_spec, "DSMOOTH_DENOISER": "none"}
    command = [DSMOOTH, "serve", "--port", str(port), "--example", str(image)]
    server = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stderr is not None
        curl = next(line.strip() for line in server.stderr if line.strip().startswith("curl "))
        threading.Thread(target=server.stderr.read, daemon=True).start()  # keep the pipe drained
        for _ in range(600):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        result = subprocess.run(curl, shell=True, capture_output=True, text=True, timeout=120)
        certificate = json.loads(result.stdout)
        assert certificate["n"] == 1000 and certificate["classifier"]["name"] == "cifar-resnet20"
    finally:
        server.terminate()
        server.wait(timeout=30)
        assert server.stderr is not None
        server.stderr.close()


@pytest.mark.slow
async def test_the_default_denoiser_follows_the_requested_sigma(
    settings_for: Callable[..., Settings],
) -> None:
    settings = settings_for(denoiser="unet-cifar10-s0.25-mse")
    async for client in _client(settings, "asgi"):
        names = {}
        for sigma in (0.12, 0.25, 0.5):
            response = await client.post(
                "/v1/certify", **_upload(_photo(4), n0=5, n=20, sigma=sigma)
            )
            assert response.status_code == 200, response.text
            names[sigma] = response.json()["denoiser"]["name"]
            assert response.json()["warnings"] == []  # each trained for its sigma
        chosen = await client.post(
            "/v1/certify", **_upload(_photo(4), n0=5, n=20, sigma=0.12, denoiser="none")
        )
        assert chosen.json()["denoiser"]["name"] == "none"  # a named denoiser is kept
        # None trained for 0.3: never the default quietly (tests/test_domain.py has the rest).
        untrained = await client.post("/v1/certify", **_upload(_photo(4), n0=5, n=20, sigma=0.3))
        assert untrained.status_code == 422, untrained.text
    assert names == {
        0.12: "unet-cifar10-s0.12-mse",  # the shipped sibling trained for 0.12
        0.25: "unet-cifar10-s0.25-mse",
        0.5: "unet-cifar10-s0.5-mse",
    }
