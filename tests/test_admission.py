"""Bounded work, admission control, cancellation and budgets that cannot be gamed (issue #19).

Through the REST API, in process (ASGI) and on a real uvicorn server where the connection
matters. Long work is a large n on the shipped ResNet-20 without a denoiser: slow enough on a CPU
to be cancelled mid-way, and every wait below is bounded.
"""

from __future__ import annotations

import asyncio
import base64
import io
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import numpy as np
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from PIL import Image

from service.api.app import create_app
from service.api.auth import hash_api_key
from service.config import ApiKey, Settings
from service.testing.live_server import live_server

pytestmark = pytest.mark.anyio

KEY = "dsk_admission_key_0123456789"
OTHER = KEY + "-other"
LONG_N = 400_000  # minutes of sampling here: always cancelled long before it ends
WAIT_S = 120.0  # upper bound of every wait for a state (a hang fails, slowness does not)


def _settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "classifier": "cifar10-resnet20",
        "denoiser": "none",
        "device": "cpu",
        "secret": "admission-secret-0123456789abcdef",
        "api_keys": [
            ApiKey(name="alice", sha256=hash_api_key(KEY), daily_queries=2_500),
            ApiKey(name="bob", sha256=hash_api_key(OTHER)),
        ],
        "requests_per_minute_per_key": 0,
    }
    return Settings(**{**values, **overrides})


def _image(side: int = 32, seed: int = 0) -> str:
    pixels = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


@asynccontextmanager
async def _client(settings: Settings, key: str = KEY) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://x", headers={"X-API-Key": key}, timeout=WAIT_S
        ) as client:
            client.app = app  # type: ignore[attr-defined]
            yield client


def _job(n: int, seed: int = 0, **fields: Any) -> dict[str, Any]:
    return {"image": _image(seed=seed), "n": n, "candidate": "clean", "sigma": 0.25, **fields}


async def _until(
    client: httpx.AsyncClient,
    job_id: str,
    ready: Callable[[dict[str, Any]], bool],
    key: str = KEY,
) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        view = (await client.get(f"/v1/jobs/{job_id}", headers={"X-API-Key": key})).json()
        if ready(view):
            return view
        await asyncio.sleep(0.1)
    raise AssertionError(f"job {job_id} never reached the state: {view}")


def _problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"].endswith(slug), problem
    return problem


# ---- 1. work bounded before it starts ------------------------------------------------------


async def test_work_over_the_limit_is_refused_before_sampling_with_its_cost() -> None:
    # U-Net + ResNet-20: 0.28 GFLOP a 32 x 32 copy, 64 times that at 256 x 256.
    settings = _settings(denoiser="unet-cifar10-s0.25-mse", max_work_tflop=0.1)
    async with _client(settings) as client:
        small = await client.post("/v1/certify", json=_job(100))
        assert small.status_code == 200, small.text  # control: 101 copies of 32 x 32 fit
        large = await client.post("/v1/certify", json={**_job(100), "image": _image(256)})
        problem = _problem(large, 422, "work-too-large")
        assert "TFLOP" in problem["detail"] and "256x256" in problem["detail"]
        assert "px on its longer side" in problem["detail"]
        jobs = await client.post("/v1/jobs", json={**_job(100), "image": _image(256)})
        _problem(jobs, 422, "work-too-large")  # a job is refused at submission, not later


async def test_a_key_may_have_a_smaller_share_of_the_work_limit() -> None:
    keys = [
        ApiKey(name="small", sha256=hash_api_key(KEY), max_work_tflop=0.01),
        ApiKey(name="bob", sha256=hash_api_key(OTHER)),
    ]
    settings = _settings(denoiser="unet-cifar10-s0.25-mse", api_keys=keys)
    async with _client(settings) as client:  # 101 U-Net copies: 0.03 TFLOP
        small = await client.post("/v1/certify", json=_job(100))
        problem = _problem(small, 422, "work-too-large")
        assert "for this key" in problem["detail"]
        other = await client.post("/v1/certify", json=_job(100), headers={"X-API-Key": OTHER})
        assert other.status_code == 200, other.text  # control: the server's limit applies


async def test_an_image_whose_one_copy_exceeds_the_pass_memory_is_refused() -> None:
    async with _client(_settings(max_pass_memory_mib=1)) as client:
        fits = await client.post("/v1/certify", json=_job(10))
        assert fits.status_code == 200, fits.text
        big = await client.post("/v1/certify", json={**_job(10), "image": _image(512)})
        problem = _problem(big, 413, "image-too-large-for-models")
        assert "GiB" in problem["detail"] and "512x512" in problem["detail"]


# ---- 2. admission control ------------------------------------------------------------------


async def test_one_key_cannot_hold_more_than_its_share_and_others_still_get_in() -> None:
    async with _client(_settings(max_per_key=1)) as client:
        first = await client.post("/v1/jobs", json=_job(LONG_N), headers={"X-API-Key": OTHER})
        assert first.status_code == 202, first.text
        second = await client.post("/v1/jobs", json=_job(LONG_N), headers={"X-API-Key": OTHER})
        _problem(second, 429, "too-many-concurrent-requests")
        assert int(second.headers["Retry-After"]) > 0
        mine = await client.post("/v1/certify", json=_job(100))  # another key is not blocked
        assert mine.status_code == 200, mine.text
        await client.delete(f"/v1/jobs/{first.json()['id']}", headers={"X-API-Key": OTHER})
        third = await client.post("/v1/jobs", json=_job(100), headers={"X-API-Key": OTHER})
        assert third.status_code == 202, third.text  # the share is free again after a cancel


async def test_a_full_server_answers_503_and_queued_jobs_wait_their_turn() -> None:
    async with _client(_settings(max_running=1, max_queued=1)) as client:
        bob = {"X-API-Key": OTHER}
        running = (await client.post("/v1/jobs", json=_job(LONG_N), headers=bob)).json()
        await _until(client, running["id"], lambda v: v["state"] == "running", OTHER)
        waiting = await client.post("/v1/jobs", json=_job(100, seed=1), headers=bob)
        assert waiting.status_code == 202, waiting.text
        full = await client.post("/v1/certify", json=_job(100, seed=2))
        _problem(full, 503, "server-busy")
        assert int(full.headers["Retry-After"]) > 0
        view = (await client.get(f"/v1/jobs/{waiting.json()['id']}", headers=bob)).json()
        assert view["state"] == "queued"  # admitted, waiting for the running slot
        metrics = (await client.get("/metrics")).text
        assert 'dsmooth_admitted_requests{state="waiting"} 1.0' in metrics
        assert 'dsmooth_jobs{state="queued"} 1.0' in metrics
        await client.delete(f"/v1/jobs/{running['id']}", headers=bob)
        finished = ("succeeded", "failed")  # the waiting job now runs to its end
        done = await _until(client, waiting.json()["id"], lambda v: v["state"] in finished, OTHER)
        assert done["state"] == "succeeded", done


# ---- 5. budgets that cannot be gamed -------------------------------------------------------


async def test_cancelling_refunds_only_what_was_not_drawn() -> None:
    # The U-Net makes 2,000 copies take seconds: the job is cancelled mid-way.
    async with _client(_settings(denoiser="unet-cifar10-s0.25-mse")) as client:
        job = (await client.post("/v1/jobs", json=_job(2_000))).json()  # books 2,001 of 2,500
        await _until(client, job["id"], lambda v: v["progress"]["done"] >= 1_000)
        cancelled = (await client.delete(f"/v1/jobs/{job['id']}")).json()
        assert cancelled["state"] == "cancelled", cancelled
        # At least 1,000 were drawn and stay charged: 1,600 more cannot fit in 2,500. (The old
        # behaviour refunded everything and accepted it.)
        over = await client.post("/v1/certify", json=_job(1_599, seed=1))
        _problem(over, 429, "daily-budget-exhausted")
        # Control: what was not drawn came back, so a request within the rest is accepted.
        fits = await client.post("/v1/certify", json=_job(100, seed=2))
        assert fits.status_code == 200, fits.text


async def test_a_job_over_budget_is_refused_at_submission_not_after() -> None:
    async with _client(_settings()) as client:
        first = await client.post("/v1/jobs", json=_job(LONG_N // 400))  # books 1,001
        assert first.status_code == 202, first.text
        second = await client.post("/v1/jobs", json=_job(1_500, seed=1))  # 1,501 > 1,499 left
        _problem(second, 429, "daily-budget-exhausted")
        third = await client.post("/v1/jobs", json=_job(1_400, seed=2))  # control: fits
        assert third.status_code == 202, third.text


async def test_a_preview_is_charged_to_the_key() -> None:
    async with _client(_settings()) as client:
        spend = await client.post("/v1/certify", json=_job(2_480))  # 2,481 of 2,500
        assert spend.status_code == 200, spend.text
        body = {"image": _image(), "sigma": 0.25}
        ok = await client.post("/v1/preview", json={**body, "k": 16})  # 2,497
        assert ok.status_code == 200, ok.text
        _problem(await client.post("/v1/preview", json={**body, "k": 4}), 429, "budget-exhausted")


# ---- 3. cancellation and shutdown ----------------------------------------------------------


@pytest.mark.slow
def test_a_client_that_disconnects_stops_its_certification() -> None:
    app = create_app(_settings())
    with live_server(app) as url:
        metrics = f"{url}/metrics"
        with httpx.Client(base_url=url, headers={"X-API-Key": OTHER}) as client:
            with pytest.raises(httpx.ReadTimeout):  # the client gives up after 3 s
                client.post("/v1/certify", json=_job(LONG_N), timeout=3)
            deadline = time.monotonic() + WAIT_S
            while 'dsmooth_admitted_requests{state="running"} 0.0' not in client.get(metrics).text:
                assert time.monotonic() < deadline, "the certification kept sampling"
                time.sleep(0.2)
            # Control: while a client stays connected, its certification holds the slot.
            assert asyncio.run(_running_while_connected(url)), "a connected one never ran"


async def _running_while_connected(url: str) -> bool:
    async with httpx.AsyncClient(base_url=url, headers={"X-API-Key": OTHER}) as client:
        request = asyncio.create_task(client.post("/v1/certify", json=_job(LONG_N), timeout=60))
        seen = False
        for _ in range(100):
            await asyncio.sleep(0.1)
            if (
                'dsmooth_admitted_requests{state="running"} 1.0'
                in (await client.get("/metrics")).text
            ):
                seen = True
                break
        request.cancel()
        await asyncio.gather(request, return_exceptions=True)
        return seen


async def test_shutdown_marks_unfinished_jobs_failed_by_the_shutdown() -> None:
    app: FastAPI = create_app(_settings())
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://x", headers={"X-API-Key": OTHER}
        ) as client:
            job = (await client.post("/v1/jobs", json=_job(LONG_N))).json()
            await _until(client, job["id"], lambda v: v["state"] == "running", OTHER)
    services = app.state.services
    view = services.jobs._jobs[job["id"]].view()  # the gateway's own record, after shutdown
    assert view.state == "failed" and view.error.type == "/problems/server-shutdown"
    assert services.admission.load == {"running": 0, "waiting": 0}  # nothing left holding
