"""Learning curves of a training run: ``curve.json`` and ``curve.png`` in its run folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["write_curve"]


def write_curve(run_dir: Path, history: list[dict[str, Any]], title: str) -> None:
    """Rewrite the run's curve from its history (one row per epoch): loss and each validation
    figure against images seen. Without matplotlib (a bare GPU machine) only the JSON."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "curve.json").write_text(json.dumps(history, indent=1))
    try:
        import matplotlib
    except ImportError:
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [k for k in ("loss", "psnr_denoised", "accuracy", "agreement") if k in history[0]]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.2), squeeze=False)
    seen = [row.get("images_seen", row["epoch"]) for row in history]
    for axis, key in zip(axes[0], panels, strict=True):
        axis.plot(seen, [row[key] for row in history], marker=".")
        axis.set_title(key)
        axis.set_xlabel("images seen")
        axis.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(run_dir / "curve.png", dpi=80)
    plt.close(fig)
