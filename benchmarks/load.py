"""Bounded load test against a live server on loopback.

Two waves against one uvicorn server with the shipped models: ``--stored`` concurrent repeats of a
stored certification (answered from the vote store) and ``--fresh`` concurrent n = 1,000 local
certifications (all different: real sampling). Reports errors, p50/p99 latency and the server's
resident memory before and after.

    .venv/bin/dsmooth bench load --stored 200 --fresh 20
"""

from __future__ import annotations

import argparse
import asyncio
import io
import resource
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


def _rss_mib() -> float:
    """Resident memory of this process (the server runs in it, on a thread)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _photo() -> bytes:
    buffer = io.BytesIO()
    example_image("chelsea", size=32).save(buffer, format="PNG")
    return buffer.getvalue()


async def _wave(base: str, count: int, fields: list[dict[str, str]]) -> dict[str, Any]:
    files = {"image": ("cat.png", _photo(), "image/png")}
    limits = httpx.Limits(max_connections=count)
    async with httpx.AsyncClient(base_url=base, timeout=900, limits=limits) as client:

        async def one(data: dict[str, str]) -> tuple[int, float]:
            start = time.perf_counter()
            response = await client.post("/v1/certify", files=files, data=data)
            return response.status_code, time.perf_counter() - start

        start = time.perf_counter()
        results = await asyncio.gather(*[one(f) for f in fields])
        wall = time.perf_counter() - start
    latencies = sorted(t for _, t in results)
    return {
        "requests": count,
        "errors": sum(status != 200 for status, _ in results),
        "p50_s": round(statistics.median(latencies), 3),
        "p99_s": round(latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 3),
        "wall_s": round(wall, 2),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    settings = Settings(requests_per_minute_per_key=0)
    with live_server(create_app(settings)) as base:
        before = _rss_mib()
        stored_fields = {"n0": "100", "n": "1000"}
        async with httpx.AsyncClient(base_url=base, timeout=300) as client:
            files = {"image": ("cat.png", _photo(), "image/png")}
            (await client.post("/v1/certify", files=files, data=stored_fields)).raise_for_status()
        stored = await _wave(base, args.stored, [stored_fields] * args.stored)
        fresh = await _wave(
            base,
            args.fresh,
            [{"n0": "100", "n": "1000", "sigma": f"0.2{i:02d}"} for i in range(args.fresh)],
        )
        after = _rss_mib()
    for name, wave in (("stored", stored), ("fresh n=1000", fresh)):
        print(
            f"{name:<13} {wave['requests']:>4} concurrent: {wave['errors']} errors, "
            f"p50 {wave['p50_s']} s, p99 {wave['p99_s']} s, wall {wave['wall_s']} s"
        )
    print(f"resident memory: {before:.0f} MiB before, {after:.0f} MiB after")
    return {
        "benchmark": "load",
        "stored": stored,
        "fresh": fresh,
        "rss_mib": {"before": round(before, 1), "after": round(after, 1)},
        "provenance": provenance(str(resolve_device(settings.device))),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="dsmooth bench load", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--stored", type=int, default=200)
    parser.add_argument("--fresh", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("build/benchmarks/load.json"))
    arguments = parser.parse_args(argv)
    report = asyncio.run(run(arguments))
    write_report(arguments.out, report)


if __name__ == "__main__":
    main()
