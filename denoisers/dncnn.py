"""DnCNN (Zhang et al. 2017): a plain conv stack that predicts the noise and subtracts it.

The architecture of denoised smoothing (Salman et al. 2020): ``depth`` 3x3 convolutions, the inner
ones followed by BatchNorm and ReLU; orthogonal initialisation and a zero-initialised last layer,
so an untrained DnCNN starts as the identity.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from denoisers.registry import State, register_architecture, with_state

__all__ = ["DnCNN"]


class DnCNN(nn.Module):
    def __init__(self, depth: int = 17, channels: int = 64, image_channels: int = 3) -> None:
        super().__init__()
        if depth < 3:
            raise ValueError(f"DnCNN needs depth >= 3 (got {depth})")
        layers: list[nn.Module] = [
            nn.Conv2d(image_channels, channels, 3, padding=1, bias=True),
            nn.ReLU(inplace=True),
        ]
        for _ in range(depth - 2):
            layers += [
                nn.Conv2d(channels, channels, 3, padding=1, bias=False),
                nn.BatchNorm2d(channels),
                nn.ReLU(inplace=True),
            ]
        layers.append(nn.Conv2d(channels, image_channels, 3, padding=1, bias=False))
        self.body = nn.Sequential(*layers)
        self.depth, self.channels = depth, channels
        self._init_weights()

    def _init_weights(self) -> None:
        convs = [m for m in self.modules() if isinstance(m, nn.Conv2d)]
        for conv in convs:
            nn.init.orthogonal_(conv.weight)
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)
        nn.init.zeros_(convs[-1].weight)

    def forward(self, noisy: torch.Tensor) -> torch.Tensor:
        return noisy - self.body(noisy)


def _build(channels: int, state: State | None) -> nn.Module:
    return with_state(DnCNN(depth=17, channels=channels), state)


for _name, _channels in (("dncnn", 64), ("dncnn-wide", 128)):
    register_architecture(
        _name, "denoiser", needs_weights=True, description=f"DnCNN, 17 layers, {_channels} channels"
    )(partial(_build, _channels))
