"""Budgets, request rates and vendor pacing shared by gateway replicas through Redis (issue #20,
item 2).

Two apps on one Redis stand for two replicas behind a load balancer; the controls are the same
two apps without Redis, where each counts alone (the old behaviour)."""

from __future__ import annotations

import asyncio
import base64
import io
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx
import numpy as np
import pytest
import redis
from asgi_lifespan import LifespanManager
from PIL import Image

from service.adapters.base import Answer
from service.adapters.fanout import FanOut, FanOutPolicy
from service.api.app import create_app
from service.api.auth import hash_api_key
from service.config import ApiKey, Settings
from service.distributed.redis_quotas import RedisQuotas
from service.distributed.redis_store import connect_redis
from tests.test_adapters import VENDORS, photos, running

pytestmark = [pytest.mark.anyio, pytest.mark.redis]

KEY = "dsk_quota_key_0123456789"
REDIS_URL = "redis://127.0.0.1:6379/14"  # db 14: apart from test_redis.py's db 15


@pytest.fixture(autouse=True)
def _empty_db() -> None:
    try:
        redis.Redis.from_url(REDIS_URL).flushdb()
    except redis.exceptions.ConnectionError:
        pytest.skip("no Redis on 127.0.0.1:6379")


def _settings(shared: bool, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "classifier": "cifar10-resnet20",
        "denoiser": "none",
        "device": "cpu",
        "secret": "quota-secret-0123456789abcdef",
        "api_keys": [ApiKey(name="alice", sha256=hash_api_key(KEY), daily_queries=2_500)],
        "redis_url": REDIS_URL if shared else None,
    }
    return Settings(**{**values, **overrides})


@asynccontextmanager
async def _replicas(shared: bool, **overrides: Any) -> AsyncIterator[list[httpx.AsyncClient]]:
    async with AsyncExitStack() as stack:
        clients = []
        for _ in range(2):
            app = await stack.enter_async_context(
                LifespanManager(create_app(_settings(shared, **overrides)))
            )
            clients.append(
                await stack.enter_async_context(
                    httpx.AsyncClient(
                        transport=httpx.ASGITransport(app=app.app),
                        base_url="http://x",
                        headers={"X-API-Key": KEY},
                        timeout=120,
                    )
                )
            )
        yield clients


def _body(n: int, seed: int) -> dict[str, Any]:
    pixels = np.random.default_rng(seed).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    image = base64.b64encode(buffer.getvalue()).decode()
    return {"image": image, "n": n, "candidate": "clean", "sigma": 0.25}


@pytest.mark.parametrize("shared", [True, False], ids=["redis", "control-per-process"])
async def test_one_daily_budget_across_replicas(shared: bool) -> None:
    async with _replicas(shared) as (a, b):
        assert (await a.post("/v1/certify", json=_body(1_499, 0))).status_code == 200
        second = await b.post("/v1/certify", json=_body(1_499, 1))  # 3,000 > 2,500 in all
        if shared:
            assert second.status_code == 429, second.text
            assert "left today" in second.json()["detail"]
        else:  # each process counts alone: the key spends twice its budget
            assert second.status_code == 200, second.text


async def test_concurrent_bookings_on_two_replicas_never_overdraw() -> None:
    async with _replicas(True) as (a, b):
        answers = await asyncio.gather(
            *[client.post("/v1/certify", json=_body(499, i)) for i, client in enumerate([a, b] * 4)]
        )
    accepted = sum(r.status_code == 200 for r in answers)
    assert accepted == 5, [r.status_code for r in answers]  # 5 x 500 = 2,500: no more
    assert all(r.status_code in (200, 429) for r in answers)


@pytest.mark.parametrize("shared", [True, False], ids=["redis", "control-per-process"])
async def test_one_request_rate_across_replicas(shared: bool) -> None:
    async with _replicas(shared, requests_per_minute_per_key=4) as (a, b):
        answers = [await client.get("/v1/denoisers") for client in (a, b, a, b, a, b)]
    codes = [r.status_code for r in answers]
    if shared:
        assert codes == [200, 200, 200, 200, 429, 429], codes
        assert int(answers[-1].headers["Retry-After"]) > 0
    else:
        assert codes == [200] * 6, codes


@pytest.mark.subprocess
@pytest.mark.parametrize("shared", [True, False], ids=["redis", "control-per-process"])
async def test_replicas_pace_one_vendor_credential_together(shared: bool) -> None:
    """Two fan-outs on one credential stand for two replicas, each told 8 requests/s; the fake
    vendor allows 10/s. Paced through Redis they send 8/s together and are never throttled;
    each pacing alone they send 16/s and are."""
    vendor = next(v for v in VENDORS if v.name == "azure")  # one image per call
    connection = connect_redis(REDIS_URL)
    quotas = RedisQuotas(connection) if shared else None
    policy = FanOutPolicy(requests_per_second=8, backoff_base_s=0.05, backoff_max_s=0.2)
    with running(vendor, rate=10.0, burst=2.0) as (fake, url):
        async with httpx.AsyncClient(timeout=60) as client:
            replicas = []
            for _ in range(2):
                adapter = vendor.adapter(client, url, "good-key")
                pacer = None
                if quotas is not None:
                    pacer = quotas.pacer(f"vendor:azure:{adapter.credential_id}", 8)
                replicas.append(FanOut(adapter, policy, pacer))
            results = await asyncio.gather(*[r.classify(photos(12, seed=i)) for i, r in
                                             enumerate(replicas)])  # fmt: skip
    await connection.aclose()
    assert all(isinstance(a, Answer) for answers in results for a in answers)
    if shared:
        assert fake.throttled == 0
    else:
        assert fake.throttled > 0


async def test_rates_whose_interval_is_not_a_whole_millisecond() -> None:
    """7 a minute is an interval of 8,571.4 ms, 3 a second 333.3 ms: Redis's PX takes whole
    milliseconds only (this once answered 'value is not an integer' on every vendor call)."""
    connection = connect_redis(REDIS_URL)
    quotas = RedisQuotas(connection)
    waits = [await quotas.take("odd", 7) for _ in range(8)]
    assert waits[:7] == [0.0] * 7 and waits[7] > 0
    for _ in range(3):
        async with quotas.pacer("odd-vendor", 3.0):
            pass
    await connection.aclose()
