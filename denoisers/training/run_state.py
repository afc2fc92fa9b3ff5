"""Resumable training state: everything needed to continue a run after an interruption."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["load_run_state", "save_run_state"]

_FILE = "last.pt"


def save_run_state(
    run_dir: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    epoch: int,
    history: list[dict[str, float]],
    extra: dict[str, Any] | None = None,
) -> None:
    """``extra``: whatever else the trainer must carry across a restart (EMA weights, the best
    epoch so far, cumulative wall time)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "schedule": schedule.state_dict(),
        "epoch": epoch,
        "history": history,
        "rng": torch.get_rng_state(),
        "extra": extra or {},
    }
    tmp = run_dir / (_FILE + ".tmp")
    torch.save(state, tmp)
    tmp.replace(run_dir / _FILE)


def load_run_state(
    run_dir: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
) -> tuple[int, list[dict[str, Any]], dict[str, Any]]:
    """Restore a run saved in ``run_dir``: (epochs done, history, extra); (0, [], {}) if none."""
    path = run_dir / _FILE
    if not path.exists():
        return 0, [], {}
    state = torch.load(path, map_location="cpu", weights_only=False)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    schedule.load_state_dict(state["schedule"])
    torch.set_rng_state(state["rng"])
    return int(state["epoch"]), list(state["history"]), dict(state.get("extra", {}))
