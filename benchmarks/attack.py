"""Soundness audit: L2 PGD on the smoothed local classifier inside its certified radius.

Certifies the lossless CIFAR-10 test images in order (the project's ``Certifier``) until
``--images`` are certified with the true label and a radius R > 0, then attacks each with L2 PGD
on the smoothed *soft* classifier (SmoothAdv, Salman et al. 2019): maximise the cross-entropy of
the true label under the Monte-Carlo average of softmax(classifier(denoiser(x + delta + noise)))
over ``--samples`` fresh Gaussian draws per step, gradients through noise, denoiser and classifier;
``||delta||_2 <= --radius-factor x R`` and x + delta in [0, 1]. The attacked image goes back
through ``Certifier.predict`` with noise from another secret (independent of the certificate's).

At 0.9 R a changed prediction would be a wrong certificate (probability <= alpha per image for
CERTIFY, plus <= alpha for PREDICT): expected none. The control runs the same attack at
``--control-factor`` x R, where no certificate holds, and must change some predictions; the vote
fraction of the certified class before and after shows how far the attack pushes.

    .venv/bin/dsmooth bench attack                 # 50 images, ~30 min on one CPU core
    .venv/bin/dsmooth bench attack --images 5      # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import time
from pathlib import Path
from typing import Any

import torch
from scipy.stats import norm
from torch import nn
from tqdm import tqdm

from benchmarks.evaluation import default_data
from benchmarks.provenance import provenance
from denoisers.registry import load_classifier, load_denoiser
from denoisers.training.data import load_lossless_npz
from service.core.certifier import Certifier
from service.core.results import Certificate, CertifyParams, Prediction, PredictParams
from service.execution.local import LocalSampler

__all__ = ["pgd_l2", "project", "smoothed_log_prob"]


def _per_image(value: float | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A scalar or [B] tensor as [B, 1, 1, ...] broadcastable against ``like`` [B, ...]."""
    column = torch.as_tensor(value, dtype=like.dtype, device=like.device).expand(like.shape[0])
    return column.reshape(-1, *([1] * (like.dim() - 1)))


def project(images: torch.Tensor, delta: torch.Tensor, eps: float | torch.Tensor) -> torch.Tensor:
    """``delta`` scaled into the L2 ball of radius ``eps`` (per image), then clipped so that
    ``images + delta`` lies in [0, 1]. Clipping only shrinks each coordinate towards 0 (images
    are in [0, 1]), so the result stays inside the ball."""
    norms = delta.flatten(1).norm(dim=1).clamp_min(1e-12)
    scale = (_per_image(eps, delta).flatten() / norms).clamp(max=1.0)
    delta = delta * scale.reshape(-1, *([1] * (delta.dim() - 1)))
    return (images + delta).clamp(0.0, 1.0) - images


def smoothed_log_prob(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    sigma: float,
    samples: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """log of the Monte-Carlo mean over ``samples`` noise draws of softmax(model(x + noise))[y],
    per image [B]; differentiable in ``images`` (the noise is an additive constant)."""
    batch = images.shape[0]
    noise = torch.randn(
        (samples, *images.shape), generator=generator, device=images.device, dtype=images.dtype
    )
    noisy = (images.unsqueeze(0) + sigma * noise).flatten(0, 1)  # sample-major: [samples * B]
    log_probs = model(noisy).float().log_softmax(dim=1).view(samples, batch, -1)
    picked = log_probs.gather(2, labels.view(1, batch, 1).expand(samples, batch, 1)).squeeze(2)
    # log mean exp: stable where every softmax probability of the label is tiny.
    return picked.logsumexp(dim=0) - math.log(samples)


def pgd_l2(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    eps: float | torch.Tensor,
    sigma: float,
    steps: int = 20,
    step_size: float | torch.Tensor | None = None,
    samples: int = 16,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """L2 PGD on the smoothed soft classifier; returns the attacked images (new tensor).

    Each step: fresh noise, ascend the cross-entropy -log E[softmax(model(x + delta + noise))_y]
    along its normalised gradient, project onto the ball of radius ``eps`` and the [0, 1] box.
    ``step_size`` defaults to 2 eps / steps (per image). ``model`` is used as it is (eval mode
    expected); its parameters receive no gradients.
    """
    images = images.detach()
    if steps <= 0:
        return images.clone()
    step = _per_image(2 * torch.as_tensor(eps) / steps if step_size is None else step_size, images)
    delta = torch.zeros_like(images)
    for _ in range(steps):
        delta.requires_grad_(True)
        loss = -smoothed_log_prob(model, images + delta, labels, sigma, samples, generator).sum()
        (grad,) = torch.autograd.grad(loss, delta)
        grad_norm = _per_image(grad.flatten(1).norm(dim=1).clamp_min(1e-12), grad)
        delta = project(images, delta.detach() + step * grad / grad_norm, eps)
    return (images + delta).clamp(0.0, 1.0)


def _vote_fraction(result: Certificate | Prediction, key: str | None) -> float:
    """Fraction of the counted samples that voted ``key``; 0 when it is outside the top five the
    result lists (its true fraction is then at most the fifth's: an underestimate)."""
    count = next((c.count for c in result.top_counts if c.key == key), 0)
    return count / result.n


def _attack_one(
    args: argparse.Namespace,
    worker: LocalSampler,
    evaluator: Certifier,
    image: torch.Tensor,
    cert: Certificate,
    factor: float,
    seed: int,
) -> dict[str, Any]:
    """PGD at ``factor`` x the certified radius, then PREDICT with independent noise."""
    eps = factor * cert.radius
    generator = torch.Generator(worker.device).manual_seed(seed)
    label = torch.tensor([int(str(cert.label_key))], device=worker.device)
    began = time.perf_counter()
    with worker.autocast():
        attacked = pgd_l2(
            worker.model,
            image[None].to(worker.device),
            label,
            eps,
            args.sigma,
            steps=args.steps,
            step_size=args.step_factor * eps / args.steps,
            samples=args.samples,
            generator=generator,
        )[0].cpu()
    attack_s = time.perf_counter() - began
    params = PredictParams(sigma=args.sigma, n=args.n, alpha=args.alpha)
    prediction = asyncio.run(evaluator.predict(attacked, params))
    if prediction.abstained:
        outcome = "abstained"
    else:
        outcome = "unchanged" if prediction.label_key == cert.label_key else "changed"
    # The smoothing guarantee's floor on p_A at the attacked point (given p_A >= p_lower):
    # Phi(Phi^-1(p_lower) - ||delta|| / sigma).
    floor = float(norm.cdf(norm.ppf(cert.p_lower) - eps / args.sigma))
    return {
        "factor": factor,
        "eps": eps,
        "delta_norm": float((attacked - image).norm()),
        "outcome": outcome,
        "predicted": prediction.label,
        "p_value": prediction.p_value,
        "p_a_after": _vote_fraction(prediction, cert.label_key),
        "p_a_floor": floor,
        "attack_s": attack_s,
        "predict_s": prediction.timings.total_s,
    }


def _summary(records: list[dict[str, Any]], key: str) -> dict[str, Any]:
    runs = [r[key] for r in records]
    count = len(runs)

    def mean(values: list[float]) -> float:
        return sum(values) / len(values) if values else float("nan")

    return {
        "factor": runs[0]["factor"] if runs else None,
        "images": count,
        **{o: sum(r["outcome"] == o for r in runs) for o in ("changed", "abstained", "unchanged")},
        "mean_eps": mean([r["eps"] for r in runs]),
        "mean_p_a_before": mean([r["p_a_before"] for r in records]),
        "mean_p_a_after": mean([r["p_a_after"] for r in runs]),
        "mean_p_a_floor": mean([r["p_a_floor"] for r in runs]),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    data = load_lossless_npz(args.data)
    classifier = load_classifier(args.classifier)
    denoiser = load_denoiser(args.denoiser)
    worker = LocalSampler(
        denoiser, classifier, args.device, args.batch_size, precision=args.precision
    )
    # Two secrets: the attacked image is judged on noise independent of the certificate's.
    certifier = Certifier(worker, args.secret.encode())
    evaluator = Certifier(worker, args.eval_secret.encode())
    params = CertifyParams(sigma=args.sigma, n0=args.n0, n=args.n, alpha=args.alpha)
    examined: list[dict[str, Any]] = []
    attacked: list[dict[str, Any]] = []
    began = time.perf_counter()
    progress = tqdm(total=args.images, desc="certified and attacked", unit="img")
    for index in range(len(data)):
        if len(attacked) >= args.images:
            break
        image = data.floats(index, index + 1)[0]
        cert = asyncio.run(certifier.certify(image, params))
        truth = classifier.classes[int(data.labels[index])]
        examined.append(
            {"index": index, "label": truth, "predicted": cert.label, "radius": cert.radius}
        )
        progress.set_postfix(examined=len(examined))
        if cert.label != truth or cert.radius <= 0:
            continue
        record: dict[str, Any] = {
            "index": index,
            "label": truth,
            "radius": cert.radius,
            "p_lower": cert.p_lower,
            "p_a_before": _vote_fraction(cert, cert.label_key),
            "certify_s": cert.timings.total_s,
        }
        for key, factor in (("attack", args.radius_factor), ("control", args.control_factor)):
            record[key] = _attack_one(
                args, worker, evaluator, image, cert, factor, args.seed + index
            )
        attacked.append(record)
        progress.update(1)
    progress.close()
    elapsed = time.perf_counter() - began
    summary = {key: _summary(attacked, key) for key in ("attack", "control")}
    _print_table(summary, len(examined), elapsed)
    return {
        "benchmark": "attack",
        "classifier": {"name": classifier.name, "version": classifier.version},
        "denoiser": {"name": denoiser.name, "version": denoiser.version},
        "sigma": args.sigma,
        "data": {"path": str(args.data), "examined": len(examined)},
        "certify": {"n0": args.n0, "n": args.n, "alpha": args.alpha},
        "predict": {"n": args.n, "alpha": args.alpha, "noise": "other secret than certify"},
        "attack": {
            "method": "L2 PGD on the smoothed soft classifier (SmoothAdv), zero start",
            "steps": args.steps,
            "step_size": f"{args.step_factor} x eps / steps",
            "samples_per_step": args.samples,
            "radius_factor": args.radius_factor,
            "control_factor": args.control_factor,
            "seed": args.seed,
        },
        "summary": summary,
        "seconds": elapsed,
        "examined": examined,
        "results": attacked,
        "precision": worker.precision,
        "provenance": provenance(worker.device_name),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def _print_table(summary: dict[str, dict[str, Any]], examined: int, elapsed: float) -> None:
    header = (
        f"{'attack':<10}{'eps/R':>7}{'mean eps':>10}{'images':>8}{'changed':>9}{'abstained':>11}"
        f"{'unchanged':>11}{'p_A before':>12}{'p_A after':>11}{'p_A floor':>11}"
    )
    print("\n" + header)
    for name, row in summary.items():
        print(
            f"{name:<10}{row['factor']:>7}{row['mean_eps']:>10.3f}{row['images']:>8}"
            f"{row['changed']:>9}{row['abstained']:>11}{row['unchanged']:>11}"
            f"{row['mean_p_a_before']:>12.3f}{row['mean_p_a_after']:>11.3f}"
            f"{row['mean_p_a_floor']:>11.3f}"
        )
    print(
        f"({examined} images certified to find {summary['attack']['images']} correct with R > 0; "
        f"{elapsed / 60:.1f} min. p_A = vote fraction of the certified class; floor = the "
        "guarantee's lower bound at the attacked point)"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="dsmooth bench attack", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--classifier", default="cifar10-resnet20", help="spec NAME[:WEIGHTS]")
    parser.add_argument("--denoiser", default="unet-cifar10-s0.25-mse", help="spec NAME[:WEIGHTS]")
    parser.add_argument("--sigma", type=float, default=0.25)
    parser.add_argument("--data", type=Path, default=default_data())
    parser.add_argument("--images", type=int, default=50, help="certified images to attack")
    parser.add_argument("--n0", type=int, default=100)
    parser.add_argument("--n", type=int, default=1000, help="samples of CERTIFY and of PREDICT")
    parser.add_argument("--alpha", type=float, default=0.001)
    parser.add_argument("--radius-factor", type=float, default=0.9, help="eps = FACTOR x R")
    parser.add_argument("--control-factor", type=float, default=4.0, help="the control's eps/R")
    parser.add_argument("--steps", type=int, default=20, help="PGD steps")
    parser.add_argument("--step-factor", type=float, default=2.0, help="step = FACTOR x eps/steps")
    parser.add_argument("--samples", type=int, default=16, help="noise draws per PGD step")
    parser.add_argument("--seed", type=int, default=0, help="seed of the attacker's own noise")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=500)
    # fp32 by default: the attacked model is then bit-for-bit the certified base classifier.
    parser.add_argument("--precision", default="fp32", choices=["auto", "fp32", "bf16"])
    parser.add_argument("--secret", default="benchmark-secret", help="HMAC secret of CERTIFY")
    parser.add_argument("--eval-secret", default="attack-eval-secret", help="... of PREDICT")
    parser.add_argument("--out", type=Path, default=Path("build/benchmarks/attack.json"))
    args = parser.parse_args(argv)
    if not args.data.exists():
        parser.error(f"{args.data} not found (the lossless CIFAR-10 test set from ../shared)")
    if args.secret == args.eval_secret:
        parser.error("--eval-secret must differ from --secret (independent noise)")
    report = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
