"""Checkpoint I/O: weights in safetensors, metadata as JSON inside the safetensors header.

One self-describing file per model: the ``dsmooth`` header entry holds the architecture, sigma,
objective, classifiers used, data, validation figures and version, so a checkpoint can be
registered and audited without loading its tensors.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

__all__ = ["file_version", "read_metadata", "read_state", "save_checkpoint"]

_METADATA_KEY = "dsmooth"


def save_checkpoint(path: Path, state: dict[str, torch.Tensor], metadata: dict[str, Any]) -> None:
    """Write ``state`` (contiguous CPU copies) and ``metadata`` to ``path`` atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {key: value.detach().to("cpu").contiguous() for key, value in state.items()}
    tmp = path.with_suffix(path.suffix + ".tmp")
    save_file(tensors, str(tmp), metadata={_METADATA_KEY: json.dumps(metadata, sort_keys=True)})
    tmp.replace(path)


def read_metadata(path: Path) -> dict[str, Any]:
    """The JSON metadata of a checkpoint written by :func:`save_checkpoint` ({} if none, as
    for a torch pickle, which :func:`read_state` also reads: a run started from one reads this
    when it exports)."""
    if path.suffix != ".safetensors":
        return {}
    with safe_open(str(path), framework="pt") as handle:
        header = handle.metadata() or {}
    raw = header.get(_METADATA_KEY)
    return json.loads(raw) if raw else {}


def read_state(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors file, or of a torch pickle (``.th``/``.pt``/``.pth``)."""
    if path.suffix == ".safetensors":
        return load_file(str(path))
    blob = torch.load(path, map_location="cpu", weights_only=True)
    state = blob.get("state_dict", blob) if isinstance(blob, dict) else None
    if not isinstance(state, dict):
        raise ValueError(f"{path}: no state_dict in this checkpoint")
    # Checkpoints saved from nn.DataParallel prefix every key with "module.".
    return {key.removeprefix("module."): value for key, value in state.items()}


def state_digest(state: dict[str, torch.Tensor]) -> str:
    """The first 8 hex digits of a SHA-256 over the weights (names and bytes): a trained
    checkpoint's version carries it, so two trained the same day never share a version (and
    so never each other's stored votes)."""
    digest = hashlib.sha256()
    for name in sorted(state):
        digest.update(name.encode())
        tensor = state[name].detach().cpu().contiguous().reshape(-1)  # 0-d: not viewable
        digest.update(tensor.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:8]


def file_version(path: Path) -> str:
    """A content version for a weights file: the first 12 hex digits of its SHA-256."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return f"sha256:{digest.hexdigest()[:12]}"
