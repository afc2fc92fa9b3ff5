"""What one noisy copy costs before anything runs: floating-point operations and peak memory.

Every request is priced up front (``work = samples x FLOPs per sample``) and refused when it is
over the server's limits, so that no upload — however small its file — can tie up the device
for hours or exhaust its memory. Convolutional models cost in proportion to their input's pixels:
each model is measured once at a small reference size and the figure is scaled, never measured at
the (possibly huge) size of the request.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["REFERENCE_SIDE", "Work", "at_size", "measure", "scaled"]

REFERENCE_SIDE = 64  # divisible by every U-Net's downsampling; cheap to run once


@dataclass(frozen=True, slots=True)
class Work:
    """The cost of one noisy copy of one image shape through a model (or a chain of them)."""

    flops: float  # floating-point operations (2 per multiply-add) of one forward pass
    peak_bytes: int  # memory one copy needs in a forward pass, fp32 (see :func:`measure`)

    def __add__(self, other: Work) -> Work:
        # Run one after the other: the operations add up, the memory peaks of the larger.
        return Work(self.flops + other.flops, max(self.peak_bytes, other.peak_bytes))


@functools.cache
def _per_pixel(module: nn.Module, channels: int) -> Work:
    """Cost per input pixel, measured at REFERENCE_SIDE (cached per model)."""
    work = measure(module, (channels, REFERENCE_SIDE, REFERENCE_SIDE))
    pixels = REFERENCE_SIDE * REFERENCE_SIDE
    return Work(work.flops / pixels, math.ceil(work.peak_bytes / pixels))


@torch.inference_mode()
def measure(module: nn.Module, shape: tuple[int, ...]) -> Work:
    """One forward pass of one sample of ``shape`` [C, H, W] on the CPU: its FLOPs, and its
    input plus three times its largest activation (inputs, outputs and a residual alive at once).
    """
    largest = 0

    def record(_: nn.Module, __: object, output: object) -> None:
        nonlocal largest
        if isinstance(output, torch.Tensor):
            largest = max(largest, output.numel())

    device = next(module.parameters(), torch.empty(0)).device
    # TorchScript modules take no hooks: their activations count through their output only.
    scripted = torch.jit.ScriptModule
    hooks = [
        m.register_forward_hook(record) for m in module.modules() if not isinstance(m, scripted)
    ]
    try:
        with FlopCounterMode(display=False) as counter:
            module(torch.zeros(1, *shape, device=device))
    finally:
        for hook in hooks:
            hook.remove()
    return Work(float(counter.get_total_flops()), 4 * (math.prod(shape) + 3 * largest))


@functools.cache
def at_size(module: nn.Module, shape: tuple[int, ...]) -> Work:
    """The cost at one fixed size (a classifier's input size), measured once."""
    return measure(module, shape)


def scaled(module: nn.Module, shape: tuple[int, ...]) -> Work:
    """The cost of one sample of ``shape`` [C, H, W], scaled from the model's per-pixel cost."""
    channels, height, width = shape
    per_pixel = _per_pixel(module, channels)
    pixels = height * width
    return Work(per_pixel.flops * pixels, per_pixel.peak_bytes * pixels)
