"""Certified accuracy of denoiser + classifier pairs on the lossless CIFAR-10 test images.

Certified accuracy at radius r = fraction of the images certified with the true label and a
radius >= r. Prints a table per (denoiser, sigma) and the best over sigma per radius, and writes
JSON (per-image results included) for ``dsmooth report``.

    .venv/bin/python benchmarks/certified_accuracy.py \\
        --classifier cifar-resnet56:$TP/resnet56-4bfd9763.th \\
        --denoiser none --denoiser unet-cifar10-s0.25-mse --sigma 0.25 --count 100 --n 1000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import time
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from denoisers.data import load_lossless_npz
from denoisers.registry import load_classifier, load_denoiser
from service.pipeline import Certifier
from service.schemas import CertifyParams
from service.worker import LocalWorker

RADII = (0.0, 0.25, 0.5, 0.75, 1.0)
SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def certified_accuracy(results: list[dict[str, Any]], radius: float) -> float:
    hits = sum(1 for r in results if r["correct"] and r["radius"] >= radius)
    return hits / len(results) if results else 0.0


def run(args: argparse.Namespace) -> dict[str, Any]:
    data = load_lossless_npz(args.data).head(args.count)
    classifier = load_classifier(args.classifier)
    rows = []
    for denoiser_spec in args.denoiser:
        denoiser = load_denoiser(denoiser_spec)
        worker = LocalWorker(
            denoiser, classifier, args.device, args.batch_size, precision=args.precision
        )
        certifier = Certifier(worker, args.secret.encode())
        for sigma in args.sigma:
            params = CertifyParams(sigma=sigma, n0=args.n0, n=args.n, alpha=args.alpha)
            results, began = [], time.perf_counter()
            for index in tqdm(range(len(data)), desc=f"{denoiser.name} sigma={sigma}"):
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
                        "seconds": cert.timings.total_s,
                    }
                )
            elapsed = time.perf_counter() - began
            rows.append(
                {
                    "denoiser": {"name": denoiser.name, "version": denoiser.version},
                    "sigma": sigma,
                    "certified_accuracy": {str(r): certified_accuracy(results, r) for r in RADII},
                    "seconds_per_image": elapsed / len(data),
                    "results": results,
                }
            )
            _print_row(rows[-1])
    best = {
        name: {
            str(r): max(
                row["certified_accuracy"][str(r)] for row in rows if row["denoiser"]["name"] == name
            )
            for r in RADII
        }
        for name in dict.fromkeys(row["denoiser"]["name"] for row in rows)
    }
    print("\nbest over sigma per radius")
    for name, accuracies in best.items():
        print(f"{name:<40}" + "".join(f"{100 * accuracies[str(r)]:>8.1f}" for r in RADII))
    return {
        "benchmark": "certified_accuracy",
        "classifier": {"name": classifier.name, "version": classifier.version},
        "data": {"path": str(args.data), "count": len(data)},
        "n0": args.n0,
        "n": args.n,
        "alpha": args.alpha,
        "radii": list(RADII),
        "rows": rows,
        "best_over_sigma": best,
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": torch.get_num_threads(),
            "torch": torch.__version__,
            "device": args.device,
            "precision": args.precision,
        },
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def _print_row(row: dict[str, Any]) -> None:
    header = f"{'denoiser':<40}{'sigma':>6}" + "".join(f"{'r=' + str(r):>8}" for r in RADII)
    print("\n" + header)
    accuracies = row["certified_accuracy"]
    print(
        f"{row['denoiser']['name']:<40}{row['sigma']:>6}"
        + "".join(f"{100 * accuracies[str(r)]:>8.1f}" for r in RADII)
        + f"   ({row['seconds_per_image']:.2f} s/image)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--classifier", required=True, help="classifier spec NAME[:WEIGHTS]")
    parser.add_argument("--denoiser", action="append", required=True, help="repeatable")
    parser.add_argument("--sigma", type=float, action="append", required=True, help="repeatable")
    parser.add_argument("--data", type=Path, default=SHARED / "data/cifar10/test-lossless-1000.npz")
    parser.add_argument("--count", type=int, default=100, help="first COUNT test images")
    parser.add_argument("--n0", type=int, default=100)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--alpha", type=float, default=0.001)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    parser.add_argument("--secret", default="benchmark-secret", help="HMAC secret of the noise")
    parser.add_argument(
        "--out", type=Path, default=Path("build/benchmarks/certified_accuracy.json")
    )
    args = parser.parse_args()
    if not args.data.exists():
        parser.error(f"{args.data} not found (the lossless CIFAR-10 test set from ../shared)")
    report = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
