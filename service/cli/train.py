"""``dsmooth train-classifier`` and ``dsmooth train-denoiser``: the training entry points."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click
import torch

from denoisers.registry import load_classifier
from denoisers.training.classifier import ClassifierTrainingConfig, train_classifier
from denoisers.training.data import (
    ImageSet,
    PhotoCrops,
    load_cifar10_official,
    load_image_folder,
    load_lossless_npz,
)
from denoisers.training.denoiser import DenoiserTrainingConfig, TrainingData, train_denoiser
from service.execution.devices import resolve_device, resolve_precision

__all__ = ["train_classifier_command", "train_denoiser_command"]

# bf16 autocast is ~10x faster on CPUs with AVX512-BF16/AMX and ~10x slower on AVX2-only ones.
BF16_HELP = "bf16 autocast (default: where the device computes bf16 natively)"


def _bf16(choice: bool | None, device: torch.device | None = None) -> bool:
    if choice is not None:
        return choice
    return resolve_precision("auto", device or torch.device("cpu")) == "bf16"


def _device(name: str) -> torch.device:
    try:
        return resolve_device(name)
    except (RuntimeError, ValueError) as exc:
        raise click.BadParameter(str(exc), param_hint="--device") from exc


def _training_data(data: Path | None, cifar10_root: Path | None, download: bool) -> ImageSet:
    if cifar10_root is not None:
        return load_cifar10_official(cifar10_root, train=True, download=download)
    if data is None:
        raise click.UsageError("give --data or --cifar10-root")
    if not data.exists():
        raise click.BadParameter(f"{data} does not exist", param_hint="--data")
    return load_image_folder(data)


@click.command("train-classifier")
@click.option("--data", type=click.Path(path_type=Path), help="class folders or a .tar.gz of them")
@click.option("--cifar10-root", type=click.Path(path_type=Path), help="official CIFAR-10 folder")
@click.option("--download", is_flag=True, help="download CIFAR-10 into --cifar10-root")
@click.option(
    "--validation",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="lossless test set (.npz: x, y, classes)",
)
@click.option("--depth", type=click.Choice(["20", "32", "44", "56", "110"]), default="20")
@click.option("--epochs", type=click.IntRange(min=1), default=30)
@click.option("--batch-size", type=click.IntRange(min=1), default=128)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=0.1, help="peak LR")
@click.option("--bf16/--fp32", default=None, help=BF16_HELP)
@click.option("--run-dir", type=click.Path(path_type=Path), required=True, help="resumable state")
@click.option("--out", type=click.Path(path_type=Path), required=True, help=".safetensors path")
def train_classifier_command(
    data: Path | None,
    cifar10_root: Path | None,
    download: bool,
    validation: Path,
    depth: str,
    epochs: int,
    batch_size: int,
    lr: float,
    bf16: bool | None,
    run_dir: Path,
    out: Path,
) -> None:
    """Train a CIFAR ResNet classifier and export it as a safetensors checkpoint."""
    train = _training_data(data, cifar10_root, download)
    config = ClassifierTrainingConfig(
        depth=int(depth),
        epochs=epochs,
        batch_size=batch_size,
        max_lr=lr,
        bf16=_bf16(bf16),
        data=str(data or cifar10_root),
    )
    metadata = train_classifier(config, train, load_lossless_npz(validation), run_dir, out)
    click.echo(f"wrote {out}: validation accuracy {metadata['validation'].get('val_accuracy')}")


@click.command("train-denoiser")
@click.option(
    "--arch", default="unet", show_default=True, help="unet, unet-wide, dncnn or dncnn-wide"
)
@click.option("--sigma", type=click.FloatRange(min=0, min_open=True), required=True)
@click.option(
    "--objective", type=click.Choice(["mse", "stab", "mse+stab"]), default="mse", show_default=True
)
@click.option(
    "--mse-weight", type=click.FloatRange(min=0), default=0.0, show_default=True,
    help="Stab objectives: add this times the MSE (keeps the image while learning Stab)",
)  # fmt: skip
@click.option("--data", type=click.Path(path_type=Path), help="class folders or a .tar.gz of them")
@click.option("--cifar10-root", type=click.Path(path_type=Path), help="official CIFAR-10 folder")
@click.option("--download", is_flag=True, help="download CIFAR-10 into --cifar10-root")
@click.option(
    "--photos",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="folder of natural photos: train on random crops of them",
)
@click.option("--crop", type=click.IntRange(min=16), default=64, show_default=True)
@click.option(
    "--validation",
    type=click.Path(exists=True, path_type=Path),
    help="lossless test set (.npz) or, with --photos, a folder of validation photos",
)
@click.option("--val-count", type=click.IntRange(min=1), default=500, show_default=True)
@click.option(
    "--val-skip",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="validate on --validation's images after the first VAL_SKIP (e.g. 500: test images "
    "the benchmarks never certify, where a white-box target never saw the validation images)",
)
@click.option(
    "--holdout",
    type=click.IntRange(min=0),
    default=0,
    help="validate on this many training images (or photos) held out of training "
    "(instead of --validation)",
)
@click.option("--patience", type=click.IntRange(min=1), help="stop after this many epochs "
              "without improvement and export the best epoch")  # fmt: skip
@click.option("--min-delta", type=click.FloatRange(min=0), default=0.0, show_default=True)
@click.option("--ema", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              help="evaluate and export an EMA of the weights with this decay")  # fmt: skip
@click.option("--surrogate", "surrogates", multiple=True, help="classifier spec (black-box Stab)")
@click.option("--target", help="classifier spec of the target (white-box Stab)")
@click.option("--val-classifier", help="classifier spec for validation accuracy")
@click.option("--init", type=click.Path(exists=True, dir_okay=False), help="starting checkpoint")
@click.option("--epochs", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--steps-per-epoch", type=click.IntRange(min=1), help="default: one pass")
@click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=1e-3, show_default=True)
@click.option("--bf16/--fp32", default=None, help=BF16_HELP)
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda[:N] or auto")
@click.option(
    "--max-minutes",
    type=click.FloatRange(min=0, min_open=True),
    help="time budget: no epoch starts after it is spent; exports the best epoch so far",
)
@click.option("--run-dir", type=click.Path(path_type=Path), required=True, help="resumable state")
@click.option("--out", type=click.Path(path_type=Path), required=True, help=".safetensors path")
def train_denoiser_command(
    arch: str,
    sigma: float,
    objective: str,
    mse_weight: float,
    data: Path | None,
    cifar10_root: Path | None,
    download: bool,
    photos: Path | None,
    crop: int,
    validation: Path | None,
    val_count: int,
    val_skip: int,
    holdout: int,
    patience: int | None,
    min_delta: float,
    ema: float | None,
    surrogates: tuple[str, ...],
    target: str | None,
    val_classifier: str | None,
    init: str | None,
    epochs: int,
    steps_per_epoch: int | None,
    batch_size: int,
    lr: float,
    bf16: bool | None,
    device: str,
    max_minutes: float | None,
    run_dir: Path,
    out: Path,
) -> None:
    """Train a denoiser for one sigma (MSE, Stab, or Stab fine-tuning of an MSE checkpoint)."""
    if surrogates and target:
        raise click.UsageError("give --surrogate (black-box) or --target (white-box), not both")
    if (validation is None) == (holdout == 0):
        raise click.UsageError("give --validation or --holdout (one of them)")
    if val_skip and (validation is None or photos is not None):
        raise click.UsageError("--val-skip skips images of a lossless --validation set")
    where = _device(device)
    config = DenoiserTrainingConfig(
        architecture=arch,
        sigma=sigma,
        objective=objective,
        mse_weight=mse_weight,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        steps_per_epoch=steps_per_epoch,
        init=init,
        classifier_role="target" if target else "surrogate",
        bf16=_bf16(bf16, where),
        data=str(photos or data or cifar10_root),
        holdout=holdout,
        patience=patience,
        min_delta=min_delta,
        ema=ema,
        device=str(where),
        max_seconds=None if max_minutes is None else 60 * max_minutes,
        command=shlex.join(["dsmooth", *sys.argv[1:]]),
    )
    classifiers = [load_classifier(spec) for spec in (surrogates or ((target,) if target else ()))]
    checker = load_classifier(val_classifier) if val_classifier else None
    source: ImageSet | PhotoCrops
    held_out: ImageSet | torch.Tensor
    if photos is not None:
        source = PhotoCrops(photos, size=crop)
        validation_photos = PhotoCrops(validation, size=crop) if validation else None
        if holdout:
            source, validation_photos = source.split(holdout)
        assert validation_photos is not None
        held_out = validation_photos.sample(val_count, torch.Generator().manual_seed(0))
    elif holdout:
        source, held_out = _training_data(data, cifar10_root, download).split(holdout)
    else:
        assert validation is not None
        images = load_lossless_npz(validation)
        if val_skip + val_count > len(images):
            raise click.UsageError(
                f"--val-skip {val_skip} + --val-count {val_count} is more than the "
                f"{len(images)} images of {validation}"
            )
        held_out = images.head(val_count, skip=val_skip)
        source = _training_data(data, cifar10_root, download)
    metadata = train_denoiser(
        config,
        TrainingData(source, batch_size, steps_per_epoch),
        held_out,
        classifiers,
        run_dir,
        out,
        checker,
    )
    click.echo(f"wrote {out}: {metadata['validation']}")
