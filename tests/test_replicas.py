"""Two gateway processes and two workers on one Redis (issue #20, item 5).

A job created on gateway A is read and streamed on gateway B; A is SIGKILLed mid-job and B takes
the job over and finishes it; the certificate equals the single-process one; the key's budget is
one budget across A and B. Real processes on loopback, every wait bounded."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from typing import Any

import httpx
import pytest
import redis as redis_sync
from asgi_lifespan import LifespanManager

from service.api.app import create_app
from service.api.auth import Booking, hash_api_key
from service.api.jobs import Job
from service.config import Settings
from service.distributed.redis_jobs import RedisJobRecords
from service.distributed.redis_store import connect_redis
from service.testing.live_server import free_port
from tests.test_redis import DSMOOTH, RedisServer, _png, _same, private_redis  # noqa: F401

pytestmark = [pytest.mark.subprocess, pytest.mark.slow, pytest.mark.redis]

KEY = "dsk_replica_key_0123456789"
WAIT_S = 300.0
ENV = {
    "DSMOOTH_CLASSIFIER": "cifar10-resnet20",
    "DSMOOTH_DENOISER": "unet-cifar10-s0.25-mse",  # slow enough to be stopped mid-job
    "DSMOOTH_DEVICE": "cpu",
    "DSMOOTH_SECRET": "replica-secret-0123456789abcdef",
    "DSMOOTH_API_KEYS": json.dumps(
        [{"name": "alice", "sha256": hash_api_key(KEY), "daily_queries": 10_000}]
    ),
    "DSMOOTH_REQUESTS_PER_MINUTE_PER_KEY": "0",
}
FIELDS = {"n0": 100, "n": 4_000}


@contextmanager
def _process(*args: str, env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [DSMOOTH, *args], env={**os.environ, **env}, text=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _ready(url: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + WAIT_S
    while True:
        assert process.poll() is None, "the gateway exited"
        assert time.monotonic() < deadline, "the gateway never became ready"
        try:
            if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)


def _view(client: httpx.Client, job_id: str) -> dict[str, Any]:
    response = client.get(f"/v1/jobs/{job_id}")
    assert response.status_code == 200, response.text
    return response.json()


def test_a_job_outlives_its_gateway_and_every_replica_answers_for_it(
    private_redis: RedisServer,  # noqa: F811
) -> None:
    env = {**ENV, "DSMOOTH_REDIS_URL": private_redis.url, "DSMOOTH_EXECUTION": "stream"}
    values: dict[str, Any] = {k.removeprefix("DSMOOTH_").lower(): v for k, v in ENV.items()}
    values["api_keys"] = json.loads(values["api_keys"])
    reference = asyncio.run(_reference(Settings(**values)))
    ports = free_port(), free_port()
    headers = {"X-API-Key": KEY}
    with (
        _process("worker", "--name", "w1", env=env),
        _process("worker", "--name", "w2", env=env),
        _process("serve", "--port", str(ports[0]), env=env) as gateway_a,
        _process("serve", "--port", str(ports[1]), env=env) as gateway_b,
    ):
        a, b = (f"http://127.0.0.1:{port}" for port in ports)
        _ready(a, gateway_a)
        _ready(b, gateway_b)
        with (
            httpx.Client(base_url=a, headers=headers, timeout=60) as on_a,
            httpx.Client(base_url=b, headers=headers, timeout=60) as on_b,
        ):
            body = {"image": base64.b64encode(_png(9)).decode(), **FIELDS}
            created = on_a.post("/v1/jobs", json=body)
            assert created.status_code == 202, created.text
            job_id = created.json()["id"]
            # B streams the job it did not create, to its end, while A is killed.
            events: list[str] = []
            stream = threading.Thread(target=_follow, args=(b, job_id, events), daemon=True)
            stream.start()
            deadline = time.monotonic() + WAIT_S
            while _view(on_b, job_id)["progress"]["done"] < 1_000:  # read on B
                assert time.monotonic() < deadline, "the job made no progress"
                time.sleep(0.2)
            # The budget is one across replicas: 4,101 booked on A leave 5,899 on B.
            over = on_b.post("/v1/certify", json={**body, "n0": 100, "n": 5_900})
            assert over.status_code == 429, over.text
            gateway_a.send_signal(signal.SIGKILL)
            gateway_a.wait(timeout=30)
            while (view := _view(on_b, job_id))["state"] not in ("succeeded", "failed"):
                assert time.monotonic() < deadline, f"the job was never taken over: {view}"
                time.sleep(0.5)
            stream.join(timeout=60)
        assert view["state"] == "succeeded", view
        assert _same(view["result"], reference)
        assert events and events[-1] == "end", events  # the SSE on B saw the end


def _follow(base: str, job_id: str, events: list[str]) -> None:
    with httpx.stream(
        "GET", f"{base}/v1/jobs/{job_id}/events", headers={"X-API-Key": KEY}, timeout=WAIT_S
    ) as response:
        for line in response.iter_lines():
            if line.startswith("event:"):
                events.append(line.split(":", 1)[1].strip())
                if events[-1] == "end":
                    return


async def _reference(settings: Settings) -> dict[str, Any]:
    """The same certification in one process without Redis."""
    async with LifespanManager(create_app(settings)) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://x", headers={"X-API-Key": KEY}, timeout=WAIT_S
        ) as client:
            body = {"image": base64.b64encode(_png(9)).decode(), **FIELDS}
            response = await client.post("/v1/certify", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


@pytest.mark.anyio
async def test_shutdown_hands_a_job_to_another_replica_and_its_booking_is_settled_once() -> None:
    url = "redis://127.0.0.1:6379/13"  # apart from test_redis (15) and test_quotas (14)
    try:
        redis_sync.Redis.from_url(url).flushdb()
    except redis_sync.ConnectionError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    values: dict[str, Any] = {k.removeprefix("DSMOOTH_").lower(): v for k, v in ENV.items()}
    values["api_keys"] = json.loads(values["api_keys"])
    settings = Settings(**values, redis_url=url)
    body = {"image": base64.b64encode(_png(10)).decode(), "n0": 100, "n": 3_000}
    async with AsyncExitStack() as replica_b:
        b = await replica_b.enter_async_context(_asgi_client(settings))
        async with _asgi_client(settings) as a:
            job = (await a.post("/v1/jobs", json=body)).json()  # books 3,100 of 10,000
            await _until_view(b, job["id"], lambda v: v["progress"]["done"] >= 1_000)
        # A has shut down (its lifespan ended) mid-job: B takes the job over and finishes it.
        handed = (await b.get(f"/v1/jobs/{job['id']}")).json()
        assert handed["state"] == "running" and handed["progress"]["done"] < 3_100, handed
        view = await _until_view(b, job["id"], lambda v: v["state"] in ("succeeded", "failed"))
        assert view["state"] == "succeeded", view
        assert view["result"]["queries"]["total"] == 3_100
        # Charged once, in full: 6,900 are left, so 6,901 do not fit and 6,900 do.
        over = await b.post("/v1/certify", json={**body, "n0": 100, "n": 6_801})
        assert over.status_code == 429, over.text
        assert "6,900 left" in over.json()["detail"]


@asynccontextmanager
async def _asgi_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with LifespanManager(create_app(settings)) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://x", headers={"X-API-Key": KEY}, timeout=WAIT_S
        ) as client:
            yield client


async def _until_view(
    client: httpx.AsyncClient, job_id: str, ready: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_S
    while not ready(view := (await client.get(f"/v1/jobs/{job_id}")).json()):
        assert time.monotonic() < deadline, f"never reached: {view}"
        await asyncio.sleep(0.2)
    return dict(view)


@pytest.mark.anyio
async def test_a_job_is_readable_on_another_replica_the_moment_it_is_accepted() -> None:
    """The record carries the job's view from its creation (B once read a record whose view
    the running replica had not written yet: a 500)."""
    url = "redis://127.0.0.1:6379/13"
    try:
        redis_sync.Redis.from_url(url).flushdb()
    except redis_sync.ConnectionError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    records = RedisJobRecords(connect_redis(url))
    await records.create("j1", {"owner": "alice"}, b"png", '{"state": "queued"}')
    record = await records.get("j1")
    assert record is not None and record["view"] == '{"state": "queued"}'
    await records.redis.aclose()


@pytest.mark.anyio
async def test_a_stored_job_this_version_refuses_fails_and_takeovers_go_on() -> None:
    """A job accepted by an older version with options this one refuses (alpha below 1e-12)
    is failed with a problem when taken over; it once ended the takeover loop, so the jobs
    after it were never resumed."""
    url = "redis://127.0.0.1:6379/13"
    try:
        redis_sync.Redis.from_url(url).flushdb()
    except redis_sync.ConnectionError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    records = RedisJobRecords(connect_redis(url), lease_s=0.001)  # leases lapse at once
    booking = Booking("alice", dt.datetime.now(dt.UTC).date(), 30).to_json()
    for job_id, alpha in (("a-refused", 1e-13), ("b-valid", 0.001)):
        options = json.dumps({"operation": "certify", "alpha": alpha, "n0": 10, "n": 20})
        view = Job("alice", "certify", 30, job_id).view().model_dump_json()
        fields = {"owner": "alice", "operation": "certify", "options": options, "booking": booking}
        await records.create(job_id, fields, _png(11), view)
    await records.redis.aclose()
    values: dict[str, Any] = {k.removeprefix("DSMOOTH_").lower(): v for k, v in ENV.items()}
    values["api_keys"] = json.loads(values["api_keys"])
    async with _asgi_client(Settings(**values, redis_url=url)) as client:
        ended = [
            await _until_view(client, job_id, lambda v: v["state"] in ("succeeded", "failed"))
            for job_id in ("a-refused", "b-valid")
        ]
    refused, valid = ended
    assert refused["state"] == "failed" and refused["error"]["type"] == "/problems/job-invalid"
    assert "alpha" in refused["error"]["detail"]
    assert valid["state"] == "succeeded" and valid["result"]["queries"]["total"] == 30
