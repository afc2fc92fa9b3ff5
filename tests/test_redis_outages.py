"""Stream mode under faults (issue #19 item 4), with real ``dsmooth worker`` processes and a
``redis-server`` of each test's own: Redis outages, no live worker, poison chunks, trimming."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis as redis_sync

from service.distributed.protocol import DEAD_LETTERS, GROUP, HEARTBEATS, STREAM
from tests.test_redis import (
    DSMOOTH,
    RedisServer,
    _certify,
    _client,
    _form,
    _png,
    _same,
    _settings,
    models,
    private_redis,
)

__all__ = ["models", "private_redis"]  # fixtures, shared with test_redis

pytestmark = [pytest.mark.anyio, pytest.mark.subprocess, pytest.mark.slow]

SLOW_CHUNK = {"n0": 10, "n": 1000, "denoiser": "unet-random"}  # seconds per estimation chunk


class Workers:
    """``dsmooth worker`` processes by name, their stderr in files (read after they stop)."""

    def __init__(self, models: dict[str, str], url: str, folder: Path, **env: str) -> None:
        self.env = {**os.environ, **models, "DSMOOTH_REDIS_URL": url, **env}
        self.url, self.folder = url, folder
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, *names: str, extra: tuple[str, ...] = ()) -> None:
        for name in names:
            with (self.folder / f"{name}.log").open("wb") as log:
                self.procs[name] = subprocess.Popen(
                    [DSMOOTH, "worker", "--name", name, *extra],
                    env=self.env, stdout=subprocess.DEVNULL, stderr=log,
                )  # fmt: skip
        wait_alive(self.url, set(names))

    def log(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text()

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextmanager
def workers(models: dict[str, str], url: str, folder: Path, **env: str) -> Iterator[Workers]:
    group = Workers(models, url, folder, **env)
    try:
        yield group
    finally:
        group.stop_all()


def wait_alive(url: str, names: set[str], timeout: float = 120) -> None:
    """Until every named worker sent a heartbeat (they send them only once consuming)."""
    client = redis_sync.Redis.from_url(url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            beats = client.zrangebyscore(HEARTBEATS, time.time() - 2, "+inf")
        except redis_sync.ConnectionError:
            beats = []
        if names <= {name.decode() for name in beats}:
            return
        time.sleep(0.05)
    raise TimeoutError(f"workers {names} sent no heartbeat within {timeout:g} s")


async def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        await asyncio.sleep(0.01)
    raise TimeoutError(f"{what} within {timeout:g} s")


async def test_a_worker_outlives_a_7_s_redis_outage_and_then_certifies_as_before(
    private_redis: RedisServer, models: dict[str, str], tmp_path: Path
) -> None:
    fields = {"n0": 100, "n": 2000}
    reference = await _certify(_settings(models), _png(6), **fields)  # undisturbed, in process
    settings = _settings(models, redis_url=private_redis.url, execution="stream")
    with workers(models, private_redis.url, tmp_path) as group:
        group.start("w0")
        async with _client(settings) as client:  # one gateway through the outage
            before = await client.post("/v1/certify", **_form(_png(7), n0=10, n=100))
            assert before.status_code == 200, before.text
            private_redis.stop()
            await asyncio.sleep(7.0)
            assert group.procs["w0"].poll() is None, "the worker exited during the outage"
            private_redis.process = private_redis._start()  # same port, without its data
            await asyncio.to_thread(wait_alive, private_redis.url, {"w0"}, 30)
            response = await client.post("/v1/certify", **_form(_png(6), **fields))
        assert response.status_code == 200, response.text
        assert group.procs["w0"].poll() is None
        group.stop_all()
        assert "Redis unreachable" in group.log("w0")
        assert "stopped after" in group.log("w0")  # a clean exit on SIGTERM, no traceback
    assert response.json()["device"] == "stream workers"
    assert _same(response.json(), reference)


async def test_without_a_live_worker_a_stream_request_answers_503_at_once(
    private_redis: RedisServer, models: dict[str, str]
) -> None:
    settings = _settings(models, redis_url=private_redis.url, execution="stream")
    assert settings.stream_timeout_s == 600  # what it used to wait, per chunk
    async with _client(settings) as client:
        start = time.monotonic()
        request = client.post("/v1/certify", **_form(_png(8), n0=10, n=100))
        response = await asyncio.wait_for(request, timeout=60)  # not the 600 s it used to wait
        elapsed = time.monotonic() - start
    assert response.status_code == 503, response.text
    assert int(response.headers["Retry-After"]) > 0
    problem = response.json()
    assert problem["type"] == "/problems/no-workers", problem
    assert "no stream worker" in problem["detail"]
    assert elapsed < 5
    assert redis_sync.Redis.from_url(private_redis.url).xlen(STREAM) == 0  # nothing enqueued


async def test_with_a_cold_start_window_the_first_chunk_wakes_a_worker_scaled_to_zero(
    private_redis: RedisServer, models: dict[str, str], tmp_path: Path
) -> None:
    url = private_redis.url
    client = redis_sync.Redis.from_url(url)
    settings = _settings(models, redis_url=url, execution="stream", stream_cold_start_s=120)
    with workers(models, url, tmp_path) as group:
        async with _client(settings) as gateway:
            request = asyncio.create_task(
                gateway.post("/v1/certify", **_form(_png(11), n0=10, n=100))
            )
            # No worker: the chunk is enqueued anyway, for an autoscaler (KEDA) to see ...
            await wait_for(lambda: client.xlen(STREAM) == 1, 30, "no chunk waiting")
            assert not request.done()
            group.start("w0")  # ... which starts a worker
            response = await asyncio.wait_for(request, timeout=120)
    assert response.status_code == 200, response.text
    assert response.json()["device"] == "stream workers"


async def test_a_request_waiting_on_a_worker_that_died_answers_503_within_the_heartbeat_timeout(
    private_redis: RedisServer, models: dict[str, str], tmp_path: Path
) -> None:
    url = private_redis.url
    settings = _settings(models, redis_url=url, execution="stream", stream_heartbeat_timeout_s=3)
    client = redis_sync.Redis.from_url(url)
    with workers(models, url, tmp_path) as group:
        group.start("w0", extra=("--batch", "1"))
        async with _client(settings) as gateway:
            request = asyncio.create_task(
                gateway.post("/v1/certify", **_form(_png(4, side=64), **SLOW_CHUNK))
            )

            def holding() -> bool:  # w0 took the (slow) estimation chunk
                added = client.xinfo_stream(STREAM)["entries-added"]
                return added >= 2 and bool(client.xpending(STREAM, GROUP)["pending"])

            await wait_for(holding, 120, "w0 did not take the estimation chunk")
            group.procs["w0"].send_signal(signal.SIGKILL)
            killed = time.monotonic()
            response = await asyncio.wait_for(request, timeout=60)  # not the 600 s timeout
            waited = time.monotonic() - killed
    assert response.status_code == 503, response.text
    assert response.json()["type"] == "/problems/no-workers"
    assert "went silent" in response.json()["detail"]
    assert "Retry-After" in response.headers
    assert 2 < waited < 15  # the heartbeat timeout (3 s) and a poll, not the stream timeout


async def test_a_chunk_that_crashes_every_worker_is_dead_lettered_and_fails_its_request(
    private_redis: RedisServer, models: dict[str, str], tmp_path: Path
) -> None:
    url = private_redis.url
    client = redis_sync.Redis.from_url(url)
    settings = _settings(models, redis_url=url, execution="stream")
    image = _png(9, side=64)
    with workers(models, url, tmp_path, DSMOOTH_STREAM_MAX_DELIVERIES="2") as group:
        group.start("w0", "w1", "w2", extra=("--batch", "1", "--reclaim-idle-ms", "300"))
        async with _client(settings) as gateway:
            request = asyncio.create_task(gateway.post("/v1/certify", **_form(image, **SLOW_CHUNK)))
            crashed = []
            for delivery in (1, 2):  # "the chunk crashes its worker": SIGKILL whoever takes it

                def taken(delivery: int = delivery) -> bool:
                    if client.xinfo_stream(STREAM)["entries-added"] < 2:
                        return False  # still the selection chunk
                    held = client.xpending_range(STREAM, GROUP, "-", "+", 10)
                    return any(h["times_delivered"] == delivery for h in held)

                await wait_for(taken, 120, f"delivery {delivery} of the estimation chunk")
                holder = client.xpending_range(STREAM, GROUP, "-", "+", 10)[0]["consumer"]
                crashed.append(holder.decode())
                group.procs[holder.decode()].send_signal(signal.SIGKILL)
            response = await asyncio.wait_for(request, timeout=60)
            # The same request again is refused at once: the poison is not fed to workers again.
            added = client.xinfo_stream(STREAM)["entries-added"]
            again = await gateway.post("/v1/certify", **_form(image, **SLOW_CHUNK))
            assert client.xinfo_stream(STREAM)["entries-added"] == added
        (survivor,) = {"w0", "w1", "w2"} - set(crashed)
        assert group.procs[survivor].poll() is None
        group.stop_all()
        survivor_log = group.log(survivor)
    assert response.status_code == 502, response.text
    problem = response.json()
    assert problem["type"] == "/problems/chunk-dead-lettered"
    assert "handed to stream workers 2 times" in problem["detail"]
    assert again.status_code == 502 and again.json()["type"] == "/problems/chunk-dead-lettered"
    assert client.xpending(STREAM, GROUP)["pending"] == 0  # not redelivered any more
    (letter,) = client.xrange(DEAD_LETTERS)
    fields = letter[1]
    assert fields[b"last_worker"].decode() == crashed[1]
    assert fields[b"worker"].decode() == survivor
    assert json.loads(fields[b"task"])["chunk"]["phase"] == "estimation"
    assert "(1 dead-lettered)" in survivor_log  # it buried the chunk, never ran it


async def test_undecodable_tasks_are_dead_lettered_and_acknowledged_entries_trimmed(
    private_redis: RedisServer, models: dict[str, str], tmp_path: Path
) -> None:
    url = private_redis.url
    client = redis_sync.Redis.from_url(url)
    settings = _settings(models, redis_url=url, execution="stream")
    with workers(models, url, tmp_path) as group:
        group.start("w0")
        task = json.dumps({"op": "count", "result_key": "garbage-result", "chunk": "?"})
        client.xadd(STREAM, {"task": task})  # a gateway of another version, say
        await wait_for(lambda: client.xlen(DEAD_LETTERS) == 1, 30, "no dead letter")
        assert client.get("garbage-result:error").startswith(b"dead-letter: ")
        assert client.xpending(STREAM, GROUP)["pending"] == 0

        lengths: list[int] = []

        async def watch() -> None:
            while True:
                lengths.append(client.xlen(STREAM))
                await asyncio.sleep(0.02)

        watcher = asyncio.create_task(watch())
        try:
            certificate = await _certify(settings, _png(10), n0=100, n=12_000)
        finally:
            watcher.cancel()
        await wait_for(lambda: client.xlen(STREAM) == 0, 10, "acknowledged entries not trimmed")
        assert group.procs["w0"].poll() is None
    added = client.xinfo_stream(STREAM)["entries-added"]
    assert added == 1 + 13  # the garbage, the selection chunk, 12 estimation chunks
    assert certificate["queries"]["total"] == 12_100
    assert max(lengths) <= 2  # never more than the chunk in hand and the next one
