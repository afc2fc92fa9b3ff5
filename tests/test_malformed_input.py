"""No 5xx from any input: malformed bodies, headers and fields get a short 4xx problem document,
OPTIONS names the methods, and a backend outage's 503 names no internal address (#19)."""

from __future__ import annotations

import base64
import io
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import numpy as np
import pytest
from asgi_lifespan import LifespanManager
from PIL import Image

from service.api.app import create_app
from service.api.problems import MAX_DETAIL_CHARS, MAX_ERRORS, MAX_VALUE_CHARS
from service.config import Settings
from service.core.signing import new_private_key_pem

pytestmark = pytest.mark.anyio

PROBLEM = "application/problem+json"
JSON = {"content-type": "application/json"}
SIGNING_KEY = new_private_key_pem().decode()
DEEP = 10_000
# The longest a problem document may be: detail, instance and MAX_ERRORS short field errors.
MAX_BODY_CHARS = MAX_DETAIL_CHARS + (MAX_ERRORS + 1) * (2 * MAX_VALUE_CHARS + 40) + 500


@asynccontextmanager
async def client(**overrides: object) -> AsyncIterator[httpx.AsyncClient]:
    values: dict[str, object] = {"denoiser": "none", "signing_key": SIGNING_KEY}
    app = create_app(Settings(**{**values, **overrides}))  # type: ignore[arg-type]
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://x") as c:
            yield c


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def c() -> AsyncIterator[httpx.AsyncClient]:
    """One app for the tests that only send it bad input (it keeps no state between them)."""
    async with client() as c:
        yield c


def _png() -> str:
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def _short_problem(response: httpx.Response, status: int) -> dict[str, object]:
    """The answer is a problem document of ``status``, short whatever the input's size."""
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"] == PROBLEM
    assert len(response.text) < MAX_BODY_CHARS
    problem = response.json()
    assert problem["status"] == status
    assert len(problem["detail"]) <= MAX_DETAIL_CHARS
    return dict(problem)


def _nested(depth: int) -> str:
    return '{"k":' * depth + '"v"' + "}" * depth


async def test_a_body_that_is_not_utf8_is_a_400(c: httpx.AsyncClient) -> None:
    body = b'{"image": "\xff\xfe", "classifier": "\xc3\x28"}'
    response = await c.post("/v1/certify", content=body, headers=JSON)
    problem = _short_problem(response, 400)
    assert problem["type"] == "/problems/malformed-json"


@pytest.mark.parametrize("body", ["[" * DEEP + "]" * DEEP, _nested(DEEP)], ids=["array", "object"])
async def test_a_body_nested_10000_deep_is_a_400(c: httpx.AsyncClient, body: str) -> None:
    response = await c.post("/v1/certify", content=body, headers=JSON)
    problem = _short_problem(response, 400)
    assert problem["type"] == "/problems/malformed-json"
    assert "recursion" in str(problem["detail"])


async def test_a_label_map_nested_10000_deep_is_a_4xx(c: httpx.AsyncClient) -> None:
    body = f'{{"image": "{_png()}", "n": 10, "n0": 10, "label_map": {_nested(DEEP)}}}'
    response = await c.post("/v1/predict", content=body, headers=JSON)
    _short_problem(response, 400)


async def test_a_label_map_form_field_nested_10000_deep_is_a_422(c: httpx.AsyncClient) -> None:
    files = {"image": ("a.png", base64.b64decode(_png()), "image/png")}
    for label_map in (_nested(DEEP), "[" * DEEP + "]" * DEEP):
        response = await c.post("/v1/predict", files=files, data={"label_map": label_map})
        _short_problem(response, 422)


async def test_a_label_map_is_at_most_1000_entries_of_short_keys(c: httpx.AsyncClient) -> None:
    """It is part of every certificate: a client may not grow it (or the ledger) without end."""
    image = {"image": _png(), "n": 10, "n0": 10}
    for label_map in ({str(i): "a" for i in range(1001)}, {"k" * 201: "a"}, {"": "a"}):
        response = await c.post("/v1/certify", json={**image, "label_map": label_map})
        _short_problem(response, 422)
        assert "label_map" in response.text
    # Control: 1,000 entries of 200 characters pass validation, to be refused only because a
    # local model's classes take no map (never silently certified without it).
    accepted = {f"{i:0200d}": "a" for i in range(1000)}
    response = await c.post("/v1/certify", json={**image, "label_map": accepted})
    assert response.status_code == 422 and "vendors' classifiers only" in response.text


async def test_nan_and_infinity_are_not_json(c: httpx.AsyncClient) -> None:
    for literal in ("NaN", "Infinity", "-Infinity"):
        body = f'{{"image": "{_png()}", "alpha": {literal}}}'
        response = await c.post("/v1/predict", content=body, headers=JSON)
        _short_problem(response, 400)


@pytest.mark.parametrize(
    ("field", "value"),
    [("target_radius", "1e400"), ("tolerance", "1e400"), ("sigma", "-1e400"), ("alpha", "5e-324")],
)
async def test_overflowing_and_underflowing_numbers_are_a_422(
    c: httpx.AsyncClient, field: str, value: str
) -> None:
    """1e400 parses to an infinity (a certificate holding one cannot be signed) and an alpha of
    5e-324 underflows to 0 once the ledger divides it: both were a 500."""
    body = f'{{"image": "{_png()}", "n": 20, "n0": 10, "mode": "sequential", "{field}": {value}}}'
    response = await c.post("/v1/certify", content=body, headers=JSON)
    problem = _short_problem(response, 422)
    assert problem["errors"][0]["field"] == field  # type: ignore[index]


async def test_the_smallest_alpha_certifies_at_later_ledger_positions() -> None:
    body = f'{{"image": "{_png()}", "n": 40, "n0": 10, "alpha": 1e-12, '
    plans = ('"mode": "fixed"}', '"mode": "sequential", "target_radius": 0.25}')
    async with client() as c:  # its own ledger: the image's first streams
        responses = [await c.post("/v1/certify", content=body + p, headers=JSON) for p in plans]
    for stream, response in enumerate(responses, 1):
        assert response.status_code == 200, response.text[:500]
        ledger = response.json()["ledger"]
        assert ledger["stream"] == stream
        assert 0 < ledger["alpha_spent"] < 1e-12


async def test_a_5_mb_classifier_name_is_not_echoed(c: httpx.AsyncClient) -> None:
    name = "x" * 5_000_000
    response = await c.post("/v1/certify", json={"image": _png(), "classifier": name})
    problem = _short_problem(response, 422)
    assert problem["type"] == "/problems/unknown-classifier"
    assert "x" * (MAX_VALUE_CHARS + 1) not in response.text
    assert "\u2026" in str(problem["detail"])  # truncated, with an ellipsis
    assert "cifar10-resnet20" in str(problem["detail"])  # the hint survives


async def test_long_field_names_and_many_errors_are_cut_short(c: httpx.AsyncClient) -> None:
    key = "k" * 100_000
    fields: dict[str, object] = {"image": _png(), "label_map": {key: 1}}
    fields.update({f"unknown_{i}": i for i in range(1_000)})
    response = await c.post("/v1/certify", json=fields)
    problem = _short_problem(response, 422)
    errors = problem["errors"]
    assert isinstance(errors, list)
    assert len(errors) == MAX_ERRORS
    assert all(len(e["field"]) <= MAX_VALUE_CHARS for e in errors)
    assert "more" in str(problem["detail"])
    assert key not in response.text


async def test_a_long_content_type_and_path_are_cut_short(c: httpx.AsyncClient) -> None:
    content_type = "text/" + "y" * 50_000
    response = await c.post("/v1/certify", content=b"x", headers={"content-type": content_type})
    _short_problem(response, 415)
    assert "y" * (MAX_VALUE_CHARS + 1) not in response.text

    job_id = "j" * 20_000
    response = await c.get(f"/v1/jobs/{job_id}")
    problem = _short_problem(response, 404)
    assert len(str(problem["instance"])) <= MAX_VALUE_CHARS
    assert "j" * (MAX_DETAIL_CHARS + 1) not in response.text


async def test_options_answers_204_with_every_method_of_the_path(c: httpx.AsyncClient) -> None:
    response = await c.options("/v1/certify")
    assert response.status_code == 204
    assert response.headers["allow"] == "POST, OPTIONS"
    assert response.content == b""

    response = await c.options("/v1/jobs/some-job")
    assert response.status_code == 204
    assert response.headers["allow"] == "DELETE, GET, OPTIONS"

    response = await c.options("/no/such/path")
    _short_problem(response, 404)


async def test_a_405_lists_every_method_of_the_path(c: httpx.AsyncClient) -> None:
    # Starlette's own 405 named only the first route of the path: GET hid DELETE.
    response = await c.put("/v1/jobs/some-job")
    _short_problem(response, 405)
    assert response.headers["allow"] == "DELETE, GET, OPTIONS"


async def test_cors_preflight_is_still_answered_by_the_cors_middleware() -> None:
    origin = "https://app.example"
    async with client(cors_origins=[origin]) as c:
        response = await c.options(
            "/v1/certify",
            headers={"Origin": origin, "Access-Control-Request-Method": "POST"},
        )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == origin


@pytest.mark.parametrize("operation", ["certify", "predict"])
async def test_a_vote_store_outage_names_no_internal_address(
    caplog: pytest.LogCaptureFixture, operation: str
) -> None:
    closed = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    async with client(redis_url=closed) as c:
        with caplog.at_level(logging.WARNING, logger="dsmooth"):
            response = await c.post(f"/v1/{operation}", json={"image": _png(), "n": 10})
    problem = _short_problem(response, 503)
    assert problem["type"] == "/problems/backend-unavailable"
    assert response.headers["retry-after"]
    for leak in ("redis://", "127.0.0.1", ":1", "Error 111", "Connect call failed"):
        assert leak not in response.text
    # The cause is in the log instead, for the operator.
    assert any(
        record.exc_info and "127.0.0.1" in str(record.exc_info[1]) for record in caplog.records
    )


async def test_problem_documents_round_trip_as_json(c: httpx.AsyncClient) -> None:
    # Shortening never breaks a document: an ellipsis inside a multi-byte text is still JSON.
    response = await c.post("/v1/certify", json={"image": _png(), "classifier": "\u00e9" * 1_000})
    problem = _short_problem(response, 422)
    assert json.loads(response.text) == problem
