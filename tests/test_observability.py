"""Request ids, JSON logs and traces (issue #23, item 5): one certification followed through the
gateway, its chunks, a worker's task and a vendor call."""

from __future__ import annotations

import base64
import io
import json
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import httpx
import numpy as np
import pytest
from asgi_lifespan import LifespanManager
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from PIL import Image

from service.adapters.fanout import FanOut, FanOutPolicy
from service.api.app import create_app
from service.api.auth import hash_api_key
from service.config import ApiKey, Settings
from service.core.noise import Chunk, Phase
from service.core.signing import verify_certificate
from service.distributed.protocol import ChunkTask
from service.observability import (
    configure_logging,
    current_request_id,
    span,
    trace_carrier,
    with_trace_parent,
)
from tests.test_adapters import VENDORS, photos, running

pytestmark = pytest.mark.anyio

KEY = "dsk_observability_key_0123456789"
EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module", autouse=True)
def _tracer_provider() -> None:
    # The global provider can be set once per process: this module's, for its spans.
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
    trace.set_tracer_provider(provider)


@pytest.fixture(autouse=True)
def _no_spans_yet() -> Iterator[None]:
    EXPORTER.clear()
    yield
    logging.getLogger().handlers.clear()


def _settings() -> Settings:
    return Settings(
        classifier="cifar10-resnet20",
        denoiser="none",
        device="cpu",
        secret="observability-secret-0123456789",
        api_keys=[ApiKey(name="alice", sha256=hash_api_key(KEY))],
    )


@asynccontextmanager
async def _client() -> AsyncIterator[httpx.AsyncClient]:
    async with (
        LifespanManager(create_app(_settings())) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app),
            base_url="http://x",
            headers={"X-API-Key": KEY},
        ) as client,
    ):
        yield client


def _body(n: int = 100) -> dict[str, object]:
    pixels = np.random.default_rng(3).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return {"image": base64.b64encode(buffer.getvalue()).decode(), "n": n, "candidate": "clean"}


async def test_a_request_id_is_echoed_generated_or_replaced() -> None:
    async with _client() as client:
        given = await client.get("/v1/denoisers", headers={"X-Request-ID": "order-42.a"})
        made = await client.get("/v1/denoisers")
        hostile = await client.get("/v1/denoisers", headers={"X-Request-ID": "a b\x7f" * 60})
    assert given.headers["X-Request-ID"] == "order-42.a"
    assert len(made.headers["X-Request-ID"]) == 32
    assert hostile.headers["X-Request-ID"] != "a b\x7f" * 60  # not a safe token: ours instead
    assert len(hostile.headers["X-Request-ID"]) == 32


async def test_the_request_id_reaches_problems_and_signed_certificates() -> None:
    async with _client() as client:
        problem = await client.post(
            "/v1/certify", json={**_body(), "n": -1}, headers={"X-Request-ID": "bad-1"}
        )
        certificate = await client.post(
            "/v1/certify", json=_body(), headers={"X-Request-ID": "cert-7"}
        )
        keys = (await client.get("/v1/signing-keys")).json()
    assert problem.status_code == 422 and problem.json()["request_id"] == "bad-1"
    assert certificate.status_code == 200, certificate.text
    assert certificate.json()["request_id"] == "cert-7"
    assert verify_certificate(certificate.json(), keys) == []  # the signature covers it


async def test_json_logs_have_one_access_line_with_the_request_key_and_queries(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("json", "INFO")
    async with _client() as client:
        await client.post("/v1/certify", json=_body(), headers={"X-Request-ID": "log-3"})
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line]
    access = [line for line in lines if line["logger"] == "dsmooth.access"]
    assert len(access) == 1, lines
    line = access[0]
    assert line["request_id"] == "log-3" and line["route"] == "/v1/certify"
    assert line["status"] == 200 and line["key"] == "alice" and line["queries"] == 101
    assert line["latency_ms"] > 0 and KEY not in json.dumps(lines)  # the name, never the key


async def test_a_certification_is_one_trace_of_request_and_chunk_spans() -> None:
    async with _client() as client:
        await client.post("/v1/certify", json=_body(n=2_500))
    spans = EXPORTER.get_finished_spans()
    by_id = {s.context.span_id: s for s in spans}
    request = next(s for s in spans if s.name == "POST /v1/certify" and s.parent is None)
    chunks = [s for s in spans if s.name == "chunk"]
    assert len(chunks) == 3  # 2,500 copies in chunks of 1,000

    def ancestors(current: ReadableSpan) -> list[int]:
        found = []
        while current.parent is not None and current.parent.span_id in by_id:
            current = by_id[current.parent.span_id]
            found.append(current.context.span_id)
        return found

    # Under the request's span (FastAPI adds spans of its own in between).
    assert all(request.context.span_id in ancestors(chunk) for chunk in chunks)
    assert request.attributes is not None and request.attributes["http.route"] == "/v1/certify"


def test_a_stream_task_carries_the_trace_and_request_to_its_worker() -> None:
    with span("gateway") as gateway:
        task = ChunkTask(
            op="count", shape=(3, 32, 32),
            chunk=Chunk(phase=Phase.ESTIMATION, index=0, size=10, seed=1, sigma=0.25, digest="d"),
            denoiser="none", classifier="c", rng="torch-cpu", result_key="k",
            request_id="rid-9", trace=trace_carrier(),
        )  # fmt: skip
    decoded = ChunkTask.decode({b"task": task.encode()["task"].encode()})
    with with_trace_parent(decoded.trace, decoded.request_id), span("chunk.worker") as worker:
        assert current_request_id() == "rid-9"
    assert worker.get_span_context().trace_id == gateway.get_span_context().trace_id
    finished = {s.name: s for s in EXPORTER.get_finished_spans()}
    parent = finished["chunk.worker"].parent
    assert parent is not None and parent.span_id == gateway.get_span_context().span_id
    # Control: a task without a trace starts a trace of its own.
    with with_trace_parent({}, None), span("orphan") as orphan:
        pass
    assert orphan.get_span_context().trace_id != gateway.get_span_context().trace_id


@pytest.mark.subprocess
async def test_each_vendor_call_is_a_span_in_the_request_trace() -> None:
    vendor = next(v for v in VENDORS if v.name == "azure")
    with running(vendor) as (_, url):
        async with httpx.AsyncClient(timeout=60) as client:
            fanout = FanOut(vendor.adapter(client, url, "good-key"), FanOutPolicy())
            with span("POST /v1/certify") as request:
                await fanout.classify(photos(3))
    calls = [s for s in EXPORTER.get_finished_spans() if s.name == "vendor.call"]
    assert len(calls) == 3
    assert all(c.context.trace_id == request.get_span_context().trace_id for c in calls)
    assert all(c.attributes is not None and c.attributes["dsmooth.vendor"] == "azure"
               for c in calls)  # fmt: skip
