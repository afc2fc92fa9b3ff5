"""Give the checkpoints trained before cards existed (#22) the card new runs write themselves.

Everything comes from what each checkpoint's metadata already records (its training config,
history and timing); the machine comes from the README's Results table, where it was written
by hand at the time ("not recorded" where it was not). Run once; the cards then travel in the
files' metadata. The weights are not touched, and neither is the ``version`` (vote keys stay).

    .venv/bin/python scripts/backfill_cards.py           # once
    .venv/bin/python scripts/backfill_cards.py --table   # README's "Checkpoint cards" table
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from denoisers.checkpoints import read_metadata, read_state, save_checkpoint

CHECKPOINTS = Path(__file__).resolve().parents[1] / "denoisers" / "checkpoints"
EPYC = "AMD EPYC (AVX2, 2 threads)"
EPYC_512 = "AMD EPYC (AVX512-BF16, 2 threads)"
MACHINES = {  # from README's Results table, as recorded when each was trained
    "unet-cifar10-s0.12-mse": EPYC,
    "unet-cifar10-s0.5-mse": EPYC,
    "unet-cifar10-s0.25-stab-whitebox-resnet56": EPYC,
    "unet-cifar10-s0.12-stab-whitebox-resnet56": EPYC_512,
    "unet-cifar10-s0.5-stab-whitebox-resnet56": EPYC_512,
    "unet-cifar10-s0.25-stab-blackbox": EPYC,
    "unet-cifar10-s0.12-stab-blackbox": EPYC,
    "unet-cifar10-s0.5-stab-blackbox": "AMD EPYC (AVX2, 1 thread)",
    "unet-cifar10-s1-mse": EPYC_512,
    "unet-cifar10-s1-stab-blackbox": EPYC_512,
    "unet-imagenet-s0.12-mse": EPYC,
}
CIFAR_TRAIN = 50_000


def card(name: str, metadata: dict) -> dict:
    training, history = metadata.get("training", {}), metadata.get("history") or []
    epochs = len(history) or int(training.get("epochs", 0))
    batch = int(training.get("batch_size", 128))
    steps = training.get("steps_per_epoch")
    per_epoch = int(steps) * batch if steps else CIFAR_TRAIN
    validation = metadata.get("validation") or (history[-1] if history else {})
    return {
        "epochs": epochs,
        "exported_epoch": epochs,
        "images_seen": epochs * per_epoch,
        "init": training.get("init"),
        "wall_seconds": metadata.get("train_seconds_this_run"),
        "machine": MACHINES.get(name, "not recorded"),
        "precision": "bf16" if training.get("bf16") else "fp32",
        "stopped": "schedule",
        "last_validation": {k: v for k, v in validation.items() if isinstance(v, int | float)},
        "resume": f"scripts/train-shipped-checkpoints.sh {name}",
        "backfilled": True,
    }


def table() -> str:
    """The README table of every shipped denoiser's card (a test keeps README in step)."""
    rows = [
        "| checkpoint | epochs | images seen | wall time | with its starting checkpoints "
        "| machine | last validation | resume |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for path in sorted(CHECKPOINTS.glob("*.safetensors")):
        metadata = read_metadata(path)
        if metadata.get("kind") != "denoiser":
            continue
        c = metadata["card"]
        last = c.get("last_validation") or metadata.get("validation") or {}
        shown = ", ".join(
            f"{key} {last[key]:.3g}" for key in ("psnr_denoised", "accuracy") if key in last
        )
        wall = f"{c['wall_seconds'] / 60:.0f} min" if c.get("wall_seconds") else "not recorded"
        line = c.get("lineage") or {}
        in_all = (
            f"{line['runs']} runs, {line['wall_seconds'] / 60:.0f} min, {line['images_seen']:,}"
            if line.get("runs", 1) > 1
            else "-"
        )
        rows.append(
            f"| `{path.stem}` | {c['epochs']} | {c['images_seen']:,} | {wall} | {in_all} "
            f"| {c['machine']} | {shown} | `{c['resume']}` |"
        )
    return "\n".join(rows)


def main() -> None:
    if sys.argv[1:] == ["--table"]:
        print(table())
        return
    for path in sorted(CHECKPOINTS.glob("*.safetensors")):
        metadata = read_metadata(path)
        if metadata.get("kind") != "denoiser" or "card" in metadata:
            continue
        metadata["card"] = card(path.stem, metadata)
        save_checkpoint(path, read_state(path), metadata)
        print(path.stem, json.dumps(metadata["card"])[:120])


if __name__ == "__main__":
    main()
