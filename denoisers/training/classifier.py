"""Train a CIFAR ResNet: standard augmentation, SGD with Nesterov momentum, one-cycle schedule.

Resumable: the full training state is saved to ``<run_dir>/last.pt`` after every epoch and picked up
again by a rerun with the same ``run_dir``. The result is a safetensors checkpoint with metadata.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from denoisers.checkpoints import save_checkpoint, state_digest
from denoisers.classifiers import cifar_resnet
from denoisers.training.data import ImageSet, augment_cifar
from denoisers.training.run_state import load_run_state, save_run_state

__all__ = ["ClassifierTrainingConfig", "evaluate_accuracy", "train_classifier"]


@dataclass
class ClassifierTrainingConfig:
    depth: int = 20
    epochs: int = 30
    batch_size: int = 128
    max_lr: float = 0.1
    weight_decay: float = 5e-4
    label_smoothing: float = 0.0
    bf16: bool = True
    seed: int = 0
    data: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@torch.inference_mode()
def evaluate_accuracy(model: nn.Module, data: ImageSet, batch_size: int = 500) -> float:
    """Top-1 accuracy of ``model`` (fp32, eval mode) on ``data``."""
    was_training = model.training
    model.eval()
    correct = 0
    for start in range(0, len(data), batch_size):
        logits = model(data.floats(start, start + batch_size))
        correct += int((logits.argmax(1) == data.labels[start : start + batch_size]).sum())
    model.train(was_training)
    return correct / len(data)


def train_classifier(
    config: ClassifierTrainingConfig,
    train: ImageSet,
    validation: ImageSet,
    run_dir: Path,
    out: Path,
) -> dict[str, Any]:
    """Train, validate after every epoch, export ``out``; returns the metadata written."""
    torch.manual_seed(config.seed)
    model = cifar_resnet(config.depth).to(memory_format=torch.channels_last)
    decay, no_decay = _parameter_groups(model)
    groups: list[dict[str, Any]] = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    optimizer = torch.optim.SGD(
        groups,
        lr=config.max_lr,
        momentum=0.9,
        nesterov=True,
    )
    steps_per_epoch = math.ceil(len(train) / config.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, config.max_lr, total_steps=config.epochs * steps_per_epoch, pct_start=0.25
    )
    start_epoch, history, _ = load_run_state(run_dir, model, optimizer, schedule)
    began = time.time()
    for epoch in range(start_epoch, config.epochs):
        model.train()
        order = torch.randperm(len(train))
        bar = tqdm(order.split(config.batch_size), desc=f"epoch {epoch + 1}/{config.epochs}")
        total_loss = 0.0
        for indices in bar:
            images = augment_cifar(train.images[indices]).div_(255)
            images = images.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.bf16):
                logits = model(images)
            loss = F.cross_entropy(
                logits.float(), train.labels[indices], label_smoothing=config.label_smoothing
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total_loss += loss.item()
            bar.set_postfix(loss=f"{loss.item():.3f}")
        accuracy = evaluate_accuracy(model, validation)
        history.append(
            {"epoch": epoch + 1, "loss": total_loss / steps_per_epoch, "val_accuracy": accuracy}
        )
        tqdm.write(f"epoch {epoch + 1}: loss {history[-1]['loss']:.4f}, val acc {accuracy:.4f}")
        save_run_state(run_dir, model, optimizer, schedule, epoch + 1, history)
    metadata = {
        "kind": "classifier",
        "architecture": f"cifar-resnet{config.depth}",
        "version": f"{out.stem}-{time.strftime('%Y%m%d')}-{state_digest(model.state_dict())}",
        "classes": list(train.classes),
        "training": asdict(config),
        "validation": history[-1] if history else {},
        "history": history,
        "train_seconds_this_run": round(time.time() - began, 1),
    }
    save_checkpoint(out, model.state_dict(), metadata)
    (run_dir / "metadata.json").write_text(json.dumps(metadata, indent=2))
    return metadata


def _parameter_groups(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """Weight decay on conv/linear weights only, not on BatchNorm or biases."""
    decay = [p for name, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for name, p in model.named_parameters() if p.ndim <= 1]
    return decay, no_decay
