"""The Redis vote store and stream workers, against real Redis servers and `dsmooth worker`s."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest
import redis as redis_sync
from asgi_lifespan import LifespanManager
from PIL import Image

from denoisers.checkpoints import save_checkpoint
from denoisers.classifiers import cifar_resnet
from denoisers.unet import UNet
from service.api.app import create_app
from service.config import Settings
from service.core.votes import ChunkCounts
from service.distributed.protocol import GROUP, HEARTBEATS, STREAM
from service.distributed.redis_store import RedisVoteStore, connect_redis
from service.testing.live_server import free_port

pytestmark = pytest.mark.anyio

DSMOOTH = str(Path(sys.executable).with_name("dsmooth"))
SHARED_REDIS = "redis://127.0.0.1:6379/15"  # a database of its own on the machine's Redis


def _reachable(url: str) -> bool:
    try:
        return bool(redis_sync.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis_sync.RedisError:
        return False


@pytest.fixture
def redis_url() -> str:
    if not _reachable(SHARED_REDIS):
        pytest.skip("no Redis on 127.0.0.1:6379 (.ci/run starts one)")
    redis_sync.Redis.from_url(SHARED_REDIS).flushdb()
    return SHARED_REDIS


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A classifier and a (slow enough to be caught mid-chunk) U-Net denoiser, random weights."""
    folder = tmp_path_factory.mktemp("models")
    import torch

    torch.manual_seed(0)
    save_checkpoint(folder / "c.safetensors", cifar_resnet(20).state_dict(), {})
    unet = UNet()
    torch.nn.init.normal_(unet.out.weight, std=0.02)
    save_checkpoint(folder / "u.safetensors", unet.state_dict(), {})
    return {
        "DSMOOTH_CLASSIFIER": f"cifar-resnet20:{folder / 'c.safetensors'}",
        "DSMOOTH_DENOISER": "none",
        "DSMOOTH_EXTRA_DENOISERS": json.dumps({"unet-random": f"unet:{folder / 'u.safetensors'}"}),
        "DSMOOTH_DEVICE": "cpu",
        "DSMOOTH_SECRET": "redis-test-secret-0123456789",
    }


def _settings(models: dict[str, str], **overrides: object) -> Settings:
    values = {key.removeprefix("DSMOOTH_").lower(): value for key, value in models.items()}
    values["extra_denoisers"] = json.loads(values["extra_denoisers"])
    return Settings(**{**values, **overrides})  # type: ignore[arg-type]


@asynccontextmanager
async def _client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://x", timeout=300) as c:
            yield c


def _png(seed: int = 0, side: int = 32) -> bytes:
    import io

    pixels = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _form(image: bytes, **fields: object) -> dict[str, object]:
    return {
        "files": {"image": ("i.png", image, "image/png")},
        "data": {k: str(v) for k, v in fields.items()},
    }


async def _certify(settings: Settings, image: bytes, **fields: object) -> dict:
    async with _client(settings) as client:
        response = await client.post("/v1/certify", **_form(image, **fields))
    assert response.status_code == 200, response.text
    return response.json()


def _same(a: dict, b: dict) -> bool:
    keys = ("label", "radius", "p_lower", "top_counts", "candidate", "image_digest")
    return all(a[k] == b[k] for k in keys)


@pytest.mark.redis
async def test_votes_are_stored_once_with_a_ttl(redis_url: str) -> None:
    client = connect_redis(redis_url)
    store = RedisVoteStore(client, ttl_seconds=100)
    votes = ChunkCounts({"3": 7, "5": 1}, failed=2, model_version="v1", names={"3": "cat"})
    assert await store.put("k", votes) is True
    assert await store.put("k", ChunkCounts({"9": 10})) is False  # the first answer stays
    assert await store.get("k") == votes
    assert 0 < await client.ttl("k") <= 100
    assert await store.get("absent") is None
    await client.aclose()


@pytest.mark.redis
@pytest.mark.slow
async def test_a_repeat_is_answered_from_redis_by_another_gateway(
    redis_url: str, models: dict[str, str]
) -> None:
    settings = _settings(models, redis_url=redis_url)
    first = await _certify(settings, _png(), n0=100, n=2000)
    second = await _certify(settings, _png(), n0=100, n=2000)  # a fresh app: a second replica
    assert first["queries"]["cached"] == 0
    assert second["queries"]["cached"] == second["queries"]["total"] == 2100
    assert _same(first, second)


@pytest.mark.redis
@pytest.mark.slow
async def test_a_larger_n_reuses_stored_chunks_and_equals_a_fresh_run(
    redis_url: str, models: dict[str, str]
) -> None:
    settings = _settings(models, redis_url=redis_url)
    await _certify(settings, _png(1), n0=100, n=2000)
    extended = await _certify(settings, _png(1), n0=100, n=3500)
    fresh = await _certify(_settings(models), _png(1), n0=100, n=3500)  # in memory, from zero
    assert extended["queries"]["cached"] == 2100 and fresh["queries"]["cached"] == 0
    keys = ("label", "top_counts", "candidate", "image_digest")
    assert all(extended[k] == fresh[k] for k in keys)  # the same votes ...
    # ... but another n is another stream of the image: a smaller share of alpha (rule 9).
    assert (extended["ledger"]["stream"], fresh["ledger"]["stream"]) == (2, 1)
    assert extended["p_lower"] < fresh["p_lower"]


@contextmanager
def workers(models: dict[str, str], redis_url: str, count: int = 1, *extra: str) -> Iterator[list]:
    env = {**os.environ, **models, "DSMOOTH_REDIS_URL": redis_url}
    procs = [
        subprocess.Popen(
            [DSMOOTH, "worker", "--name", f"w{i}", *extra],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(count)
    ]
    try:
        _wait_for_consumers(redis_url, {f"w{i}" for i in range(count)})
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=60)
            assert proc.stderr is not None
            proc.stderr.close()


def _wait_for_consumers(redis_url: str, names: set[str], timeout: float = 120) -> None:
    client = redis_sync.Redis.from_url(redis_url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = {n.decode() for n in client.zrangebyscore(HEARTBEATS, time.time() - 5, "+inf")}
        if names <= alive:
            return
        time.sleep(0.1)
    raise TimeoutError(f"workers {names} did not start")


@pytest.mark.redis
async def test_the_image_goes_to_redis_once_for_all_its_chunks(redis_url: str) -> None:
    """A sequential plan on a vendor looks every 8 samples, a chunk each: re-sending the pixels
    with every task made a 12 MB photo gigabytes of Redis traffic per request."""
    import torch

    from service.core.noise import Chunk, Phase, image_digest
    from service.distributed.client import StreamClient

    image = torch.rand(3, 256, 256)
    size, digest = image.numel() * 4, image_digest(image)
    redis = connect_redis(redis_url)
    stream = StreamClient(redis, cold_start_s=60)  # no worker: the tasks wait in the stream
    try:
        before = int((await redis.info("stats"))["total_net_input_bytes"])
        for index in range(10):
            chunk = Chunk(
                phase=Phase.ESTIMATION, index=index, size=8, seed=index, sigma=0.25, digest=digest
            )
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(stream.count(image, chunk, "c", "none", "torch-cpu"), 0.3)
        sent = int((await redis.info("stats"))["total_net_input_bytes"]) - before
        assert await redis.xlen(STREAM) == 10
    finally:
        await redis.aclose()
    assert size <= sent < 1.5 * size, f"{sent:,} bytes to Redis for a {size:,}-byte image"


@pytest.mark.redis
@pytest.mark.subprocess
@pytest.mark.slow
async def test_stream_workers_give_the_in_process_certificate(
    redis_url: str, models: dict[str, str]
) -> None:
    with workers(models, redis_url, 2, "--batch", "1") as procs:
        health = subprocess.run(
            [DSMOOTH, "worker-health", "--name", "w1"],
            env={**os.environ, "DSMOOTH_REDIS_URL": redis_url}, capture_output=True, timeout=60,
        )  # fmt: skip
        assert health.returncode == 0
        streamed = await _certify(
            _settings(models, redis_url=redis_url, execution="stream"), _png(2), n0=100, n=6000
        )
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        done = [int(proc.stderr.read().split("stopped after ")[1].split()[0]) for proc in procs]
    in_process = await _certify(_settings(models), _png(2), n0=100, n=6000)
    assert streamed["device"] == "stream workers"
    assert _same(streamed, in_process)
    assert sum(done) == 7 and all(d > 0 for d in done)  # two workers shared the 7 chunks


@pytest.mark.redis
@pytest.mark.subprocess
@pytest.mark.slow
async def test_a_worker_refuses_chunks_certified_for_other_models(
    redis_url: str, models: dict[str, str]
) -> None:
    """The certificate names the gateway's models and precision: a worker that runs others (here
    fp32 for a bf16 gateway; a checkpoint of another version in a rollout) refuses the chunk,
    and the client gets a clear error, never a certificate naming what did not run."""
    with workers({**models, "DSMOOTH_PRECISION": "fp32"}, redis_url):
        async with _client(_settings(models, redis_url=redis_url, execution="stream",
                                     precision="bf16")) as client:  # fmt: skip
            refused = await client.post("/v1/certify", **_form(_png(3), n0=10, n=100))
        same = _settings(models, redis_url=redis_url, execution="stream", precision="fp32")
        certificate = await _certify(same, _png(3), n0=10, n=100)  # control
    assert refused.status_code == 503, refused.text
    assert refused.json()["type"].endswith("/workers-run-other-models")
    detail = refused.json()["detail"]
    assert "bf16" in detail and "fp32" in detail and "DSMOOTH_PRECISION" in detail
    assert certificate["precision"] == "fp32" and certificate["device"] == "stream workers"


@pytest.mark.redis
@pytest.mark.subprocess
@pytest.mark.slow
async def test_remote_copies_come_from_stream_workers(
    redis_url: str, models: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from service.testing.fakes import google as fake_google
    from service.testing.fakes.common import FakeState
    from service.testing.live_server import live_server

    fake = FakeState()
    with live_server(fake_google.build(fake)) as url, workers(models, redis_url):
        monkeypatch.setenv("DSMOOTH_GOOGLE_ENDPOINT", url)
        monkeypatch.setenv("DSMOOTH_GOOGLE_API_KEY", "good-key")
        fields = {"classifier": "google", "n0": 16, "n": 48, "denoiser": "unet-random",
                  "candidate": "noisy"}  # fmt: skip
        streamed = await _certify(
            _settings(models, redis_url=redis_url, execution="stream"), _png(3), **fields
        )
        in_process = await _certify(_settings(models), _png(3), **fields)
    assert _same(streamed, in_process)
    assert fake.images == 2 * 64


@pytest.mark.redis
@pytest.mark.subprocess
@pytest.mark.slow
async def test_a_worker_killed_mid_chunk_is_replaced_and_nothing_changes(
    redis_url: str, models: dict[str, str]
) -> None:
    # The rescuer starts after the victim's last heartbeat: give it time (no live worker meanwhile).
    settings = _settings(
        models, redis_url=redis_url, execution="stream", stream_heartbeat_timeout_s=120
    )
    fields = {"n0": 10, "n": 1000, "denoiser": "unet-random"}
    image = _png(4, side=64)  # big enough for the U-Net to take seconds per chunk
    reference = await _certify(_settings(models), image, **fields)
    client = redis_sync.Redis.from_url(redis_url)
    with workers(models, redis_url, 1, "--batch", "1") as (victim,):
        request = asyncio.create_task(_certify(settings, image, **fields))
        # Wait until the victim holds the (slow) estimation chunk unacknowledged, then kill it.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            pending = client.xpending(STREAM, GROUP)
            if (
                pending["pending"]
                and any(c["name"] == b"w0" for c in pending["consumers"])
                and client.xinfo_stream(STREAM)["entries-added"] >= 2  # acked ones are trimmed
            ):
                break
            await asyncio.sleep(0.01)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        assert client.xpending(STREAM, GROUP)["pending"] == 1  # the chunk it held is orphaned
        env = {**os.environ, **models, "DSMOOTH_REDIS_URL": redis_url}
        rescuer = subprocess.Popen(
            [DSMOOTH, "worker", "--name", "rescuer", "--reclaim-idle-ms", "300"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            certificate = await asyncio.wait_for(request, timeout=300)
        finally:
            rescuer.terminate()
            rescuer.wait(timeout=60)
    assert _same(certificate, reference)
    assert client.xpending(STREAM, GROUP)["pending"] == 0


class RedisServer:
    """A redis-server of a test's own (it gets restarted), without persistence."""

    def __init__(self, binary: str) -> None:
        self.binary, self.port = binary, free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = self._start()

    def _start(self) -> subprocess.Popen:
        process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL,
        )  # fmt: skip
        for _ in range(100):
            if _reachable(self.url):
                return process
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def restart(self) -> None:
        self.stop()
        self.process = self._start()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait()


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    server = RedisServer(binary)
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.subprocess
@pytest.mark.slow
async def test_a_redis_restart_mid_request_gives_a_clean_error_or_the_right_certificate(
    private_redis: RedisServer, models: dict[str, str]
) -> None:
    url = private_redis.url
    fields = {"n0": 100, "n": 20_000}
    reference = await _certify(_settings(models), _png(5), **fields)
    with workers(models, url, 1):
        async with _client(_settings(models, redis_url=url, execution="stream")) as client:
            request = asyncio.create_task(client.post("/v1/certify", **_form(_png(5), **fields)))
            await asyncio.sleep(1.0)
            await asyncio.to_thread(private_redis.restart)
            response = await asyncio.wait_for(request, timeout=120)
    if response.status_code == 200:
        assert _same(response.json(), reference)
    else:
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.slow
async def test_unreachable_redis_makes_readyz_fail_and_requests_503(
    models: dict[str, str],
) -> None:
    settings = _settings(models, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    async with _client(settings) as client:
        ready = await client.get("/readyz")
        response = await client.post("/v1/certify", **_form(_png(), n0=10, n=100))
    assert ready.status_code == 503 and ready.json()["checks"]["vote_store"] is False
    assert response.status_code == 503
    assert response.json()["title"] == "Backend unavailable"
