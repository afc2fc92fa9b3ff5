"""Train a denoiser for one noise level: MSE, Stab, or Stab fine-tuning of an MSE checkpoint.

Data is either an in-memory image set (CIFAR-10, augmented with crops and flips) or random crops
of natural photos. Validation after every epoch on a fixed, seeded noise draw: PSNR of the noisy
and denoised copies, and — when a validation classifier is given — its accuracy on the denoised
copies and its agreement with its own clean-image answer. Resumable from ``<run_dir>/last.pt``.

Long runs: ``patience`` stops on a plateau of the monitored figure (accuracy where labels and a
classifier exist, else denoised PSNR) and exports the best epoch, not the last; ``ema`` evaluates
and exports an exponential moving average of the weights; ``max_seconds`` stops at the first
epoch that ends past a time budget (a campaign's wall-clock guard). ``<run_dir>/curve.json`` and
``curve.png`` are rewritten after every epoch.

``device`` trains on a GPU (``cuda``): models, batches and the Stab classifiers move there, and
``bf16`` autocasts on that device; validation noise is still drawn on the CPU from its fixed seed,
so validation figures compare across devices.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from denoisers.checkpoints import read_metadata, read_state, save_checkpoint, state_digest
from denoisers.registry import LoadedModel, architectures, create_model
from denoisers.training.curves import write_curve
from denoisers.training.data import ImageSet, PhotoCrops, augment_cifar
from denoisers.training.objectives import OBJECTIVES, mse_loss, psnr, stab_loss
from denoisers.training.run_state import load_run_state, save_run_state

__all__ = ["DenoiserTrainingConfig", "TrainingData", "evaluate_denoiser", "train_denoiser"]


@dataclass
class DenoiserTrainingConfig:
    architecture: str = "unet"
    sigma: float = 0.25
    objective: str = "mse"
    mse_weight: float = 0.0  # Stab objectives: + mse_weight x MSE (0: pure Stab)
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    steps_per_epoch: int | None = None  # None: one pass over an image set
    init: str | None = None  # checkpoint to start from (required for mse+stab)
    classifier_role: str = "surrogate"  # "surrogate" (black-box) or "target" (white-box)
    bf16: bool = True
    seed: int = 0
    data: str = ""
    holdout: int = 0  # training images held out for validation (0: a separate validation set)
    patience: int | None = None  # epochs without improvement before stopping; None: run all
    min_delta: float = 0.0  # smallest change of the monitored figure that counts as improvement
    ema: float | None = None  # EMA decay of the weights that are evaluated and exported
    device: str = "cpu"  # where the models train: "cpu", "cuda", "cuda:1"
    max_seconds: float | None = None  # time budget: no epoch starts after it is spent
    command: str = ""  # the command line that resumes this run (recorded on the card)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES} (got {self.objective!r})")
        if self.mse_weight < 0 or (self.mse_weight and self.objective == "mse"):
            raise ValueError("mse_weight adds MSE to a Stab objective: >= 0, with stab")
        if self.objective == "mse+stab" and not self.init:
            raise ValueError("mse+stab fine-tunes an MSE checkpoint: give --init")
        if self.classifier_role not in ("surrogate", "target"):
            raise ValueError("classifier_role must be 'surrogate' or 'target'")
        if self.ema is not None and not 0 < self.ema < 1:
            raise ValueError("ema must be a decay in (0, 1)")
        arch = architectures().get(self.architecture)
        if arch is None or arch.kind != "denoiser" or not arch.needs_weights:
            raise ValueError(f"{self.architecture!r} is not a trainable denoiser architecture")


class TrainingData:
    """Batches of clean float images in [0, 1] from an image set or from photo crops."""

    def __init__(self, source: ImageSet | PhotoCrops, batch_size: int, steps: int | None) -> None:
        self.source, self.batch_size = source, batch_size
        if isinstance(source, ImageSet):
            self.steps = steps or -(-len(source) // batch_size)
        elif steps is None:
            raise ValueError("photo crops need steps_per_epoch")
        else:
            self.steps = steps

    def epoch(self) -> Iterator[torch.Tensor]:
        """One epoch of ``steps`` batches, drawn lazily."""
        if isinstance(self.source, ImageSet):
            images = self.source.images
            order = torch.randperm(len(self.source))[: self.steps * self.batch_size]
            for indices in order.split(self.batch_size):
                yield augment_cifar(images[indices.to(images.device)]).div_(255)
        else:
            for _ in range(self.steps):
                yield self.source.sample(self.batch_size)


@torch.inference_mode()
def evaluate_denoiser(
    denoiser: nn.Module,
    images: torch.Tensor,
    sigma: float,
    classifier: nn.Module | None = None,
    labels: torch.Tensor | None = None,
    batch_size: int = 250,
) -> dict[str, float]:
    """PSNR (noisy, denoised) and classifier accuracy/agreement on one seeded noise draw.

    ``images`` and the noise stay on the CPU; batches run on the denoiser's device."""
    was_training = denoiser.training
    denoiser.eval()
    device = next(denoiser.parameters(), torch.empty(0)).device
    generator = torch.Generator().manual_seed(1234)
    noise = torch.randn(images.shape, generator=generator) * sigma
    noisy = images + noise
    denoised = torch.cat([denoiser(b.to(device)).float().cpu() for b in noisy.split(batch_size)])
    metrics = {"psnr_noisy": psnr(noisy, images), "psnr_denoised": psnr(denoised, images)}
    if classifier is not None:
        on_denoised, on_clean = (
            torch.cat([classifier(b.to(device)).argmax(1).cpu() for b in x.split(batch_size)])
            for x in (denoised, images)
        )
        metrics["agreement"] = (on_denoised == on_clean).float().mean().item()
        if labels is not None:
            metrics["accuracy"] = (on_denoised == labels).float().mean().item()
            metrics["clean_accuracy"] = (on_clean == labels).float().mean().item()
    denoiser.train(was_training)
    return metrics


def train_denoiser(
    config: DenoiserTrainingConfig,
    data: TrainingData,
    validation: ImageSet | torch.Tensor,
    classifiers: list[LoadedModel],
    run_dir: Path,
    out: Path,
    validation_classifier: LoadedModel | None = None,
) -> dict[str, Any]:
    """Train, validate after every epoch, export ``out``; returns the metadata written."""
    torch.manual_seed(config.seed)
    device = torch.device(config.device)
    denoiser = create_model(config.architecture)
    if config.init:
        denoiser.load_state_dict(read_state(Path(config.init)))
    denoiser = denoiser.to(device).to(memory_format=torch.channels_last).train()
    frozen = [c.module.to(device).eval().requires_grad_(False) for c in classifiers]
    if config.objective != "mse" and not frozen:
        raise ValueError(f"the {config.objective} objective needs classifiers")
    check = validation_classifier or (classifiers[0] if classifiers else None)
    if check is not None:
        check.module.to(device)
    val_images = validation.floats() if isinstance(validation, ImageSet) else validation
    val_labels = validation.labels if isinstance(validation, ImageSet) else None

    optimizer = torch.optim.Adam(denoiser.parameters(), lr=config.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=config.epochs * data.steps
    )
    averaged = (
        # use_buffers: BatchNorm statistics are averaged with the weights they belong to
        # (without it the copy takes the live model's statistics, made by other weights).
        torch.optim.swa_utils.AveragedModel(
            denoiser,
            multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(config.ema),
            use_buffers=True,
        )
        if config.ema is not None
        else None
    )
    start_epoch, history, extra = load_run_state(run_dir, denoiser, optimizer, schedule)
    if averaged is not None and "ema" in extra:
        averaged.load_state_dict(extra["ema"])
    evaluated = averaged.module if averaged is not None else denoiser
    best: dict[str, Any] = extra.get("best", {})
    seconds = float(extra.get("seconds", 0.0))
    began = time.time()
    for epoch in range(start_epoch, config.epochs):
        if _plateaued(history, best, config.patience) or _out_of_time(seconds, config):
            break
        started = time.time()
        bar = tqdm(data.epoch(), desc=f"epoch {epoch + 1}/{config.epochs}", total=data.steps)
        total = torch.zeros((), device=device)  # summed on the device: no sync per step
        for step, batch in enumerate(bar):
            clean = batch.to(device, non_blocking=True)
            clean = clean.contiguous(memory_format=torch.channels_last)
            noisy = clean + torch.randn_like(clean) * config.sigma
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.bf16):
                denoised = denoiser(noisy)
                if config.objective == "mse":
                    loss = mse_loss(denoised, clean)
                else:
                    loss = stab_loss(denoised, clean, frozen, config.mse_weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            if averaged is not None:
                averaged.update_parameters(denoiser)
            total += loss.detach().float()
            if step % 20 == 0:
                bar.set_postfix(loss=f"{loss.item():.4f}")
        metrics = evaluate_denoiser(
            evaluated, val_images, config.sigma, check.module if check else None, val_labels
        )
        seconds += time.time() - started
        history.append(
            {
                "epoch": epoch + 1,
                "images_seen": (epoch + 1) * data.steps * config.batch_size,
                "seconds": round(seconds, 1),
                "loss": total.item() / data.steps,
                **metrics,
            }
        )
        tqdm.write(", ".join(f"{k} {v:.4f}" for k, v in history[-1].items()))
        monitored = _monitored(history[-1])
        if not best or monitored > best["value"] + config.min_delta:
            best = {"epoch": epoch + 1, "value": monitored}
            save_checkpoint(run_dir / "best.safetensors", evaluated.state_dict(), {})
        save_run_state(
            run_dir, denoiser, optimizer, schedule, epoch + 1, history,
            {"ema": averaged.state_dict() if averaged else None, "best": best, "seconds": seconds},
        )  # fmt: skip
        write_curve(run_dir, history, title=f"{config.architecture} {config.objective} "
                    f"sigma {config.sigma}")  # fmt: skip
    final = evaluated.state_dict()
    if best and (run_dir / "best.safetensors").exists():
        final = read_state(run_dir / "best.safetensors")
    best_row = next((h for h in history if h["epoch"] == best.get("epoch")), None)
    metadata: dict[str, Any] = {
        "kind": "denoiser",
        "architecture": config.architecture,
        "sigma": config.sigma,
        "objective": config.objective,
        "classifiers": [
            {"name": c.name, "version": c.version, "role": config.classifier_role}
            for c in classifiers
        ],
        "validation_classifier": (
            {"name": check.name, "version": check.version} if check is not None else None
        ),
        "version": f"{out.stem}-{time.strftime('%Y%m%d')}-{state_digest(final)}",
        "training": asdict(config),
        "validation": best_row or (history[-1] if history else {}),
        "history": history,
        "card": {
            "epochs": len(history),
            "exported_epoch": best.get("epoch"),
            "images_seen": history[-1]["images_seen"] if history else 0,
            "wall_seconds": round(seconds, 1),
            "train_seconds_this_run": round(time.time() - began, 1),
            "machine": _machine(),
            "precision": "bf16" if config.bf16 else "fp32",
            "stopped": _stop_reason(history, best, seconds, config),
            "resume": config.command,
        },
    }
    metadata["card"]["lineage"] = lineage(
        read_metadata(Path(config.init)) if config.init else None, metadata["card"]
    )
    save_checkpoint(out, final, metadata)
    (run_dir / "metadata.json").write_text(json.dumps(metadata, indent=2))
    return metadata


def lineage(init: dict[str, Any] | None, card: dict[str, Any]) -> dict[str, Any]:
    """The training behind a checkpoint in all: this run's wall time and images, plus its
    starting checkpoint's (its lineage, or its own run where it records none)."""
    before = {"runs": 0, "wall_seconds": 0.0, "images_seen": 0}
    if init is not None and "card" in init:
        parent = init["card"]
        before = parent.get("lineage") or {
            "runs": 1,
            "wall_seconds": parent.get("wall_seconds") or 0.0,
            "images_seen": parent.get("images_seen", 0),
        }
    return {
        "runs": before["runs"] + 1,
        "wall_seconds": round(before["wall_seconds"] + (card.get("wall_seconds") or 0.0), 1),
        "images_seen": before["images_seen"] + card.get("images_seen", 0),
    }


def _monitored(row: dict[str, Any]) -> float:
    """What a plateau is judged on: accuracy where it is measured, else denoised PSNR."""
    return float(row.get("accuracy", row["psnr_denoised"]))


def _plateaued(history: list[dict[str, Any]], best: dict[str, Any], patience: int | None) -> bool:
    return bool(patience is not None and best and history[-1]["epoch"] - best["epoch"] >= patience)


def _out_of_time(seconds: float, config: DenoiserTrainingConfig) -> bool:
    return config.max_seconds is not None and seconds >= config.max_seconds


def _stop_reason(
    history: list[dict[str, Any]],
    best: dict[str, Any],
    seconds: float,
    config: DenoiserTrainingConfig,
) -> str:
    if _plateaued(history, best, config.patience):
        return "plateau"
    if len(history) < config.epochs and _out_of_time(seconds, config):
        return "time budget"
    return "schedule"


def _machine() -> str:
    """The CPU (or GPU) a run trained on, for the checkpoint card."""
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    name = next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if "model name" in ln), "")
    isa = "AMX" if "amx_bf16" in info else "AVX512-BF16" if "avx512_bf16" in info else "AVX2"
    return f"{name or platform.machine()} ({isa}, {torch.get_num_threads()} threads)"
