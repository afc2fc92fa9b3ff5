"""A small residual U-Net denoiser: two down-sampling levels, predicts the noise and subtracts it.

Per FLOP it trains far faster than DnCNN (about 0.11 GMAC per 32x32 image against 0.57): the
multi-scale path sees a large receptive field at a fraction of the cost.
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from denoisers.registry import State, register_architecture, with_state

__all__ = ["UNet"]


def _block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    def __init__(self, width: int = 32, image_channels: int = 3) -> None:
        super().__init__()
        w1, w2, w3 = width, 2 * width, 4 * width
        self.width = width
        self.enc1 = _block(image_channels, w1)
        self.enc2 = _block(w1, w2)
        self.bottom = _block(w2, w3)
        self.up2 = nn.Conv2d(w3, w2, 1)
        self.dec2 = _block(2 * w2, w2)
        self.up1 = nn.Conv2d(w2, w1, 1)
        self.dec1 = _block(2 * w1, w1)
        self.out = nn.Conv2d(w1, image_channels, 3, padding=1)
        # Zero last layer: an untrained U-Net is the identity.
        nn.init.zeros_(self.out.weight)
        if self.out.bias is not None:
            nn.init.zeros_(self.out.bias)

    def forward(self, noisy: torch.Tensor) -> torch.Tensor:
        h, w = noisy.shape[-2], noisy.shape[-1]
        # Pad to a multiple of 4 so both poolings are exact; crop back at the end. No branch on
        # the shape, so torch.fx can trace it (BatchNorm folding).
        x = F.pad(noisy, (0, (-w) % 4, 0, (-h) % 4), mode="replicate")
        e1 = self.enc1(x)
        e2 = self.enc2(F.avg_pool2d(e1, 2))
        b = self.bottom(F.avg_pool2d(e2, 2))
        d2 = self.dec2(torch.cat([self.up2(F.interpolate(b, scale_factor=2.0)), e2], 1))
        d1 = self.dec1(torch.cat([self.up1(F.interpolate(d2, scale_factor=2.0)), e1], 1))
        noise = self.out(d1)[..., :h, :w]
        return noisy - noise


def _build(width: int, state: State | None) -> nn.Module:
    return with_state(UNet(width), state)


# The wide one: 4x the FLOPs (0.8 GFLOP an image), for where the 32-channel one has converged.
for _name, _width in (("unet", 32), ("unet-wide", 64)):
    register_architecture(
        _name,
        "denoiser",
        needs_weights=True,
        description=f"residual U-Net, {_width}/{2 * _width}/{4 * _width} channels",
    )(partial(_build, _width))
