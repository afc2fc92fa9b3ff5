"""Queries needed to certify a radius: fixed-n against clean candidate + sequential.

For each image and each target radius r: the fixed-n plan (n0 = 100 noisy selection samples,
n = 10,000) certifies r when its radius is >= r; the query-efficient plan takes the candidate from
the clean image and samples sequentially with ``target_radius = r`` up to the same n. Reported:
median and mean queries per image, certified accuracy at r of both, and the query ratio.

Two settings, both through the real gateway (ASGI):
- CIFAR-10: the first ``--count`` lossless test images, third-party ResNet-56 + the shipped MSE
  denoiser, against the true labels;
- a public API: ImageNet sample photos through the fake Google Vision API (real MobileNetV2
  labels), "ground truth" = the API's own label on the clean photo (as in Salman et al.).

    .venv/bin/dsmooth bench queries --count 100 --photos 20
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from asgi_lifespan import LifespanManager
from PIL import Image

from benchmarks.evaluation import default_data, default_target, shared_dir
from benchmarks.provenance import provenance, write_report
from denoisers.registry import shipped_checkpoints
from denoisers.training.data import load_lossless_npz
from service.api.app import create_app
from service.config import Settings
from service.execution.devices import resolve_device
from service.testing.fakes import google as fake_google
from service.testing.fakes.common import FakeState
from service.testing.live_server import live_server


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


async def _run(
    client: httpx.AsyncClient, images: Sequence[tuple[bytes, str | None]], base: dict[str, str],
    radii: list[float], n: int, fixed_too: bool = True,
) -> dict[str, Any]:  # fmt: skip
    """Fixed-n once per image (its radius answers every r), sequential once per image and r."""
    fixed: list[tuple[bool, float]] = []
    sequential: dict[float, list[tuple[bool, int]]] = {r: [] for r in radii}
    for index, (image, truth) in enumerate(images):
        files = {"image": ("image.png", image, "image/png")}
        if fixed_too or truth is None:
            answer = await client.post(
                "/v1/certify", files=files,
                data={**base, "candidate": "noisy", "n0": "100", "n": str(n)},
            )  # fmt: skip
            answer.raise_for_status()
            certificate = answer.json()
            truth = truth if truth is not None else certificate["candidate"]  # the API's label
            fixed.append((certificate["label"] == truth, certificate["radius"]))
        for r in radii:
            answer = await client.post(
                "/v1/certify", files=files,
                data={**base, "candidate": "clean", "n0": "0", "n": str(n),
                      "mode": "sequential", "target_radius": str(r)},
            )  # fmt: skip
            answer.raise_for_status()
            seq = answer.json()
            ok = seq["label"] == truth and seq["radius"] >= r
            # Queries the plan needs (total), not what this run paid: the looks of one image's
            # runs share chunks, so later targets would be answered from the vote store.
            sequential[r].append((ok, seq["queries"]["total"]))
        print(f"  image {index + 1}/{len(images)}", end="\r", flush=True)
    rows = []
    for r in radii:
        queries = [q for _, q in sequential[r]]
        row: dict[str, Any] = {
            "radius": r,
            "fixed_queries_median": n + 100,
            "fixed_certified_accuracy": (
                sum(ok and rad >= r for ok, rad in fixed) / len(fixed) if fixed else None
            ),
            "sequential_queries_median": statistics.median(queries),
            "sequential_queries_mean": round(statistics.fmean(queries), 1),
            "sequential_certified_accuracy": sum(ok for ok, _ in sequential[r]) / len(queries),
            "query_ratio_median": round((n + 100) / statistics.median(queries), 1),
        }
        rows.append(row)
        print(
            f"  r={r}: fixed {row['fixed_queries_median']} queries, "
            f"{row['fixed_certified_accuracy']} certified | sequential median "
            f"{row['sequential_queries_median']} (mean {row['sequential_queries_mean']}), "
            f"{100 * row['sequential_certified_accuracy']:.0f}% | "
            f"{row['query_ratio_median']}x fewer"
        )
    return {"images": len(images), "n": n, "rows": rows}


async def cifar(
    count: int, n: int, radii: list[float], denoiser: str, fixed_too: bool
) -> dict[str, Any]:
    data = load_lossless_npz(default_data()).head(count)
    images = [
        (_png(data.images[i].permute(1, 2, 0).numpy()), data.classes[int(data.labels[i])])
        for i in range(count)
    ]
    settings = Settings(classifier=default_target(), denoiser=denoiser, max_n_local=n + 100)
    async with LifespanManager(create_app(settings)) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://x", timeout=3600) as c:
            print(f"CIFAR-10, ResNet-56 + {denoiser}, sigma 0.25, {count} images")
            result = await _run(c, images, {"sigma": "0.25"}, radii, n, fixed_too)
    return {"setting": "cifar10", "classifier": "cifar-resnet56", "denoiser": denoiser, **result}


def _square(path: Path, side: int) -> bytes:
    """The photo centre-cropped and resized to side x side: the image that is certified."""
    with Image.open(path) as photo:
        rgb = photo.convert("RGB")
    short = min(rgb.size)
    left, top = (rgb.width - short) // 2, (rgb.height - short) // 2
    square = rgb.crop((left, top, left + short, top + short))
    return _png(np.asarray(square.resize((side, side), Image.Resampling.LANCZOS)))


async def public_api(
    photos: int, n: int, radii: list[float], denoiser: str, side: int
) -> dict[str, Any]:
    folder = shared_dir() / "data/imagenet-samples/images"
    paths = sorted(folder.glob("*.JPEG"))[:photos]
    images: list[tuple[bytes, str | None]] = [(_square(path, side), None) for path in paths]
    fake = FakeState(rate=1000.0, burst=100.0)
    with live_server(fake_google.build(fake)) as url:
        os.environ.update({
            "DSMOOTH_GOOGLE_ENDPOINT": url, "DSMOOTH_GOOGLE_API_KEY": "good-key",
            "DSMOOTH_GOOGLE_REQUESTS_PER_SECOND": "1000",
        })  # fmt: skip
        settings = Settings(denoiser=denoiser, max_n_remote=n + 100)
        async with LifespanManager(create_app(settings)) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://x", timeout=3600
            ) as c:
                print(f"fake Google Vision (MobileNetV2), {denoiser}, sigma 0.25, {photos} photos")
                base = {"sigma": "0.25", "classifier": "google"}
                result = await _run(c, images, base, radii, n)
    return {
        "setting": "google-fake",
        "denoiser": denoiser,
        "photo_side": side,
        "billed_images": fake.images,
        **result,
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    shipped = shipped_checkpoints()
    cifar_denoiser = args.cifar_denoiser if args.cifar_denoiser in shipped else "none"
    photo_denoiser = args.photo_denoiser if args.photo_denoiser in shipped else "none"
    settings = []
    if args.count:
        settings.append(
            await cifar(args.count, args.n, args.radius, cifar_denoiser, not args.sequential_only)
        )
    if args.photos:
        settings.append(
            await public_api(args.photos, args.api_n, args.radius, photo_denoiser, args.side)
        )
    return {
        "benchmark": "query_efficiency",
        "alpha": 0.001,
        "settings": settings,
        "provenance": provenance(str(resolve_device(Settings().device))),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="dsmooth bench queries", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--count", type=int, default=100, help="CIFAR test images (0: skip)")
    parser.add_argument("--photos", type=int, default=20, help="ImageNet photos (0: skip)")
    parser.add_argument("--n", type=int, default=10_000, help="n of both plans (CIFAR)")
    parser.add_argument("--api-n", type=int, default=10_000, help="n of both plans (API)")
    parser.add_argument("--side", type=int, default=128, help="photos are certified at this side")
    parser.add_argument("--radius", type=float, action="append", default=None)
    parser.add_argument(
        "--sequential-only", action="store_true", help="CIFAR: skip the (slow) fixed-n runs"
    )
    parser.add_argument("--cifar-denoiser", default="unet-cifar10-s0.25-mse")
    parser.add_argument("--photo-denoiser", default="unet-imagenet-s0.25-mse")
    parser.add_argument("--out", type=Path, default=Path("build/benchmarks/query_efficiency.json"))
    arguments = parser.parse_args(argv)
    arguments.radius = arguments.radius or [0.25, 0.5]
    report = asyncio.run(run(arguments))
    write_report(arguments.out, report)


if __name__ == "__main__":
    main()
