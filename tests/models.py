"""Small real models for tests: a synthetic base classifier with known class probabilities."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from scipy.stats import norm
from torch import nn

from denoisers.registry import LoadedModel, load_denoiser


class ThresholdClassifier(nn.Module):
    """Classifies by the first pixel: class 0 below t1, class 1 below t2, class 2 above.

    On an image whose first pixel is ``centre``, with noise N(0, sigma^2), the class probabilities
    are exactly Phi((t1 - centre) / sigma), ... — a base classifier with known p_A.
    """

    def __init__(self, t1: float, t2: float) -> None:
        super().__init__()
        self.t1, self.t2 = t1, t2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first = x[:, 0, 0, 0]
        labels = (first >= self.t1).long() + (first >= self.t2).long()
        return F.one_hot(labels, 3).float()


def threshold_classifier(
    p_a: float, centre: float, sigma: float, p_b: float | None = None
) -> LoadedModel:
    """Class 'a' has probability ``p_a`` at ``centre``, 'b' has ``p_b`` (default: half the rest)."""
    p_b = (1 - p_a) / 2 if p_b is None else p_b
    t1 = centre + sigma * float(norm.ppf(p_a))
    t2 = centre + sigma * float(norm.ppf(min(1.0, p_a + p_b)))
    return LoadedModel(
        name="threshold",
        kind="classifier",
        architecture="threshold",
        version="1",
        module=ThresholdClassifier(t1, t2),
        classes=("a", "b", "c"),
    )


class CleanOnlyClassifier(nn.Module):
    """Class 'a' on an image whose first pixel is exactly 0.5 (the clean test image), 'b' on
    any noisy copy of it: a base classifier whose clean label the smoothed one never predicts."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        noisy = (x[:, 0, 0, 0] - 0.5).abs() > 1e-6
        return F.one_hot(noisy.long(), 3).float()


def clean_only_classifier() -> LoadedModel:
    return LoadedModel(
        name="clean-only",
        kind="classifier",
        architecture="clean-only",
        version="1",
        module=CleanOnlyClassifier(),
        classes=("a", "b", "c"),
    )


def random_conv_classifier(seed: int = 7) -> LoadedModel:
    """A small random conv net on 32x32 images whose answers vary with the noise."""
    torch.manual_seed(seed)
    module = nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 30 * 30, 10)
    ).eval()
    return LoadedModel(
        "random-conv", "classifier", "random-conv", f"seed{seed}", module, tuple("abcdefghij"), 32
    )


def no_denoiser() -> LoadedModel:
    return load_denoiser("none")
