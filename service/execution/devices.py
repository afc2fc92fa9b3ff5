"""Devices, precision, threads and memory: where and how the models run."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import torch
from torch import nn
from torch.fx.experimental.optimization import fuse

__all__ = [
    "Forward",
    "Precision",
    "available_cpus",
    "compiled",
    "configure_cpu_threads",
    "fixed_size",
    "for_inference",
    "memory_budget",
    "resolve_device",
    "resolve_precision",
    "run_fixed_size",
]


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present, else the CPU; anything else is passed to torch."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but no CUDA device is available")
    return device


Precision = Literal["auto", "fp32", "bf16"]


def resolve_precision(precision: Precision, device: torch.device) -> str:
    """``auto``: bf16 where the hardware computes it natively (CUDA with bf16, AVX512-BF16)."""
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "fp32"


def for_inference(module: nn.Module, device: torch.device) -> nn.Module:
    """BatchNorm folded into the convolutions (torch.fx), channels_last, on ``device``.

    Folding changes the arithmetic by float rounding only; the folded model is the base
    classifier that is certified. Models torch.fx cannot trace are used as they are.
    """
    module = module.eval()
    with contextlib.suppress(Exception):  # not traceable: fine, just slower
        module = fuse(module)
    return module.to(device).to(memory_format=torch.channels_last)


Forward = Callable[[torch.Tensor], torch.Tensor]


def compiled(module: nn.Module, enabled: bool, device: torch.device) -> Forward:
    """``torch.compile`` of ``module`` when ``enabled``, with a dynamic batch dimension: chunks
    and the last batch of a chunk vary in size, and a static graph would recompile for each
    (~18 s per size on a 2-core CPU). The first call pays the compilation (10-25 s there).

    On CUDA also CUDA graphs (``mode="reduce-overhead"``), which remove the kernel-launch overhead
    that dominates 32x32 models: a graph replays one shape and is recorded at the first batch of
    each size, so the worker pads batches to a few fixed sizes (:func:`fixed_size`)."""
    if not enabled:
        return module
    return torch.compile(
        module, dynamic=True, mode="reduce-overhead" if device.type == "cuda" else None
    )


def fixed_size(size: int, largest: int) -> int:
    """The batch size a batch of ``size`` runs at under fixed shapes: the next power of two, at
    most ``largest`` — log2(largest) + 1 shapes in all, at most twice the work on a short batch."""
    return min(largest, 1 << (size - 1).bit_length())


def run_fixed_size(forward: Forward, batch: torch.Tensor, largest: int) -> torch.Tensor:
    """``forward(batch)`` run at :func:`fixed_size`: padded with zero images, whose outputs are
    dropped (every model here is per-sample at inference, so padding changes no real output)."""
    size, target = batch.shape[0], fixed_size(batch.shape[0], largest)
    padded = batch
    if target > size:  # full batches, the common case, run as they are: no copy
        padded = torch.empty(
            (target, *batch.shape[1:]),
            dtype=batch.dtype,
            device=batch.device,
            memory_format=torch.channels_last,
        ).zero_()
        padded[:size] = batch
    # A new step for CUDA graph trees: the previous call's outputs were consumed, so the graph
    # may overwrite them instead of copying (a no-op without CUDA graphs).
    torch.compiler.cudagraph_mark_step_begin()
    return forward(padded)[:size]


def available_cpus() -> int:
    """CPUs this process may use: its affinity mask, capped by a cgroup v2 CPU quota."""
    count = len(os.sched_getaffinity(0))
    with contextlib.suppress(OSError, ValueError):
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            count = min(count, max(1, int(quota) // int(period)))
    return count


def configure_cpu_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads to ``threads``, by default to :func:`available_cpus`.

    torch counts the host's cores, so a container limited to 2 CPUs of a 64-core host would run
    64 threads and thrash; one thread per usable CPU is the fastest setting measured here.
    """
    count = threads or available_cpus()
    torch.set_num_threads(count)
    return count


def memory_budget(device: torch.device) -> int:
    """Bytes one forward pass may take: half the free GPU memory, or a quarter of the memory
    available to this process on the CPU (the rest stays for requests, images and other models)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0] // 2
    available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    with contextlib.suppress(OSError, ValueError):  # a container's limit, when it has one
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
        if limit != "max":
            available = min(available, int(limit) - used)
    return max(0, available) // 4
