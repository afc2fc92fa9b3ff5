"""Evaluation of denoiser + classifier pairs on the lossless CIFAR-10 test images.

- Certified accuracy (``dsmooth bench certify``): at radius r, the fraction of the images
  certified with their true label and a radius >= r. Rows are denoiser specs or methods:
  ``none``, ``mse``, ``stab-blackbox``, ``stab-whitebox`` (the shipped U-Net of each sigma).
- The denoiser table (``dsmooth bench denoisers``): PSNR and the classifier's accuracy on denoised
  noisy copies, with each denoiser's cost (parameters, FLOPs, images/s) to compare architectures.

Reports are plain dicts written as JSON; ``dsmooth report`` draws the certified-accuracy plot.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode
from tqdm import tqdm

from benchmarks.provenance import provenance
from benchmarks.report import PAPER_ROWS, RADII
from denoisers.registry import LoadedModel, load_classifier, load_denoiser, shipped_checkpoints
from denoisers.training.data import ImageSet, load_lossless_npz
from service.config import shared_dir
from service.core.certifier import Certifier
from service.core.results import CertifyParams
from service.execution.devices import Precision, for_inference
from service.execution.local import LocalSampler

__all__ = [
    "METHODS",
    "RADII",
    "SIGMAS",
    "CertifySettings",
    "certified_accuracy",
    "default_data",
    "default_target",
    "denoiser_for",
    "denoiser_table",
    "format_certified_accuracy",
    "format_denoiser_table",
    "run_certified_accuracy",
    "shared_dir",
]

# The published grid: the papers' best-over-sigma rows include 1.0 for the larger radii.
SIGMAS = (0.12, 0.25, 0.5, 1.0)
# Benchmark rows -> the shipped checkpoint for a sigma (the paper's rows: no denoiser, MSE,
# Stab fine-tuned through surrogates (black-box) or through the target itself (white-box)).
METHODS = {
    "none": "none",
    "mse": "unet-cifar10-s{sigma:g}-mse",
    "stab-blackbox": "unet-cifar10-s{sigma:g}-stab-blackbox",
    "stab-whitebox": "unet-cifar10-s{sigma:g}-stab-whitebox-resnet56",
}
_RESNET56 = "models/third-party/cifar10-resnet/resnet56-4bfd9763.th"


def default_target() -> str:
    """The benchmark's target: the third-party CIFAR-10 ResNet-56 (never trained on by us)."""
    return f"cifar-resnet56:{shared_dir() / _RESNET56}"


def default_data() -> Path:
    return shared_dir() / "data/cifar10/test-lossless-1000.npz"


def denoiser_for(row: str, sigma: float) -> str | None:
    """The denoiser spec of a row at ``sigma``; None where no such checkpoint is shipped.

    A row that is not a method name is a denoiser spec; it runs only at the sigma its checkpoint
    was trained for (when the checkpoint says).
    """
    if row in METHODS:
        name = METHODS[row].format(sigma=sigma)
        return name if name == "none" or name in shipped_checkpoints() else None
    trained_for = load_denoiser(row).sigma
    return row if trained_for is None or abs(trained_for - sigma) < 1e-9 else None


@dataclass(frozen=True)
class CertifySettings:
    images: int = 100
    n0: int = 100
    n: int = 1000
    alpha: float = 0.001
    batch_size: int = 500
    device: str = "auto"
    precision: Precision = "auto"
    secret: str = "benchmark-secret"  # HMAC secret of the noise: fixed, so runs repeat exactly


def certified_accuracy(results: Sequence[dict[str, Any]], radius: float) -> float:
    hits = sum(1 for r in results if r["correct"] and r["radius"] >= radius)
    return hits / len(results) if results else 0.0


def run_certified_accuracy(
    classifier_spec: str,
    rows: Sequence[str],
    sigmas: Sequence[float],
    data_path: Path,
    settings: CertifySettings,
) -> dict[str, Any]:
    """Certify the first ``settings.images`` test images for every (row, sigma) available."""
    data = load_lossless_npz(data_path).head(settings.images)
    classifier = load_classifier(classifier_spec)
    report_rows: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    precision, device = settings.precision, settings.device  # resolved by the first sampler
    for row in rows:
        for sigma in sigmas:
            spec = denoiser_for(row, sigma)
            if spec is None:
                skipped.append({"row": row, "sigma": sigma, "reason": "no checkpoint"})
                tqdm.write(f"skipped {row} at sigma {sigma}: no checkpoint for this sigma")
                continue
            denoiser = load_denoiser(spec)
            worker = LocalSampler(
                denoiser, classifier, settings.device, settings.batch_size, precision=precision
            )
            precision = worker.compute_dtype  # type: ignore[assignment]
            device = worker.device_name
            results = _certify_all(
                Certifier(worker, settings.secret.encode()), data, sigma, row, classifier, settings
            )
            report_rows.append(
                {
                    "method": row,
                    "denoiser": {"name": denoiser.name, "version": denoiser.version},
                    "sigma": sigma,
                    "certified_accuracy": {str(r): certified_accuracy(results, r) for r in RADII},
                    "seconds_per_image": sum(r["seconds"] for r in results) / len(results),
                    "results": results,
                }
            )
    return {
        "benchmark": "certified_accuracy",
        "classifier": {"name": classifier.name, "version": classifier.version},
        "data": {"path": str(data_path), "count": len(data)},
        **{k: v for k, v in asdict(settings).items() if k in ("n0", "n", "alpha")},
        "radii": list(RADII),
        "rows": report_rows,
        "skipped": skipped,
        "precision": str(precision),
        "provenance": provenance(device),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def _certify_all(
    certifier: Certifier,
    data: ImageSet,
    sigma: float,
    row: str,
    classifier: LoadedModel,
    settings: CertifySettings,
) -> list[dict[str, Any]]:
    params = CertifyParams(sigma=sigma, n0=settings.n0, n=settings.n, alpha=settings.alpha)
    results = []
    for index in tqdm(range(len(data)), desc=f"{row} sigma={sigma}", unit="image"):
        began = time.perf_counter()
        cert = asyncio.run(certifier.certify(data.floats(index, index + 1)[0], params))
        truth = classifier.classes[int(data.labels[index])]
        results.append(
            {
                "index": index,
                "label": truth,
                "predicted": cert.label,
                "correct": cert.label == truth,
                "radius": cert.radius,
                "p_lower": cert.p_lower,
                "seconds": time.perf_counter() - began,
            }
        )
    return results


def format_certified_accuracy(report: dict[str, Any]) -> str:
    """Per (row, sigma), the best over sigma per row, and the published rows beside."""
    header = f"{'row':<16}{'denoiser':<44}{'sigma':>6}" + "".join(
        f"{'r=' + str(r):>8}" for r in RADII
    )
    lines = [header]
    best: dict[str, list[float]] = {}
    for row in report["rows"]:
        accuracy = [100 * row["certified_accuracy"][str(r)] for r in RADII]
        best[row["method"]] = [
            max(a, b) for a, b in zip(best.get(row["method"], accuracy), accuracy, strict=True)
        ]
        lines.append(
            f"{row['method']:<16}{row['denoiser']['name']:<44}{row['sigma']:>6}"
            + "".join(f"{a:>8.1f}" for a in accuracy)
            + f"   {row['seconds_per_image']:.2f} s/image"
        )
    lines += ["", f"{'best over sigma':<66}" + "".join(f"{'r=' + str(r):>8}" for r in RADII)]
    lines += [f"{name:<66}" + "".join(f"{a:>8.1f}" for a in acc) for name, acc in best.items()]
    lines += [
        f"{name + ' (published)':<66}{'-':>8}" + "".join(f"{a:>8g}" for a in published)
        for name, published in PAPER_ROWS.items()
    ]
    for skip in report.get("skipped", []):
        lines.append(f"skipped: {skip['row']} at sigma {skip['sigma']} ({skip['reason']})")
    return "\n".join(lines)


def _flops_per_image(module: torch.nn.Module, size: int) -> int:
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        module(torch.zeros(1, 3, size, size))
    return int(counter.get_total_flops())


def _images_per_second(module: torch.nn.Module, size: int, batch: int = 256) -> float:
    x = torch.rand(batch, 3, size, size).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        module(x)  # warm-up: first-call allocations and kernel selection
        began = time.perf_counter()
        module(x)
        return batch / (time.perf_counter() - began)


def denoiser_table(
    classifier_spec: str,
    denoiser_specs: Sequence[str],
    sigmas: Sequence[float],
    data_path: Path,
    images: int = 500,
    seed: int = 0,
) -> dict[str, Any]:
    """PSNR (noisy, denoised) and accuracy on denoised noisy copies for every denoiser x sigma
    (a denoiser with a trained-for sigma only at that sigma), one noise draw per image."""
    data = load_lossless_npz(data_path).head(images)
    clean = data.floats()
    classifier = load_classifier(classifier_spec)
    classify = for_inference(classifier.module, torch.device("cpu"))
    rows = []
    for spec in denoiser_specs:
        loaded = load_denoiser(spec)
        denoise = for_inference(loaded.module, torch.device("cpu"))
        cost = {
            "parameters": sum(p.numel() for p in loaded.module.parameters()),
            "mflops_per_image": _flops_per_image(denoise, clean.shape[-1]) / 1e6,
            "images_per_second": (
                _images_per_second(denoise, clean.shape[-1])
                if loaded.architecture != "none"
                else None
            ),
        }
        for sigma in sigmas:
            if loaded.sigma is not None and abs(loaded.sigma - sigma) > 1e-9:
                continue
            generator = torch.Generator().manual_seed(seed)
            noisy = clean + sigma * torch.randn(clean.shape, generator=generator)
            with torch.inference_mode():
                denoised = torch.cat([denoise(b) for b in noisy.split(250)]).clamp(0, 1)
                predicted = torch.cat([classify(b).argmax(1) for b in denoised.split(250)])
            rows.append(
                {
                    "denoiser": {"name": loaded.name, "version": loaded.version},
                    "architecture": loaded.architecture,
                    "objective": loaded.metadata.get("objective"),
                    "sigma": sigma,
                    "psnr_noisy": _psnr(noisy.clamp(0, 1), clean),
                    "psnr_denoised": _psnr(denoised, clean),
                    "accuracy": (predicted == data.labels).float().mean().item(),
                    **cost,
                }
            )
    return {
        "benchmark": "denoisers",
        "classifier": {"name": classifier.name, "version": classifier.version},
        "data": {"path": str(data_path), "count": len(data)},
        "rows": rows,
        "precision": "fp32",
        "provenance": provenance("cpu"),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def _psnr(images: torch.Tensor, clean: torch.Tensor) -> float:
    """Mean over images of 10 log10(1 / MSE), pixel values in [0, 1]."""
    mse = (images - clean).pow(2).flatten(1).mean(1)
    return (10 * torch.log10(1 / mse)).mean().item()


def format_denoiser_table(report: dict[str, Any]) -> str:
    lines = [
        f"{'denoiser':<44}{'objective':>10}{'sigma':>6}{'PSNR in':>9}{'PSNR out':>9}"
        f"{'acc %':>7}{'params':>9}{'MFLOP':>8}{'img/s':>8}"
    ]
    for row in report["rows"]:
        lines.append(
            f"{row['denoiser']['name']:<44}{row['objective'] or '-':>10}{row['sigma']:>6}"
            f"{row['psnr_noisy']:>9.2f}{row['psnr_denoised']:>9.2f}{100 * row['accuracy']:>7.1f}"
            f"{row['parameters']:>9,}{row['mflops_per_image']:>8.0f}"
            + (f"{row['images_per_second']:>8.0f}" if row["images_per_second"] else f"{'-':>8}")
        )
    return "\n".join(lines)
