"""Fixtures shared by the suite: the read-only data in ../shared, and small real models."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DSMOOTH_SHARED_DIR", ROOT.parent / "shared"))
RESNET56 = SHARED / "models/third-party/cifar10-resnet/resnet56-4bfd9763.th"
LOSSLESS = SHARED / "data/cifar10/test-lossless-1000.npz"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is absent: the read-only ../shared data is not on this machine")
    return path


@pytest.fixture(scope="session")
def resnet56_path() -> Path:
    return _need(RESNET56)


@pytest.fixture(scope="session")
def cifar_test() -> tuple[torch.Tensor, torch.Tensor]:
    """The first 1000 CIFAR-10 test images, pixel-exact: [N, 3, 32, 32] in [0, 1], labels."""
    data = np.load(_need(LOSSLESS))
    images = torch.from_numpy(data["x"]).permute(0, 3, 1, 2).float().div(255)
    return images, torch.from_numpy(data["y"])


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
