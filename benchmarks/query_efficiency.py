"""Queries (and dollars) per certificate: the fixed-n plan against the sequential plans.

For each setting, sigma and target radius r, every plan certifies every image through the real
gateway (in-process ASGI), each plan in a fresh gateway (its own vote store and ledger, so no
plan reads another's votes or pays for another's ledger position):

- ``fixed``: n0 = 100 noisy selection samples, then n (the budget); certifies r when its
  radius is >= r (one run per image answers every r);
- ``betting-32``: clean candidate + the betting sequence looked at every 32 samples, never
  giving up before the budget shows the target out of reach (the default before #24);
- ``betting-8``: the same, looked at every 8 samples from the first look that could certify;
- ``default``: the service's default where queries are paid (a vendor API) — ``betting-8``
  that also stops once the predictive chance of certifying within the budget is below 1%
  (``futility``). Sent explicitly, so the local CIFAR-10 model (free queries, whose default
  looks every 32) is measured as if it were paid.

Reported per (setting, sigma, r, plan): the certified fraction (right label and radius >= r),
mean / median / p90 queries per image, the ratio of the fixed plan's queries to the mean, and
dollars per image and per certificate at the vendors' list prices (the adapters' prices).

Settings:
- CIFAR-10: the first ``--count`` lossless test images, the third-party ResNet-56 + the shipped
  MSE U-Net of each sigma, against the true labels;
- photos: the sample photos at ``--side`` px through the fake Google Vision API (real
  MobileNetV2 labels) + the photo U-Net of each sigma that has one, against the API's own label
  on the clean photo (Salman et al.'s protocol for APIs).

    .venv/bin/dsmooth bench queries                          # about 1.5 hours on one EPYC core
    .venv/bin/dsmooth bench queries --count 30 --photos 0    # CIFAR only, 30 images
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import statistics
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from asgi_lifespan import LifespanManager
from PIL import Image
from tqdm import tqdm

from benchmarks.evaluation import default_data, default_target, shared_dir
from benchmarks.provenance import provenance, write_report
from denoisers.registry import shipped_checkpoints
from denoisers.training.data import load_lossless_npz
from service.adapters.aws import AwsAdapter
from service.adapters.azure import AzureAdapter
from service.adapters.clarifai import ClarifaiAdapter
from service.adapters.google import GoogleAdapter
from service.api.app import create_app
from service.config import Settings
from service.execution.devices import resolve_device
from service.testing.fakes import google as fake_google
from service.testing.fakes.common import FakeState
from service.testing.live_server import live_server

FIXED_N0 = 100
# Sequential plans: the fields each sends besides the target (the service's defaults otherwise).
SEQUENTIAL: dict[str, dict[str, str]] = {
    "betting-32": {"first_look": "32", "look_every": "32", "futility": "0"},
    "betting-8": {"look_every": "8", "futility": "0"},
    "default": {"look_every": "8", "futility": "0.01"},
}
PLANS = ("fixed", *SEQUENTIAL)
PRICES = {  # USD per query, list prices (the adapters' own)
    "azure": AzureAdapter.price_per_image,
    "google": GoogleAdapter.price_per_image,
    "aws": AwsAdapter.price_per_image,
    "clarifai": ClarifaiAdapter.price_per_image,
}

Image_ = tuple[bytes, str | None]  # (PNG, true label; None: the API's label on the clean image)


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _square(path: Path, side: int) -> bytes:
    """The photo centre-cropped and resized to side x side: the image that is certified."""
    with Image.open(path) as photo:
        rgb = photo.convert("RGB")
    short = min(rgb.size)
    left, top = (rgb.width - short) // 2, (rgb.height - short) // 2
    square = rgb.crop((left, top, left + short, top + short))
    return _png(np.asarray(square.resize((side, side), Image.Resampling.LANCZOS)))


async def _certify(client: httpx.AsyncClient, image: bytes, fields: dict[str, str]) -> Any:
    answer = await client.post(
        "/v1/certify", files={"image": ("image.png", image, "image/png")}, data=fields
    )
    answer.raise_for_status()
    return answer.json()


Gateway = Any  # an async context manager factory yielding an httpx client on a fresh gateway


async def _measure(
    gateway: Gateway, images: Sequence[Image_], base: dict[str, str], radii: Sequence[float],
    n: int, label: str, plans: Sequence[str],
) -> list[dict[str, Any]]:  # fmt: skip
    """Per plan and r: (certified?, queries) of every image."""
    truths = [truth for _, truth in images]
    runs: dict[tuple[str, float], list[tuple[bool, int]]] = {}
    # A sequential plan first: where the truth is the API's clean label, it names it.
    for plan in sorted(plans, key=lambda plan: plan == "fixed"):
        async with gateway() as client:
            for index, (image, _) in enumerate(tqdm(images, desc=f"{label} {plan}", unit="img")):
                if plan == "fixed":
                    fields = {**base, "candidate": "noisy", "n0": str(FIXED_N0), "n": str(n)}
                    cert = await _certify(client, image, fields)
                    ok = cert["label"] == truths[index]
                    for r in radii:
                        runs.setdefault((plan, r), []).append(
                            (ok and cert["radius"] >= r, cert["queries"]["total"])
                        )
                    continue
                for r in radii:
                    fields = {**base, **SEQUENTIAL[plan], "candidate": "clean", "n0": "0",
                              "n": str(n), "mode": "sequential",
                              "target_radius": str(r)}  # fmt: skip
                    cert = await _certify(client, image, fields)
                    if truths[index] is None:  # the API's label on the clean photo
                        truths[index] = cert["candidate"]
                    ok = cert["label"] == truths[index] and cert["radius"] >= r
                    # queries.total: what the plan rests on, also where the store answered
                    runs.setdefault((plan, r), []).append((ok, cert["queries"]["total"]))
    return [_row(plan, r, runs[plan, r], n) for r in radii for plan in PLANS if plan in plans]


def _row(plan: str, radius: float, outcomes: list[tuple[bool, int]], n: int) -> dict[str, Any]:
    queries = [q for _, q in outcomes]
    certified = sum(ok for ok, _ in outcomes)
    mean = statistics.fmean(queries)
    return {
        "plan": plan,
        "radius": radius,
        "certified": certified,
        "certified_fraction": certified / len(outcomes),
        "queries_mean": round(mean, 1),
        "queries_median": statistics.median(queries),
        "queries_p90": float(np.percentile(queries, 90)),
        "queries_max": max(queries),
        "fewer_than_fixed": round((FIXED_N0 + n) / mean, 1),
        "usd_per_image": {v: round(mean * price, 5) for v, price in PRICES.items()},
        "usd_per_certificate": {
            v: round(sum(queries) * price / certified, 5) if certified else None
            for v, price in PRICES.items()
        },
        "queries": queries,
        "certified_images": [i for i, (ok, _) in enumerate(outcomes) if ok],  # which, by index
    }


def _local_gateway(denoiser: str, n: int) -> Gateway:
    settings = Settings(classifier=default_target(), denoiser=denoiser, max_n_local=n + FIXED_N0)
    return _gateway(settings)


def _gateway(settings: Settings) -> Gateway:
    @asynccontextmanager
    async def open_() -> AsyncIterator[httpx.AsyncClient]:
        async with LifespanManager(create_app(settings)) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://x", timeout=3600
            ) as client:
                yield client

    return open_


async def cifar(
    count: int, n: int, sigmas: Sequence[float], radii: Sequence[float], plans: Sequence[str]
) -> list[Any]:
    data = load_lossless_npz(default_data()).head(count)
    images: list[Image_] = [
        (_png(data.images[i].permute(1, 2, 0).numpy()), data.classes[int(data.labels[i])])
        for i in range(count)
    ]
    results = []
    for sigma in sigmas:
        denoiser = f"unet-cifar10-s{sigma:g}-mse"
        if denoiser not in shipped_checkpoints():
            print(f"CIFAR-10 sigma {sigma}: no {denoiser}, skipped")
            continue
        label = f"CIFAR-10 s={sigma:g}"
        rows = await _measure(
            _local_gateway(denoiser, n), images, {"sigma": str(sigma)}, radii, n, label, plans
        )
        results.append({"setting": "cifar10", "classifier": "cifar-resnet56",
                        "denoiser": denoiser, "sigma": sigma, "images": count, "n": n,
                        "rows": rows})  # fmt: skip
    return results


async def photos(
    count: int, n: int, sigmas: Sequence[float], radii: Sequence[float], side: int,
    plans: Sequence[str],
) -> list[Any]:  # fmt: skip
    folder = shared_dir() / "data/imagenet-samples/images"
    images: list[Image_] = [(_square(p, side), None) for p in sorted(folder.glob("*.JPEG"))[:count]]
    results = []
    fake = FakeState(rate=1000.0, burst=100.0)
    with live_server(fake_google.build(fake)) as url:
        os.environ.update({
            "DSMOOTH_GOOGLE_ENDPOINT": url, "DSMOOTH_GOOGLE_API_KEY": "good-key",
            "DSMOOTH_GOOGLE_REQUESTS_PER_SECOND": "1000",
        })  # fmt: skip
        for sigma in sigmas:
            denoiser = f"unet-imagenet-s{sigma:g}-mse"
            if denoiser not in shipped_checkpoints():
                print(f"photos sigma {sigma}: no {denoiser}, skipped")
                continue
            gateway = _gateway(Settings(denoiser=denoiser, max_n_remote=n + FIXED_N0))
            base = {"sigma": str(sigma), "classifier": "google"}
            rows = await _measure(gateway, images, base, radii, n, f"photos s={sigma:g}", plans)
            results.append({"setting": "photos-google-fake", "classifier": "google (MobileNetV2)",
                            "denoiser": denoiser, "sigma": sigma, "images": count, "n": n,
                            "side": side, "rows": rows})  # fmt: skip
    return results


def format_table(report: dict[str, Any]) -> str:
    """The README's markdown table."""
    lines = [
        "| setting | sigma | r | plan | certified | mean | median | p90 | fewer (mean) "
        "| $/image (Google) | $/certificate (Google) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for setting in report["settings"]:
        for row in setting["rows"]:
            per_cert = row["usd_per_certificate"]["google"]
            lines.append(
                f"| {setting['setting']} ({setting['images']}) | {setting['sigma']:g} "
                f"| {row['radius']:g} | {row['plan']} "
                f"| {row['certified']} ({100 * row['certified_fraction']:.0f}%) "
                f"| {row['queries_mean']:,.1f} | {row['queries_median']:,.0f} "
                f"| {row['queries_p90']:,.0f} | {row['fewer_than_fixed']:,.1f}x "
                f"| {row['usd_per_image']['google']:.4f} "
                f"| {'-' if per_cert is None else f'{per_cert:.4f}'} |"
            )
    return "\n".join(lines)


def plot(report: dict[str, Any], png: Path) -> Path:
    """Mean queries (log scale) of each plan, one panel per (setting, sigma), a group per r;
    the certified count written on each bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    settings = report["settings"]
    figure, axes = plt.subplots(
        1, max(1, len(settings)), figsize=(4.2 * max(1, len(settings)), 4), dpi=110, squeeze=False
    )
    for axis, setting in zip(axes[0], settings, strict=False):
        radii = sorted({row["radius"] for row in setting["rows"]})
        plans = [p for p in PLANS if any(row["plan"] == p for row in setting["rows"])]
        width = 0.8 / len(plans)
        for k, plan in enumerate(plans):
            rows = [next(r for r in setting["rows"] if r["plan"] == plan and r["radius"] == radius)
                    for radius in radii]  # fmt: skip
            xs = [i + (k - (len(plans) - 1) / 2) * width for i in range(len(radii))]
            bars = axis.bar(xs, [r["queries_mean"] for r in rows], width, label=plan)
            for bar, row in zip(bars, rows, strict=True):
                axis.annotate(str(row["certified"]), (bar.get_x() + width / 2, bar.get_height()),
                              ha="center", va="bottom", fontsize=7)  # fmt: skip
        axis.set_yscale("log")
        axis.set_xticks(range(len(radii)), [f"r = {r:g}" for r in radii])
        axis.set_title(f"{setting['setting']}, sigma {setting['sigma']:g}", fontsize=9)
        axis.set_ylabel("mean queries per image (certified count on bars)", fontsize=8)
        axis.grid(alpha=0.3, axis="y")
    axes[0][0].legend(fontsize=7)
    figure.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(png)
    plt.close(figure)
    return png


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every setting; the report is written again after each (a long run keeps what it did)."""
    report: dict[str, Any] = {
        "benchmark": "query_efficiency",
        "alpha": 0.001,
        "plans": {"fixed": {"n0": FIXED_N0}, **SEQUENTIAL},
        "prices_usd_per_query": PRICES,
        "settings": [],
        "provenance": provenance(str(resolve_device(Settings().device))),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    for sigma in args.sigma if args.count else []:
        report["settings"] += await cifar(args.count, args.n, [sigma], args.radius, args.plan)
        write_report(args.out, report)
    for sigma in args.photo_sigma if args.photos else []:
        report["settings"] += await photos(
            args.photos, args.api_n, [sigma], args.radius, args.side, args.plan
        )
        write_report(args.out, report)
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="dsmooth bench queries", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--count", type=int, default=100, help="CIFAR test images (0: skip)")
    parser.add_argument("--photos", type=int, default=10, help="sample photos (0: skip)")
    parser.add_argument("--n", type=int, default=10_000, help="budget of every plan (CIFAR)")
    parser.add_argument("--api-n", type=int, default=1_000, help="budget of every plan (photos)")
    parser.add_argument("--side", type=int, default=224, help="photos are certified at this side")
    parser.add_argument("--sigma", type=float, action="append", help="CIFAR (default 0.25, 0.5)")
    parser.add_argument("--photo-sigma", type=float, action="append", help="default: 0.25")
    parser.add_argument("--radius", type=float, action="append", help="default: 0.25, 0.5")
    parser.add_argument("--plan", choices=PLANS, action="append", help="default: all")
    parser.add_argument("--out", type=Path, default=Path("build/benchmarks/query_efficiency.json"))
    arguments = parser.parse_args(argv)
    arguments.plan = arguments.plan or list(PLANS)
    arguments.sigma = arguments.sigma or [0.25, 0.5]
    arguments.photo_sigma = arguments.photo_sigma or [0.25]
    arguments.radius = arguments.radius or [0.25, 0.5]
    report = asyncio.run(run(arguments))
    print(format_table(report))
    print(f"wrote {plot(report, arguments.out.with_suffix('.png'))}")


if __name__ == "__main__":
    main()
