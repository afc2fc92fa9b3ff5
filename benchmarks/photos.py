"""Certified accuracy of MobileNetV2 on the ImageNet sample photos, with and without the photo
denoisers, locally and through the fake Google Vision API.

    OMP_NUM_THREADS=1 .venv/bin/dsmooth bench photos            # the defaults: 30-40 minutes

The photos: the first ``--count`` of ``../shared/data/imagenet-samples/images`` by file name,
each converted to RGB, centre-cropped to the square of its short side and resized to 224 x 224
(PIL, Lanczos), rounded to uint8: that 224 px photo is the image certified (the noise is added
to it, rule 1). True label: the file's WordNet id -> its ImageNet index i in
``imagenet_class_index.json``; MobileNetV2 has 1001 outputs with 0 = "background", so locally
the certificate's ``label_key`` must be ``str(i + 1)`` (its name: line i + 1 of the labels file),
and through Google the fake's ``mid`` ``/m/<wnid>``.

Rows, per sigma (default: every shipped ``unet-imagenet-s{sigma}-mse``): no denoiser, and that
photo denoiser. Each row at each ``--n``: certified accuracy at r = 0, 0.25, 0.5, 0.75, 1.0 of the
fixed plan (n0 = 100 noisy selection samples, as the project's fixed plan and its savings figure
use; the paper's vendor runs used n0 = 20, ``--n0 20``), alpha = 0.001; and the sequential plan's
queries per photo (candidate = the clean photo's label, betting sequence with target radius
``--target-radius``, budget n). Two cheap measures over ``--agreement-count`` photos (default: all
102): MobileNetV2's accuracy on the clean 224 px photos, and the agreement rate (a denoised
noisy copy classified like the clean photo; ``--agreement-copies`` per photo) with those copies'
PSNR. Certificates are computed without the service's
ledger, so each holds at alpha on its own (as in ``dsmooth bench certify``).

Defaults and cost, measured on a 2-core AMD EPYC with AVX512-BF16 (bf16, OMP_NUM_THREADS=1,
beside a training run on the other core; the U-Net on one 224 px copy costs about 0.1 s,
MobileNetV2 0.014 s): with the two photo denoisers shipped now (sigma 0.12 and 0.25), local rows
on 28 photos at n = 100 (about 47 s per photo for the four rows), Google rows on 8 photos at
n = 100 (about 55 s per photo), clean accuracy and agreement on all 102 photos: 30 minutes
measured (up to 40 on a busier machine). Each further photo denoiser adds about 25 s per photo
and row; n = 1,000 (``--n 100 --n 1000``) costs about 6x n = 100 per photo.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import httpx
import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from benchmarks.provenance import provenance, write_report
from benchmarks.report import RADII, plot_curves
from denoisers.registry import (
    LoadedModel,
    load_classifier,
    load_denoiser,
    shipped_checkpoints,
    shipped_metadata,
)
from service.adapters.fanout import FanOut, FanOutPolicy
from service.adapters.google import GoogleAdapter, GoogleSettings
from service.config import shared_dir
from service.core.certifier import Certifier, Sampler
from service.core.noise import Chunk, Phase, chunk_seed, image_digest
from service.core.results import CertifyParams
from service.execution.devices import Precision, resolve_device
from service.execution.local import LocalDenoiser, LocalSampler
from service.execution.remote import RemoteSampler
from service.testing.fakes import google as fake_google
from service.testing.fakes.common import FakeState
from service.testing.fakes.labeler import MobileNetLabeler
from service.testing.live_server import live_server

__all__ = [
    "PAPER_VENDORS",
    "Photo",
    "format_markdown",
    "format_table",
    "load_photo",
    "photo_denoisers",
    "read_photos",
    "run",
    "true_key",
]

CLASSIFIER = "imagenet-mobilenetv2"
SECRET = b"benchmark-secret"  # fixed, so that runs repeat (the Google rows' seeds also hold the
# fake's port, which changes from run to run)
# Salman et al. 2020, vision APIs: sigma 0.25, n0 = 20, n = 100, alpha 0.001, 100 ImageNet images,
# the best black-box denoiser; certified accuracy (%) at r = 0 against the API's own clean label.
PAPER_VENDORS = {"Azure": 33.0, "Clarifai": 29.0, "Google": 21.0, "AWS": 13.0}
_DENOISER = re.compile(r"^unet-imagenet-s(?P<sigma>[0-9.]+)-mse$")
RESIZE = "RGB, centre crop to the short side's square, Lanczos resize to {side}x{side}, uint8"


@dataclass(frozen=True)
class Photo:
    path: Path
    wnid: str
    index: int  # ImageNet class index, 0..999
    name: str  # the class index file's name of the class


def samples_dir() -> Path:
    return shared_dir() / "data/imagenet-samples"


def read_photos(folder: Path, class_index: Path, count: int | None = None) -> list[Photo]:
    """The first ``count`` photos ``<wnid>_<name>.JPEG`` of ``folder`` by name, with their class."""
    entries = json.loads(class_index.read_text()).items()
    index = {wnid: (int(i), name) for i, (wnid, name) in entries}
    photos = []
    for path in sorted(folder.glob("*.JPEG"))[:count]:
        wnid = path.stem.split("_", 1)[0]
        if wnid not in index:
            raise ValueError(f"{path.name}: {wnid} is not in {class_index}")
        photos.append(Photo(path, wnid, *index[wnid]))
    return photos


def true_key(photo: Photo, via: str) -> str:
    """The label key a right certificate carries: MobileNetV2's output index (ImageNet index + 1,
    output 0 being "background") locally, the WordNet id as a ``mid`` through the fake Google."""
    return str(photo.index + 1) if via == "local" else f"/m/{photo.wnid}"


def load_photo(path: Path, side: int = 224) -> torch.Tensor:
    """The photo as certified: RGB, centre-cropped to a square, resized to ``side``, uint8, then
    float32 [3, side, side] in [0, 1] (what the service decodes from a PNG of it)."""
    with Image.open(path) as opened:
        rgb = opened.convert("RGB")
    short = min(rgb.size)
    left, top = (rgb.width - short) // 2, (rgb.height - short) // 2
    square = rgb.crop((left, top, left + short, top + short))
    pixels = np.asarray(square.resize((side, side), Image.Resampling.LANCZOS), dtype=np.uint8)
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1).float() / 255


def photo_denoisers() -> dict[float, str]:
    """The shipped photo denoisers ``unet-imagenet-s{sigma}-mse``, by the sigma each was trained
    for (its metadata, else its name): whatever checkpoints exist now."""
    found: dict[float, str] = {}
    metadata = shipped_metadata()
    for name in shipped_checkpoints():
        match = _DENOISER.match(name)
        if match:
            sigma = metadata.get(name, {}).get("sigma") or match["sigma"]
            found[float(sigma)] = name
    return dict(sorted(found.items()))


@dataclass(frozen=True)
class Options:
    count: int = 28
    google_count: int = 8
    agreement_count: int | None = None  # None: every photo
    agreement_copies: int = 1
    sigmas: tuple[float, ...] = ()  # (): those of the shipped photo denoisers
    ns: tuple[int, ...] = (100,)
    google_ns: tuple[int, ...] = (100,)
    n0: int = 100
    alpha: float = 0.001
    target_radius: float = 0.25
    via: str = "both"
    side: int = 224
    batch_size: int = 100
    precision: str = "auto"
    device: str = "auto"
    folder: Path | None = None
    class_index: Path | None = None


def _fraction(hits: int, total: int) -> float:
    return hits / total if total else 0.0


async def _certify_photo(
    certifier: Certifier, image: torch.Tensor, truth: str, sigma: float, n: int, opts: Options
) -> dict[str, Any]:
    began = time.perf_counter()
    fixed = await certifier.certify(
        image, CertifyParams(sigma=sigma, n0=opts.n0, n=n, alpha=opts.alpha)
    )
    middle = time.perf_counter()
    sequential = await certifier.certify(
        image,
        CertifyParams(
            sigma=sigma, n0=0, n=n, alpha=opts.alpha, candidate="clean", mode="sequential",
            target_radius=opts.target_radius,
        ),
    )  # fmt: skip
    return {
        "label": fixed.label,
        "label_key": fixed.label_key,
        "correct": fixed.label_key == truth,
        "radius": fixed.radius,
        "p_lower": fixed.p_lower,
        "seconds": middle - began,
        "sequential": {
            "label_key": sequential.label_key,
            "radius": sequential.radius,
            "queries": sequential.queries.total,
            "certified": sequential.label_key == truth and sequential.radius >= opts.target_radius,
            "stop_reason": sequential.stop_reason,
            "seconds": time.perf_counter() - middle,
        },
    }


def _top(votes: dict[str, int]) -> str | None:
    return min(votes, key=lambda key: (-votes[key], key)) if votes else None


async def _clean_labels(sampler: Sampler, images: Sequence[torch.Tensor]) -> list[str | None]:
    return [_top((await sampler.clean_votes(image)).counts) for image in images]


async def _agreement(
    sampler: Sampler, denoiser: LocalDenoiser, images: Sequence[torch.Tensor],
    clean: Sequence[str | None], sigma: float, copies: int,
) -> dict[str, float]:  # fmt: skip
    """Over photos, the mean share of ``copies`` denoised noisy copies labelled as the clean
    photo, and the copies' mean PSNR against it (seeded apart from every certificate's noise)."""
    shares, psnrs = [], []
    for image, label in zip(images, clean, strict=True):
        digest = image_digest(image)
        params = {**sampler.noise_params, "benchmark": "agreement"}
        seed = chunk_seed(SECRET, digest, params, Phase.SELECTION, 0)
        chunk = Chunk(
            phase=Phase.SELECTION, index=0, size=copies, seed=seed, sigma=sigma, digest=digest
        )
        votes = await sampler.count(image, chunk)
        shares.append(votes.counts.get(label, 0) / copies if label is not None else 0.0)
        denoised = await denoiser.on_model_thread(denoiser.denoised, image, chunk)
        mse = (denoised.clamp(0, 1) - image.float()).square().mean(dim=(1, 2, 3))
        psnrs += (-10 * torch.log10(mse.clamp_min(1e-10))).tolist()
    mean = statistics.fmean
    return {"rate": mean(shares) if shares else 0.0, "psnr_db": mean(psnrs) if psnrs else 0.0}


@asynccontextmanager
async def _google() -> AsyncIterator[FanOut]:
    """The fake Google Vision API (real MobileNetV2 labels) on a local port, and a fan-out to it."""
    fake = FakeState(rate=10_000.0, burst=1_000.0)
    if not isinstance(fake.labeler, MobileNetLabeler):
        raise RuntimeError("the fake Google API has no MobileNetV2 here (../shared or the runtime)")
    with live_server(fake_google.build(fake)) as url:
        async with httpx.AsyncClient(timeout=120) as client:
            settings = GoogleSettings(endpoint=url, api_key="good-key", requests_per_second=1e4)
            adapter = GoogleAdapter(client, settings)
            yield FanOut(adapter, FanOutPolicy(concurrency=4, requests_per_second=1e4))


def _rows_to_run(opts: Options) -> tuple[list[tuple[float, str]], list[dict[str, Any]]]:
    """(sigma, denoiser) pairs: at each sigma no denoiser, and the photo denoiser if shipped."""
    shipped = photo_denoisers()
    sigmas = opts.sigmas or tuple(shipped)
    rows, skipped = [], []
    for sigma in sigmas:
        rows.append((sigma, "none"))
        name = next((name for s, name in shipped.items() if abs(s - sigma) < 1e-9), None)
        if name is None:
            skipped.append({"sigma": sigma, "reason": "no unet-imagenet-s{sigma}-mse checkpoint"})
        else:
            rows.append((sigma, name))
    return rows, skipped


async def _run_via(
    via: str, opts: Options, photos: list[Photo], images: list[torch.Tensor], fanout: FanOut | None
) -> tuple[list[dict[str, Any]], dict[str, Any], str]:
    count = opts.count if via == "local" else opts.google_count
    ns = opts.ns if via == "local" else opts.google_ns
    agreement_count = opts.agreement_count if opts.agreement_count is not None else len(photos)
    classifier = load_classifier(CLASSIFIER)
    precision = opts.precision

    def sampler_for(denoiser: str) -> tuple[Sampler, LocalDenoiser, LoadedModel]:
        nonlocal precision
        model = load_denoiser(denoiser)  # once per row: a checkpoint retrained meanwhile waits
        local: LocalSampler | LocalDenoiser
        prec = cast(Precision, precision)
        if fanout is None:
            local = LocalSampler(model, classifier, opts.device, opts.batch_size, precision=prec)
            sampler: Sampler = local
        else:
            local = LocalDenoiser(model, opts.device, opts.batch_size, precision=prec)
            sampler = RemoteSampler("google", local, fanout)
        precision = str(local.compute_dtype)
        return sampler, local, model

    # Clean labels (no noise, no denoiser): MobileNetV2's accuracy on the 224 px photos.
    judged = photos[: max(agreement_count, count)]
    clean = await _clean_labels(sampler_for("none")[0], images[: len(judged)])
    right = sum(label == true_key(p, via) for p, label in zip(judged, clean, strict=True))
    clean_accuracy = {"photos": len(judged), "accuracy": _fraction(right, len(judged))}

    rows_to_run, _ = _rows_to_run(opts)
    rows: list[dict[str, Any]] = []
    for sigma, denoiser in rows_to_run:
        sampler, local, model = sampler_for(denoiser)
        certifier = Certifier(sampler, SECRET)
        agreement = await _agreement(
            sampler, local, images[:agreement_count], clean[:agreement_count], sigma,
            opts.agreement_copies,
        )  # fmt: skip
        for n in ns:
            results = []
            progress = tqdm(photos[:count], desc=f"{via} {denoiser} sigma={sigma} n={n}",
                            unit="photo")  # fmt: skip
            for index, photo in enumerate(progress):
                result = await _certify_photo(
                    certifier, images[index], true_key(photo, via), sigma, n, opts
                )
                result |= {
                    "photo": photo.path.name,
                    "truth": true_key(photo, via),
                    "clean_label_key": clean[index],
                    "matches_clean": result["label_key"] == clean[index],
                }
                results.append(result)
            queries = [r["sequential"]["queries"] for r in results]
            rows.append({
                "via": via,
                "denoiser": {"name": model.name, "version": model.version},
                "sigma": sigma,
                "n": n,
                "n0": opts.n0,
                "photos": len(results),
                "certified_accuracy": {
                    str(r): _fraction(
                        sum(x["correct"] and x["radius"] >= r for x in results), len(results)
                    )
                    for r in RADII
                },
                # The paper's "ground truth": the classifier's own label on the clean photo.
                "certified_vs_clean_label_r0": _fraction(
                    sum(x["matches_clean"] and x["label_key"] is not None for x in results),
                    len(results),
                ),
                "sequential": {
                    "target_radius": opts.target_radius,
                    "budget": n,
                    "queries_median": statistics.median(queries) if queries else None,
                    "queries_mean": round(statistics.fmean(queries), 1) if queries else None,
                    "certified_at_target": _fraction(
                        sum(r["sequential"]["certified"] for r in results), len(results)
                    ),
                },
                "agreement": {
                    "photos": agreement_count, "copies": opts.agreement_copies, **agreement,
                },
                "seconds_per_photo": round(_fraction(
                    sum(r["seconds"] + r["sequential"]["seconds"] for r in results), len(results)
                ), 2),
                "results": results,
            })  # fmt: skip
    return rows, clean_accuracy, precision


async def run(opts: Options) -> dict[str, Any]:
    began = time.perf_counter()
    folder = opts.folder or samples_dir() / "images"
    class_index = opts.class_index or samples_dir() / "imagenet_class_index.json"
    vias = ("local", "google") if opts.via == "both" else (opts.via,)
    agreement_count = opts.agreement_count
    largest = max(
        [opts.count if "local" in vias else 0, opts.google_count if "google" in vias else 0]
    )
    photos = read_photos(folder, class_index)
    if agreement_count is not None:
        photos = photos[: max(agreement_count, largest)]
    images = [load_photo(photo.path, opts.side) for photo in photos]
    rows: list[dict[str, Any]] = []
    clean_accuracy: dict[str, Any] = {}
    precision = opts.precision
    for via in vias:
        if via == "local":
            got, clean_accuracy[via], precision = await _run_via(via, opts, photos, images, None)
        else:
            async with _google() as fanout:
                got, clean_accuracy[via], precision = await _run_via(
                    via, opts, photos, images, fanout
                )
        rows += got
    _, skipped = _rows_to_run(opts)
    return {
        "benchmark": "photos",
        "classifier": CLASSIFIER,
        "photos": {
            "folder": str(folder),
            "side": opts.side,
            "preprocessing": RESIZE.format(side=opts.side),
            "local": min(opts.count, len(photos)) if "local" in vias else 0,
            "google": min(opts.google_count, len(photos)) if "google" in vias else 0,
            "agreement": len(photos) if agreement_count is None else agreement_count,
        },
        "alpha": opts.alpha,
        "n0": opts.n0,
        "radii": list(RADII),
        "target_radius": opts.target_radius,
        "clean_accuracy": clean_accuracy,
        "rows": rows,
        "skipped": skipped,
        "paper_vendor_rows": {
            "setting": "Salman et al. 2020: sigma 0.25, n0 = 20, n = 100, alpha 0.001, "
            "100 ImageNet images, best black-box denoiser, vs the API's own clean label, r = 0",
            "certified_accuracy_r0_percent": PAPER_VENDORS,
        },
        "precision": precision,
        "wall_seconds": round(time.perf_counter() - began, 1),
        "provenance": provenance(str(resolve_device(opts.device))),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def _cells(row: dict[str, Any]) -> list[str]:
    seq = row["sequential"]
    return [
        row["via"], row["denoiser"]["name"], f"{row['sigma']:g}", f"{row['n']:,}",
        str(row["photos"]),
        *(f"{100 * row['certified_accuracy'][str(r)]:.0f}" for r in RADII),
        f"{100 * row['certified_vs_clean_label_r0']:.0f}",
        "-" if seq["queries_median"] is None else
        f"{seq['queries_median']:g} ({seq['queries_mean']:g})",
        f"{100 * seq['certified_at_target']:.0f}",
        f"{100 * row['agreement']['rate']:.0f}",
        f"{row['agreement']['psnr_db']:.2f}",
        f"{row['seconds_per_photo']:.0f}",
    ]  # fmt: skip


def _header(report: dict[str, Any]) -> list[str]:
    r = report["target_radius"]
    return [
        "via", "denoiser", "sigma", "n", "photos", *(f"r={x:g}" for x in RADII),
        "r=0 vs clean label", f"seq. queries median (mean), r={r:g}", f"seq. certified r={r:g}",
        "agreement", "PSNR dB", "s/photo",
    ]  # fmt: skip


def _paper_lines() -> list[str]:
    return [f"  {name}: {value:g}%" for name, value in PAPER_VENDORS.items()]


def _clean_line(report: dict[str, Any]) -> str:
    parts = [
        f"{via} {100 * c['accuracy']:.1f}% of {c['photos']}"
        for via, c in report["clean_accuracy"].items()
    ]
    return "MobileNetV2 clean accuracy on the 224 px photos: " + ", ".join(parts)


def format_table(report: dict[str, Any]) -> str:
    """The rows as a plain table (certified accuracy in %), the paper's vendor points beside."""
    header = _header(report)
    body = [_cells(row) for row in report["rows"]]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(cell.rjust(width) for cell, width in zip(line, widths, strict=True))
             for line in [header, *body]]  # fmt: skip
    lines += ["", _clean_line(report)]
    lines += [
        "Paper (Salman et al. 2020, vision APIs, sigma 0.25, n0 = 20, n = 100, 100 images, "
        "black-box denoiser, r = 0 vs the API's clean label):",
        *_paper_lines(),
    ]
    lines += [f"skipped: sigma {s['sigma']:g} ({s['reason']})" for s in report["skipped"]]
    return "\n".join(lines)


def format_markdown(report: dict[str, Any]) -> str:
    """The same table in markdown, to paste into the README."""
    header = _header(report)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cells(row)) + " |" for row in report["rows"]]
    for name, value in PAPER_VENDORS.items():  # against the API's own clean label, n0 = 20
        cells = ["paper", f"{name} (black-box)", "0.25", "100", "100", *["-"] * len(RADII)]
        cells.append(f"{value:g}")
        lines.append("| " + " | ".join(cells + ["-"] * (len(header) - len(cells))) + " |")
    machine = report["provenance"]["machine"]
    lines += [
        "",
        f"{_clean_line(report)}. alpha = {report['alpha']}, n0 = {report['n0']}; "
        f"{report['photos']['preprocessing']}. {machine['cpu']} "
        f"(AVX512-BF16: {'yes' if machine['avx512_bf16'] else 'no'}), {report['precision']}, "
        f"{machine['torch_threads']} torch thread(s); wall time "
        f"{report['wall_seconds'] / 60:.0f} min; "
        f"commit {report['provenance']['git']['commit'][:8]}.",
    ]
    return "\n".join(lines)


def _curve(results: Sequence[dict[str, Any]], radii: Sequence[float]) -> list[float]:
    return [
        100 * _fraction(sum(r["correct"] and r["radius"] >= x for r in results), len(results))
        for x in radii
    ]


def plot(report: dict[str, Any], png: Path) -> Path:
    """Certified accuracy against the radius per row; the paper's vendors as markers at r = 0."""
    top = max([r["radius"] for row in report["rows"] for r in row["results"]] + [0.5])
    grid = [top * 1.05 * i / 200 for i in range(201)]
    curves = {
        f"{row['via']}: {row['denoiser']['name']}, sigma {row['sigma']:g}, n {row['n']:,}": (
            grid, _curve(row["results"], grid)
        )
        for row in report["rows"]
    }  # fmt: skip
    markers = {
        f"paper: {name} (sigma 0.25, n 100, black-box)": ([0.0], [value])
        for name, value in PAPER_VENDORS.items()
    }
    photos = report["photos"]
    title = (
        f"MobileNetV2, {photos['side']} px photos (local {photos['local']}, "
        f"Google {photos['google']}), alpha {report['alpha']}"
    )
    dashed = [name for name in curves if name.startswith("google")]
    return plot_curves(png, curves, markers, title, dashed)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="dsmooth bench photos",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n")[-1],
    )
    defaults = Options()
    parser.add_argument(
        "--count",
        type=int,
        default=defaults.count,
        help="photos certified locally (first by file name)",
    )
    parser.add_argument(
        "--google-count",
        type=int,
        default=defaults.google_count,
        help="photos certified through the fake Google API",
    )
    parser.add_argument(
        "--agreement-count",
        type=int,
        default=None,
        help="photos of the clean accuracy and agreement rate (default: all)",
    )
    parser.add_argument(
        "--agreement-copies",
        type=int,
        default=1,
        help="denoised noisy copies per photo for the agreement rate",
    )
    parser.add_argument(
        "--sigma",
        type=float,
        action="append",
        default=None,
        help="repeatable; default: the sigmas of the shipped photo denoisers",
    )
    parser.add_argument(
        "--n",
        type=int,
        action="append",
        default=None,
        help="repeatable; default 100 (the paper's vendor setting)",
    )
    parser.add_argument(
        "--google-n",
        type=int,
        action="append",
        default=None,
        help="repeatable n of the Google rows; default 100",
    )
    parser.add_argument("--n0", type=int, default=defaults.n0)
    parser.add_argument("--alpha", type=float, default=defaults.alpha)
    parser.add_argument(
        "--target-radius",
        type=float,
        default=defaults.target_radius,
        help="the sequential plan's target radius",
    )
    parser.add_argument("--via", choices=("local", "google", "both"), default=defaults.via)
    parser.add_argument("--side", type=int, default=defaults.side)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto")
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--photos-dir",
        type=Path,
        default=None,
        help="default: $DSMOOTH_SHARED_DIR/data/imagenet-samples/images",
    )
    parser.add_argument(
        "--class-index",
        type=Path,
        default=None,
        help="default: imagenet_class_index.json beside the photos' folder",
    )
    parser.add_argument(
        "--markdown",
        action="store_true",
        help="print the markdown table (for the README) instead of the plain one",
    )
    parser.add_argument(
        "--render",
        type=Path,
        default=None,
        metavar="JSON",
        help="run nothing: print the tables of a report this benchmark wrote and redraw its "
        "markdown and PNG beside it",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("build/benchmarks/photos.json"),
        help="JSON; the PNG plot and the markdown table are written beside it",
    )
    args = parser.parse_args(argv)
    opts = Options(
        count=args.count, google_count=args.google_count, agreement_count=args.agreement_count,
        agreement_copies=args.agreement_copies, sigmas=tuple(args.sigma or ()),
        ns=tuple(args.n or (100,)), google_ns=tuple(args.google_n or (100,)), n0=args.n0,
        alpha=args.alpha, target_radius=args.target_radius, via=args.via, side=args.side,
        batch_size=args.batch_size, precision=args.precision, device=args.device,
        folder=args.photos_dir,
        class_index=args.class_index
        or (args.photos_dir.parent / "imagenet_class_index.json" if args.photos_dir else None),
    )  # fmt: skip
    if args.render is not None:
        out, report = args.render, json.loads(args.render.read_text())
    else:
        out, report = args.out, asyncio.run(run(opts))
        write_report(out, report)
    print()
    print(format_markdown(report) if args.markdown else format_table(report))
    markdown = out.with_suffix(".md")
    markdown.write_text(format_markdown(report) + "\n")
    png = plot(report, out.with_suffix(".png"))
    print(f"wrote {markdown} and {png}")


if __name__ == "__main__":
    main()
