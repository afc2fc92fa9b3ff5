"""Redis deployment: latency of repeated (stored) requests, and throughput with 1 and 2 workers.

Needs a Redis server (default redis://127.0.0.1:6379/14, flushed first). The gateway runs as a
real uvicorn server; workers are `dsmooth worker` processes.

    .venv/bin/dsmooth bench workers --repeats 200 --n 20000
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import redis as redis_sync

from benchmarks.provenance import provenance
from service.api.app import create_app
from service.config import Settings
from service.examples import example_image
from service.testing.live_server import live_server

DSMOOTH = str(Path(sys.executable).with_name("dsmooth"))


def _photo() -> bytes:
    buffer = io.BytesIO()
    example_image("chelsea", size=32).save(buffer, format="PNG")
    return buffer.getvalue()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def stored_latency(url: str, repeats: int, n: int) -> dict[str, Any]:
    settings = Settings(redis_url=url, denoiser="none", device="cpu")
    fields = {"n0": "100", "n": str(n)}
    files = {"image": ("cat.png", _photo(), "image/png")}
    with live_server(create_app(settings)) as base:
        async with httpx.AsyncClient(base_url=base, timeout=600) as client:
            first = await client.post("/v1/certify", files=files, data=fields)
            first.raise_for_status()
            latencies = []
            for _ in range(repeats):
                start = time.perf_counter()
                response = await client.post("/v1/certify", files=files, data=fields)
                latencies.append(time.perf_counter() - start)
                assert response.json()["queries"]["cached"] == n + 100
    return {
        "repeats": repeats,
        "first_s": round(first.elapsed.total_seconds(), 3),
        "p50_ms": round(1000 * statistics.median(latencies), 2),
        "p99_ms": round(1000 * _percentile(latencies, 0.99), 2),
    }


async def worker_throughput(url: str, workers: int, n: int) -> dict[str, Any]:
    redis_sync.Redis.from_url(url).flushdb()
    threads = max(1, (os.cpu_count() or 1) // workers)
    env = {**os.environ, "DSMOOTH_REDIS_URL": url, "DSMOOTH_DENOISER": "none",
           "OMP_NUM_THREADS": str(threads)}  # fmt: skip
    procs = [
        subprocess.Popen(
            [DSMOOTH, "worker", "--name", f"bench{i}", "--batch", "2"],
            env=env,
            stderr=subprocess.DEVNULL,
        )
        for i in range(workers)
    ]
    try:
        settings = Settings(redis_url=url, execution="stream", denoiser="none", device="cpu")
        with live_server(create_app(settings)) as base:
            async with httpx.AsyncClient(base_url=base, timeout=900) as client:
                for _ in range(600):
                    if (await client.get("/readyz")).status_code == 200:
                        break
                    await asyncio.sleep(0.2)
                start = time.perf_counter()
                response = await client.post(
                    "/v1/certify",
                    files={"image": ("cat.png", _photo(), "image/png")},
                    data={"n0": "100", "n": str(n), "sigma": "0.25"},
                )
                elapsed = time.perf_counter() - start
                response.raise_for_status()
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=120)
    return {
        "workers": workers,
        "threads_per_worker": threads,
        "samples": n + 100,
        "seconds": round(elapsed, 2),
        "samples_per_s": round((n + 100) / elapsed, 1),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    redis_sync.Redis.from_url(args.redis).flushdb()
    latency = await stored_latency(args.redis, args.repeats, args.n)
    print(
        f"stored repeat (n={args.n}): p50 {latency['p50_ms']} ms, p99 {latency['p99_ms']} ms "
        f"over {args.repeats} requests (first, computed: {latency['first_s']} s)"
    )
    rows = []
    for count in (1, 2):
        row = await worker_throughput(args.redis, count, args.n)
        rows.append(row)
        print(
            f"{count} worker(s), {row['threads_per_worker']} thread(s) each: "
            f"{row['samples_per_s']} samples/s ({row['seconds']} s)"
        )
    return {
        "benchmark": "workers",
        "classifier": "cifar10-resnet20",
        "denoiser": "none",
        "stored_latency": latency,
        "throughput": rows,
        "provenance": provenance("cpu"),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="dsmooth bench workers", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--out", type=Path, default=Path("build/benchmarks/workers.json"))
    arguments = parser.parse_args(argv)
    report = asyncio.run(run(arguments))
    arguments.out.parent.mkdir(parents=True, exist_ok=True)
    arguments.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {arguments.out}")


if __name__ == "__main__":
    main()
