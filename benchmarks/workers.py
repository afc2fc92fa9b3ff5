"""Redis deployment: latency of repeated (stored) requests, samples/s against the number of
worker processes (one thread each), the Redis operations each chunk costs, and from those an
estimate of throughput and Redis load at 8 and 64 GPU workers.

Needs a Redis server (default redis://127.0.0.1:6379/14, flushed first). The gateway runs as a
real uvicorn server; workers are `dsmooth worker` processes. Redis operations are counted from
`INFO commandstats` around each run; the server's capacity from `redis-benchmark` when it is
installed. The per-GPU rate is an assumption unless measured (``--gpu-samples-per-s``).

    .venv/bin/dsmooth bench workers --repeats 200 --n 20000 --workers 1,2
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import redis as redis_sync

from benchmarks.provenance import provenance, write_report
from service.api.app import create_app
from service.config import Settings
from service.core.noise import DEFAULT_CHUNK_SIZE
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


def _command_calls(url: str) -> dict[str, int]:
    stats = redis_sync.Redis.from_url(url).info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


async def worker_throughput(url: str, workers: int, n: int) -> dict[str, Any]:
    redis_sync.Redis.from_url(url).flushdb()
    threads = 1  # one thread per worker process: the scale-out unit
    env = {**os.environ, "DSMOOTH_REDIS_URL": url, "DSMOOTH_DENOISER": "none",
           "DSMOOTH_CPU_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}  # fmt: skip
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
                before = _command_calls(url)
                start = time.perf_counter()
                response = await client.post(
                    "/v1/certify",
                    files={"image": ("cat.png", _photo(), "image/png")},
                    data={"n0": "100", "n": str(n), "sigma": "0.25"},
                )
                elapsed = time.perf_counter() - start
                response.raise_for_status()
                after = _command_calls(url)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=120)
    chunks = -(-n // DEFAULT_CHUNK_SIZE) + 1  # estimation chunks + the selection chunk
    calls = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    calls = {k: v for k, v in calls.items() if v > 0 and k not in ("info",)}
    return {
        "workers": workers,
        "threads_per_worker": threads,
        "samples": n + 100,
        "seconds": round(elapsed, 2),
        "samples_per_s": round((n + 100) / elapsed, 1),
        "chunks": chunks,
        "redis_calls_per_chunk": round(sum(calls.values()) / chunks, 1),
        "redis_calls_by_command": calls,
    }


def redis_capacity(url: str) -> dict[str, float] | None:
    """Operations/s of the Redis server for the commands chunks use (redis-benchmark)."""
    binary = shutil.which("redis-benchmark")
    if binary is None:
        return None
    parsed = redis_sync.Redis.from_url(url).connection_pool.connection_kwargs
    result = subprocess.run(
        [binary, "-h", str(parsed.get("host", "127.0.0.1")), "-p", str(parsed.get("port", 6379)),
         "-n", "50000", "-q", "-t", "set,get,incr,xadd,lpush"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    rates = {}
    for line in result.stdout.replace("\r", "\n").splitlines():
        name, _, rest = line.partition(":")
        if "requests per second" in rest:
            rates[name.strip().split()[0].lower()] = float(rest.split()[0])
    return rates


def estimate(per_chunk: float, gpu_samples_per_s: float, capacity: float | None) -> list[dict]:
    """Throughput and Redis load at 8 and 64 GPU workers from the measured cost per chunk."""
    rows = []
    for gpus in (8, 64):
        samples = gpus * gpu_samples_per_s
        ops = samples / DEFAULT_CHUNK_SIZE * per_chunk
        rows.append({
            "gpu_workers": gpus,
            "samples_per_s": samples,
            "redis_ops_per_s": round(ops),
            "share_of_one_redis": None if not capacity else round(ops / capacity, 2),
        })  # fmt: skip
    return rows


async def run(args: argparse.Namespace) -> dict[str, Any]:
    redis_sync.Redis.from_url(args.redis).flushdb()
    latency = await stored_latency(args.redis, args.repeats, args.n)
    print(
        f"stored repeat (n={args.n}): p50 {latency['p50_ms']} ms, p99 {latency['p99_ms']} ms "
        f"over {args.repeats} requests (first, computed: {latency['first_s']} s)"
    )
    rows = []
    for count in args.workers:
        row = await worker_throughput(args.redis, count, args.n)
        rows.append(row)
        print(
            f"{count} worker(s), {row['threads_per_worker']} thread each: "
            f"{row['samples_per_s']} samples/s ({row['seconds']} s), "
            f"{row['redis_calls_per_chunk']} Redis calls per chunk"
        )
    capacity = redis_capacity(args.redis)
    slowest = min(capacity.values()) if capacity else None
    per_chunk = max(row["redis_calls_per_chunk"] for row in rows)
    projected = estimate(per_chunk, args.gpu_samples_per_s, slowest)
    if capacity:
        print("redis-benchmark (ops/s): " + ", ".join(f"{k} {v:,.0f}" for k, v in capacity.items()))
    print(f"assumed {args.gpu_samples_per_s:,.0f} samples/s per GPU worker:")
    for row in projected:
        print(
            f"  {row['gpu_workers']:>2} GPU workers: {row['samples_per_s']:,.0f} samples/s, "
            f"{row['redis_ops_per_s']:,} Redis ops/s"
            + (f" ({row['share_of_one_redis']:.0%} of one Redis)" if slowest else "")
        )
    return {
        "benchmark": "workers",
        "classifier": "cifar10-resnet20",
        "denoiser": "none",
        "stored_latency": latency,
        "throughput": rows,
        "redis_capacity_ops_per_s": capacity,
        "gpu_samples_per_s_assumed": args.gpu_samples_per_s,
        "estimate": projected,
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
    parser.add_argument(
        "--workers", type=lambda v: [int(x) for x in v.split(",")], default=[1, 2],
        help="worker process counts to measure, comma-separated",
    )  # fmt: skip
    parser.add_argument(
        "--gpu-samples-per-s", type=float, default=1_000_000,
        help="samples/s of one GPU worker for the estimate (measure it with `dsmooth bench "
        "throughput --device cuda` where a GPU exists)",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=Path("build/benchmarks/workers.json"))
    arguments = parser.parse_args(argv)
    report = asyncio.run(run(arguments))
    write_report(arguments.out, report)


if __name__ == "__main__":
    main()
