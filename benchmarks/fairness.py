"""Fairness under a large job: latency of small certifications while a 10^6-sample job runs.

One uvicorn server on loopback with the shipped models. First ``--requests`` n = 100
certifications one after another on an idle server (the baseline), then the same while a job of
``--job-n`` samples runs (it is cancelled at the end). Admission control lets both sample at
once and their chunks take turns on the model thread, so the small requests slow down by about
one chunk each — they are not queued behind the job. Reports p50/p99 of both.

    .venv/bin/dsmooth bench fairness --requests 20 --job-n 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import statistics
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.provenance import provenance, write_report
from service.api.app import create_app
from service.config import Settings
from service.examples import example_image
from service.execution.devices import resolve_device
from service.testing.live_server import live_server


def _image() -> str:
    buffer = io.BytesIO()
    example_image("chelsea", size=32).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


async def _latencies(client: httpx.AsyncClient, count: int, offset: int) -> list[float]:
    """``count`` n = 100 certifications in turn, each at its own sigma (fresh sampling)."""
    times = []
    for i in range(count):
        body = {
            "image": _image(),
            "n": 100,
            "candidate": "clean",
            "sigma": 0.2 + (offset + i) / 1e3,
        }
        start = time.perf_counter()
        (await client.post("/v1/certify", json=body)).raise_for_status()
        times.append(time.perf_counter() - start)
    return times


def _summary(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {
        "requests": len(times),
        "p50_s": round(statistics.median(ordered), 3),
        "p99_s": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 3),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    settings = Settings(requests_per_minute_per_key=0, max_n_local=args.job_n + 1)
    with live_server(create_app(settings)) as base:
        async with httpx.AsyncClient(base_url=base, timeout=900) as client:
            await _latencies(client, 1, offset=999)  # warm-up: models loaded, threads started
            idle = await _latencies(client, args.requests, offset=0)
            job_body = {"image": _image(), "n": args.job_n, "candidate": "clean", "sigma": 0.3}
            job = (await client.post("/v1/jobs", json=job_body)).raise_for_status().json()
            while (await client.get(f"/v1/jobs/{job['id']}")).json()["state"] != "running":
                await asyncio.sleep(0.1)
            busy = await _latencies(client, args.requests, offset=args.requests)
            progress = (await client.delete(f"/v1/jobs/{job['id']}")).json()["progress"]
    rows = {"idle": _summary(idle), "beside the job": _summary(busy)}
    print(f"{'server':<16} {'requests':>8} {'p50 s':>7} {'p99 s':>7}")
    for name, row in rows.items():
        print(f"{name:<16} {row['requests']:>8} {row['p50_s']:>7} {row['p99_s']:>7}")
    print(f"the job drew {progress['done']:,} of {args.job_n:,} samples meanwhile (cancelled)")
    return {
        "benchmark": "fairness",
        "n": 100,
        "job_n": args.job_n,
        "job_samples_drawn": progress["done"],
        **{name.replace(" ", "_"): row for name, row in rows.items()},
        "provenance": provenance(str(resolve_device(settings.device))),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="dsmooth bench fairness", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--job-n", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=Path("build/benchmarks/fairness.json"))
    arguments = parser.parse_args(argv)
    report = asyncio.run(run(arguments))
    write_report(arguments.out, report)


if __name__ == "__main__":
    main()
