"""Cost controls a buyer expects (issue #24, item 4): a free dry-run estimate of a certification's
queries and dollars, and a per-key monthly spend limit beside the daily query budget, booked at
the worst case and settled at what was paid — in one process and through Redis."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from asgi_lifespan import LifespanManager
from pydantic import ValidationError

from denoisers.checkpoints import save_checkpoint
from denoisers.classifiers import cifar_resnet
from service.api.app import create_app
from service.api.auth import Booking, DailyBudgets, MemoryQuotas, Principal, Quotas, hash_api_key
from service.api.problems import ProblemError
from service.config import ApiKey, Settings
from service.core.query_estimate import PRIOR, estimate_queries
from service.core.results import LOOK_EVERY_FREE, LOOK_EVERY_PAID, CertifyParams
from service.distributed.redis_quotas import RedisQuotas
from service.distributed.redis_store import connect_redis
from service.testing.fakes.common import FakeState
from service.testing.live_server import live_server
from tests.test_adapters import photos
from tests.test_remote import vendor_env

pytestmark = pytest.mark.anyio

KEY = "dsk_cost_controls_0123456789"
REDIS_URL = "redis://127.0.0.1:6379/12"  # db 12: test_redis, test_quotas, test_replicas use 13-15
AZURE_PRICE = 0.001  # USD per image (AzureAdapter.price_per_image)


def _flush_db12() -> None:
    try:
        redis.Redis.from_url(REDIS_URL).flushdb()  # db 12 alone
    except redis.exceptions.ConnectionError:
        pytest.skip("no Redis on 127.0.0.1:6379")


@pytest.fixture(params=["memory", "redis"])
def quotas_kind(request: pytest.FixtureRequest) -> str:
    if request.param == "redis":
        _flush_db12()
    return str(request.param)


@pytest.fixture(scope="module")
def classifier_spec(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("models") / "r20.safetensors"
    save_checkpoint(path, cifar_resnet(20).state_dict(), {"architecture": "cifar-resnet20"})
    return f"cifar-resnet20:{path}"


@pytest.fixture
def azure(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeState]:
    monkeypatch.setenv("DSMOOTH_AZURE_REQUESTS_PER_SECOND", "1000")  # the fake allows it
    with vendor_env("azure", monkeypatch) as fake:
        yield fake


def _settings(classifier_spec: str, redis_url: str | None = None, **key: Any) -> Settings:
    return Settings(
        environment="development",
        classifier=classifier_spec,
        denoiser="none",
        device="cpu",
        secret="cost-controls-secret-0123456789abcdef",
        api_keys=[ApiKey(name="alice", sha256=hash_api_key(KEY), **key)],
        redis_url=redis_url,
        requests_per_minute_per_key=0,  # the job tests poll
    )


@asynccontextmanager
async def _client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with LifespanManager(create_app(settings)) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://x", headers={"X-API-Key": KEY}, timeout=120
        ) as client:
            yield client


def _json(seed: int = 0, **fields: Any) -> dict[str, Any]:
    return {"image": base64.b64encode(photos(1, seed=seed)[0]).decode(), **fields}


async def _usage(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/v1/usage")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# --- The estimate ------------------------------------------------------------------------------


async def test_estimate_of_a_fixed_plan_is_its_worst_case(classifier_spec: str) -> None:
    async with _client(_settings(classifier_spec)) as client:
        response = await client.post("/v1/certify/estimate", json={"n0": 100, "n": 1000})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["worst_case_queries"] == 1100
        assert body["expected_queries"] == 1100
        assert body["worst_case_usd"] == body["expected_usd"] == 0.0  # a local model is free
        assert body["model"]["estimate"] is True
        assert body["model"]["method"] == "fixed-plan"
        assert (await _usage(client))["queries_today"] == 0


async def test_estimate_prices_a_vendor_request_without_querying_or_booking(
    classifier_spec: str, azure: FakeState
) -> None:
    async with _client(_settings(classifier_spec, daily_queries=50_000, monthly_usd=5.0)) as client:
        fixed = await client.post("/v1/certify/estimate", json=_json(classifier="azure", n=2000))
        assert fixed.status_code == 200, fixed.text
        assert fixed.json()["candidate"] == "clean"  # the paid default: one query, not n0
        assert fixed.json()["worst_case_queries"] == fixed.json()["expected_queries"] == 2001
        assert fixed.json()["worst_case_usd"] == pytest.approx(2001 * AZURE_PRICE)

        # Multipart, with and without the image: the same fields as POST /v1/certify.
        fields = {"classifier": "azure", "n": "2000", "mode": "sequential", "target_radius": "0.25"}
        form = await client.post(
            "/v1/certify/estimate",
            files={"image": ("p.png", photos(1, seed=3)[0], "image/png")},
            data=fields,
        )
        bare = await client.post("/v1/certify/estimate", data=fields)
        for response in (form, bare):
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["mode"] == "sequential" and body["worst_case_queries"] == 2001
            assert body["worst_case_usd"] == pytest.approx(2001 * AZURE_PRICE)
            assert 1 < body["expected_queries"] < body["worst_case_queries"]
            assert body["expected_usd"] == pytest.approx(body["expected_queries"] * AZURE_PRICE)
            model = body["model"]
            assert model["method"] == "expected-vote-paths" and model["bound"] == "betting"
            by_p = {point["p_a"]: point for point in model["prior"]}
            assert {1.0, 0.99, 0.95, 0.9} <= by_p.keys()
            assert by_p[1.0]["queries"] <= by_p[0.95]["queries"] <= 2001
            assert by_p[1.0]["stop_reason"] == "target_certified"
        assert form.json()["model"]["image_used"] and not bare.json()["model"]["image_used"]

        no_target = await client.post(
            "/v1/certify/estimate", json=_json(classifier="azure", n=2000, mode="sequential")
        )
        assert no_target.status_code == 200, no_target.text
        assert no_target.json()["model"]["bound"] == "cp-spending"
        assert no_target.json()["expected_queries"] <= no_target.json()["worst_case_queries"]

        assert azure.calls == 0 and azure.images == 0  # the estimates asked the vendor nothing
        usage = await _usage(client)
        assert usage["queries_today"] == 0 and usage["spent_usd_this_month"] == 0.0

        # The same fields certify for real: the fake counts the queries (the count above can
        # fail), and the certificate's cost is within the estimate's worst case.
        certified = await client.post("/v1/certify", json=_json(classifier="azure", n=64))
        assert certified.status_code == 200, certified.text
        assert azure.images == 65
        assert (await _usage(client))["spent_usd_this_month"] == certified.json()["cost"] > 0


async def test_estimate_refuses_what_certify_refuses(classifier_spec: str) -> None:
    async with _client(_settings(classifier_spec)) as client:
        cases = [
            ({"n": 0}, 422, "invalid-parameters"),
            ({"mode": "fixed", "target_radius": 0.25}, 422, "invalid-parameters"),
            ({"classifier": "no-such-model"}, 422, "unknown-classifier"),
            ({"n0": 100, "n": 1000, "budget": 500}, 422, "invalid-parameters"),
            ({"image": base64.b64encode(b"not an image").decode()}, 415, "image-unsupported"),
            ({"image": 42}, 422, "invalid-parameters"),
        ]
        for fields, status, slug in cases:
            response = await client.post("/v1/certify/estimate", json=fields)
            assert response.status_code == status, (fields, response.text)
            assert response.json()["type"] == f"/problems/{slug}", fields
        unkeyed = await client.post(
            "/v1/certify/estimate", json={"n": 10}, headers={"X-API-Key": "wrong"}
        )
        assert unkeyed.status_code == 401


@pytest.mark.subprocess
def test_the_python_sdk_estimates_and_reads_usage(
    classifier_spec: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = Path(__file__).resolve().parents[1]
    monkeypatch.syspath_prepend(str(root / "clients/python"))
    monkeypatch.syspath_prepend(str(root / "clients/python-sdk/src"))
    from dsmooth import DsmoothClient

    with (
        live_server(create_app(_settings(classifier_spec, daily_queries=5000))) as url,
        DsmoothClient(url, api_key=KEY) as client,
    ):
        found = client.estimate(photos(1)[0], n0=100, n=1000, mode="sequential")
        assert found.worst_case_queries == 1100
        assert found.expected_queries <= found.worst_case_queries
        assert found.model.estimate is True
        usage = client.usage()
        assert usage.key == "alice" and usage.queries_today == 0
        assert usage.daily_queries == 5000 and usage.queries_left_today == 5000


def test_expected_queries_follow_the_prior_and_stay_below_the_worst_case() -> None:
    params = CertifyParams(n=10_000, n0=0, candidate="clean", mode="sequential", target_radius=0.25)
    found = estimate_queries(params, AZURE_PRICE)
    assert [path.p_a for path in found.paths] == [p for p, _ in PRIOR]
    mean = sum(path.queries * path.weight for path in found.paths) / sum(w for _, w in PRIOR)
    assert found.expected_queries == pytest.approx(mean, abs=0.05)
    assert all(1 < path.queries <= found.worst_case_queries for path in found.paths)
    assert found.expected_queries < found.worst_case_queries == 10_001
    # Looks every look_every samples (8 where queries are paid), unless the image is too large
    # for that many copies per chunk: the shape goes into the plan.
    paid = estimate_queries(params.for_queries(paid=True), AZURE_PRICE)
    assert (found.chunk, paid.chunk) == (LOOK_EVERY_FREE, LOOK_EVERY_PAID)
    assert paid.looks == 10_000 // LOOK_EVERY_PAID
    large = estimate_queries(params, AZURE_PRICE, shape=(3, 3000, 3000))
    assert large.chunk is not None and large.chunk < 8


# --- Monthly spend -----------------------------------------------------------------------------


@asynccontextmanager
async def _quotas(kind: str) -> AsyncIterator[Quotas]:
    if kind == "memory":
        yield MemoryQuotas()
        return
    connection = connect_redis(REDIS_URL)
    try:
        yield RedisQuotas(connection)
    finally:
        await connection.aclose()


async def test_monthly_spend_is_booked_at_the_worst_case_and_settled_at_what_was_paid(
    quotas_kind: str,
) -> None:
    async with _quotas(quotas_kind) as quotas:
        budgets = DailyBudgets(quotas)
        alice = Principal("alice", None, monthly_usd=1.0)
        first = await budgets.reserve(alice, 600, AZURE_PRICE)  # $0.60 booked
        assert (await budgets.usage(alice)).spent_usd_this_month == pytest.approx(0.6)
        with pytest.raises(ProblemError) as refused:
            await budgets.reserve(alice, 401, AZURE_PRICE)  # $1.001 > $1
        assert refused.value.status == 429 and refused.value.slug == "monthly-spend-exhausted"
        assert (await budgets.usage(alice)).queries_today == 600  # refused: nothing booked
        await budgets.settle(first, spent=250, paid=240)  # 10 failed for good: not billed
        usage = await budgets.usage(alice)
        assert usage.queries_today == 250
        assert usage.spent_usd_this_month == pytest.approx(0.24)
        second = await budgets.reserve(alice, 760, AZURE_PRICE)  # $0.24 + $0.76 = $1.00 exactly
        await budgets.settle(second, spent=760)
        assert (await budgets.usage(alice)).spent_usd_this_month == pytest.approx(1.0)
        # A free (local) request still goes through at the limit; a paid one does not.
        await budgets.reserve(alice, 100, 0.0)
        with pytest.raises(ProblemError):
            await budgets.reserve(alice, 1, AZURE_PRICE)
        # Another key, and the next month, count apart.
        assert (await budgets.usage(Principal("bob", None))).spent_usd_this_month == 0
        later = Booking("alice", first.day + dt.timedelta(days=40), 5, AZURE_PRICE)
        assert await quotas.spent_micros("alice", later.day) == 0


async def test_a_job_settled_twice_keeps_the_smaller_refund(quotas_kind: str) -> None:
    """A job taken over while its first gateway still ran ends on both replicas: the first
    (failed, spent 0) would give everything back, the second (finished, spent all) nothing.
    Whatever the order, the key gets the smaller refund, never the sum."""
    async with _quotas(quotas_kind) as quotas:
        budgets = DailyBudgets(quotas)
        alice = Principal("alice", None, monthly_usd=1.0)
        failed_first = await budgets.reserve(alice, 600, AZURE_PRICE)
        finished_first = await budgets.reserve(alice, 300, AZURE_PRICE)
        request = await budgets.reserve(alice, 100, AZURE_PRICE)
        await budgets.settle(failed_first, spent=0, job=True)  # everything back, for now
        assert (await budgets.usage(alice)).queries_today == 400
        # the takeover's settlement reads the booking from the stored job record
        await budgets.settle(Booking.from_json(failed_first.to_json()), spent=600, job=True)
        await budgets.settle(finished_first, spent=300, job=True)
        await budgets.settle(finished_first, spent=0, job=True)
        usage = await budgets.usage(alice)
        assert usage.queries_today == 600 + 300 + 100
        assert usage.spent_usd_this_month == pytest.approx(1.0)
        # A request (not a job) settles as before: twice is the caller's bug, not a takeover.
        await budgets.settle(request, spent=40)
        assert (await budgets.usage(alice)).queries_today == 940


def test_bookings_of_older_versions_read_as_free() -> None:
    old = json.dumps({"key": "alice", "day": "2026-11-30", "queries": 7})
    assert Booking.from_json(old).micros == 0
    assert Booking.from_json(old).id == Booking.from_json(old).id  # every replica reads one id
    booking = Booking("alice", dt.date(2026, 11, 30), 7, 0.0015)
    assert Booking.from_json(booking.to_json()) == booking and booking.micros == 10_500


@pytest.mark.slow
async def test_a_monthly_limit_refuses_the_request_that_would_pass_it(
    classifier_spec: str, azure: FakeState, quotas_kind: str
) -> None:
    redis_url = REDIS_URL if quotas_kind == "redis" else None
    # $0.45 a month; each request below may cost 201 queries x $0.001 = $0.201.
    settings = _settings(classifier_spec, redis_url, monthly_usd=0.45)
    async with _client(settings) as client:
        costs = []
        for seed in (0, 1):  # two different images: nothing comes from the vote store
            accepted = await client.post("/v1/certify", json=_json(seed, classifier="azure", n=200))
            assert accepted.status_code == 200, accepted.text
            costs.append(accepted.json()["cost"])
        assert costs == [pytest.approx(0.201)] * 2
        refused = await client.post("/v1/certify", json=_json(2, classifier="azure", n=200))
        assert refused.status_code == 429, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["type"] == "/problems/monthly-spend-exhausted"
        assert "left this month" in refused.json()["detail"]
        assert azure.images == 2 * 201  # the refused request sent nothing
        usage = await _usage(client)
        assert usage["spent_usd_this_month"] == pytest.approx(sum(costs))
        assert usage["monthly_usd"] == 0.45
        assert usage["usd_left_this_month"] == pytest.approx(0.45 - sum(costs))
        assert usage["month"] == dt.datetime.now(dt.UTC).strftime("%Y-%m")
        # A smaller request still fits what is left.
        small = await client.post("/v1/certify", json=_json(3, classifier="azure", n=40))
        assert small.status_code == 200, small.text
        page = await client.get("/problems/monthly-spend-exhausted")
        assert page.status_code == 200 and "Monthly spend limit" in page.text


async def test_a_cancelled_job_pays_only_for_what_it_drew(
    classifier_spec: str, monkeypatch: pytest.MonkeyPatch, quotas_kind: str
) -> None:
    redis_url = REDIS_URL if quotas_kind == "redis" else None
    settings = _settings(classifier_spec, redis_url, daily_queries=100_000, monthly_usd=20.0)
    # Azure's pace (10 requests/s) and chunks of 8 copies (a sequential plan's first look, no
    # target: it runs to the budget) keep the job running long enough to be cancelled.
    with vendor_env("azure", monkeypatch) as fake:
        async with _client(settings) as client:
            fields = {"classifier": "azure", "n": 9000, "mode": "sequential", "first_look": 8}
            created = await client.post("/v1/jobs", json=_json(5, **fields))
            assert created.status_code == 202, created.text
            job = created.json()["id"]
            booked = await _usage(client)
            assert booked["queries_today"] == 9001  # the worst case, while it runs
            assert booked["spent_usd_this_month"] == pytest.approx(9001 * AZURE_PRICE)
            view = await _job_when(client, job, lambda v: v["progress"]["done"] > 0)
            assert view["state"] == "running", view
            assert (await client.delete(f"/v1/jobs/{job}")).status_code == 200
            view = await _job_when(client, job, lambda v: v["state"] != "running")
            assert view["state"] == "cancelled", view
            done = view["progress"]["done"]
            assert 0 < done < 9000
            usage = await _usage(client)
            assert usage["queries_today"] == done
            assert usage["spent_usd_this_month"] == pytest.approx(done * AZURE_PRICE)
            assert fake.images >= done  # the vendor answered at least what was paid for


async def _job_when(
    client: httpx.AsyncClient, job: str, ready: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The job's view once ``ready`` (polled: the ASGI transport does not stream SSE)."""
    for _ in range(6000):
        view: dict[str, Any] = (await client.get(f"/v1/jobs/{job}")).json()
        if ready(view):
            return view
        await asyncio.sleep(0.01)
    raise AssertionError(f"the job never got there: {view}")


def test_api_key_docs_name_the_monthly_limit() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert "monthly_usd" in readme and "/v1/certify/estimate" in readme and "/v1/usage" in readme


@pytest.mark.parametrize("limit", ["inf", "nan", 1e400, -1])
def test_a_monthly_limit_must_be_a_finite_amount(limit: object) -> None:
    """An infinite limit passed validation and made every paid request of the key a 500."""
    with pytest.raises(ValidationError):
        ApiKey(name="k", sha256="0" * 64, monthly_usd=limit)
    assert ApiKey(name="k", sha256="0" * 64, monthly_usd=2.5).monthly_usd == 2.5
