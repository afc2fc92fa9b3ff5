"""Vendor adapters against their fakes: paced throughput, 429s, and end-to-end certify time.

For each vendor the fake admits R requests/s per key (token bucket, burst 2) and the adapter is
configured for the same tier. Reported: achieved requests/s against R, images (queries)/s, 429s
seen and failures left (votes against); then `POST /v1/certify` time at n = 100 and 1,000 with
the adapter paced at ``--tier`` requests/s (the fake admits more).

    .venv/bin/dsmooth bench adapters --rate 20 --images 200
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from asgi_lifespan import LifespanManager
from pydantic import SecretStr

from benchmarks.provenance import provenance, write_report
from service.adapters.aws import AwsAdapter, AwsSettings
from service.adapters.azure import AzureAdapter, AzureSettings
from service.adapters.base import Adapter, Answer
from service.adapters.clarifai import ClarifaiAdapter, ClarifaiSettings
from service.adapters.fanout import FanOut, FanOutPolicy
from service.adapters.google import GoogleAdapter, GoogleSettings
from service.adapters.prepare import encode_png
from service.api.app import create_app
from service.config import Settings
from service.examples import example_image
from service.testing.fakes import aws, azure, clarifai, google
from service.testing.fakes.common import FakeState
from service.testing.fakes.labeler import BytesLabeler, PixelLabeler
from service.testing.live_server import live_server

KEY = SecretStr("good-key")
VENDORS: dict[str, tuple[Any, Any, Any]] = {
    # name: (fake builder, adapter factory(client, url), environment for the gateway)
    "azure": (
        azure.build,
        lambda c, url: AzureAdapter(c, AzureSettings(endpoint=url, key=KEY)),
        lambda url: {"DSMOOTH_AZURE_ENDPOINT": url, "DSMOOTH_AZURE_KEY": "good-key"},
    ),
    "google": (
        google.build,
        lambda c, url: GoogleAdapter(c, GoogleSettings(endpoint=url, api_key=KEY)),
        lambda url: {"DSMOOTH_GOOGLE_ENDPOINT": url, "DSMOOTH_GOOGLE_API_KEY": "good-key"},
    ),
    "aws": (
        aws.build,
        lambda c, url: AwsAdapter(
            c,
            AwsSettings(
                endpoint=url + "/",
                access_key_id="AKIDFAKE",
                secret_access_key=SecretStr("fake-secret-key"),
            ),
        ),
        lambda url: {
            "DSMOOTH_AWS_ENDPOINT": url + "/",
            "DSMOOTH_AWS_ACCESS_KEY_ID": "AKIDFAKE",
            "DSMOOTH_AWS_SECRET_ACCESS_KEY": "fake-secret-key",
        },
    ),
    "clarifai": (
        clarifai.build,
        lambda c, url: ClarifaiAdapter(c, ClarifaiSettings(endpoint=url, pat=KEY)),
        lambda url: {"DSMOOTH_CLARIFAI_ENDPOINT": url, "DSMOOTH_CLARIFAI_PAT": "good-key"},
    ),
}


def _images(count: int) -> list[bytes]:
    rng = np.random.default_rng(0)
    return [encode_png(rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)) for _ in range(count)]


async def throughput(name: str, rate: float, images: int) -> dict[str, Any]:
    build, make_adapter, _ = VENDORS[name]
    # Hash labels: the fake's CPU must not be what limits the rate on a small machine.
    fake = FakeState(rate=rate, burst=2.0, labeler=BytesLabeler())
    with live_server(build(fake)) as url:
        async with httpx.AsyncClient(timeout=30) as client:
            adapter: Adapter = make_adapter(client, url)
            fanout = FanOut(adapter, FanOutPolicy(requests_per_second=rate, max_attempts=10))
            # Enough images for >= 40 calls even at 128 per call.
            count = max(images, 40 * adapter.max_images_per_call)
            start = time.perf_counter()
            results = await fanout.classify(_images(count))
            elapsed = time.perf_counter() - start
    achieved = fake.calls / elapsed
    return {
        "vendor": name,
        "rate_limit_rps": rate,
        "calls": fake.calls,
        "images": count,
        "seconds": round(elapsed, 2),
        "achieved_rps": round(achieved, 2),
        "ratio_to_limit": round(achieved / rate, 3),
        "queries_per_s": round(count / elapsed, 1),
        "throttled_429": fake.throttled,
        "failed_after_retries": sum(not isinstance(r, Answer) for r in results),
    }


async def certify_time(name: str, n: int, tier_rps: float) -> float:
    build, _, env = VENDORS[name]
    fake = FakeState(rate=1000.0, burst=50.0, labeler=PixelLabeler())
    photo = io.BytesIO()
    example_image("coffee", size=96).save(photo, format="PNG")
    with live_server(build(fake)) as url:
        os.environ.update(env(url))
        os.environ[f"DSMOOTH_{name.upper()}_REQUESTS_PER_SECOND"] = str(tier_rps)
        app = create_app(Settings(denoiser="none", device="cpu"))
        async with LifespanManager(app) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://x", timeout=600
            ) as c:
                start = time.perf_counter()
                response = await c.post(
                    "/v1/certify",
                    files={"image": ("coffee.png", photo.getvalue(), "image/png")},
                    data={"classifier": name, "candidate": "clean", "n0": "0", "n": str(n)},
                )
                elapsed = time.perf_counter() - start
    response.raise_for_status()
    return elapsed


async def run(args: argparse.Namespace) -> dict[str, Any]:
    rows = []
    for name in args.vendor or VENDORS:
        row = await throughput(name, args.rate, args.images)
        for n in (100, 1000):
            row[f"certify_n{n}_s"] = round(await certify_time(name, n, args.tier), 2)
        rows.append(row)
        print(
            f"{name:<9} {row['achieved_rps']:>7.2f}/{row['rate_limit_rps']:<5g} req/s "
            f"({100 * row['ratio_to_limit']:5.1f}%)  {row['queries_per_s']:>7.1f} queries/s  "
            f"429s {row['throttled_429']:>3}  failed {row['failed_after_retries']}  "
            f"certify n=100 {row['certify_n100_s']:>6.2f} s, "
            f"n=1000 {row['certify_n1000_s']:>6.2f} s"
        )
    return {
        "benchmark": "adapters",
        "rows": rows,
        "provenance": provenance("cpu"),  # the gateway's (as in certify_time)
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="dsmooth bench adapters", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--rate", type=float, default=20.0, help="R: requests/s the fake admits")
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--tier", type=float, default=50.0, help="requests/s for the certify runs")
    parser.add_argument("--vendor", action="append", choices=sorted(VENDORS))
    parser.add_argument("--out", type=Path, default=Path("build/benchmarks/adapters.json"))
    arguments = parser.parse_args(argv)
    report = asyncio.run(run(arguments))
    write_report(arguments.out, report)


if __name__ == "__main__":
    main()
