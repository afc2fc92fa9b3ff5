"""Where a benchmark ran: the code's commit, package versions, the device and the machine.

Every benchmark's JSON carries ``"provenance": provenance(device)``, so a number can be traced to
the code and hardware that produced it. Nothing here fails: what cannot be found is ``"unknown"``
(the commit) or ``None``.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["provenance", "write_report"]

ROOT = Path(__file__).resolve().parents[1]  # the checkout, when run from one
_PACKAGES = ("torch", "numpy", "denoised-smoothing")


def provenance(device: str | None = None) -> dict[str, Any]:
    """The commit (and whether the tree had uncommitted changes), versions, device, machine."""
    return {
        "git": _git(),
        "versions": {
            "python": platform.python_version(),
            **{name: _version(name) for name in _PACKAGES},
        },
        "device": device,
        "machine": _machine(),
    }


def _run_git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):  # no git, or it hung
        return None
    return done.stdout if done.returncode == 0 else None


def _git() -> dict[str, Any]:
    """HEAD of this checkout; "unknown" (dirty None) without git or outside a checkout (an
    installed package must not report the commit of some repository that happens to hold it)."""
    commit = _run_git("rev-parse", "HEAD") if (ROOT / ".git").exists() else None
    if commit is None:
        return {"commit": "unknown", "dirty": None}
    status = _run_git("status", "--porcelain")
    return {"commit": commit.strip(), "dirty": None if status is None else bool(status.strip())}


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _cpuinfo() -> tuple[str | None, set[str] | None]:
    """The CPU's model name and flags from /proc/cpuinfo (Linux); None where unreadable."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return None, None
    fields: dict[str, str] = {}
    for line in lines:
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    flags = fields.get("flags")
    return fields.get("model name"), set(flags.split()) if flags is not None else None


def _machine() -> dict[str, Any]:
    model, flags = _cpuinfo()
    # torch only when the benchmark loaded it: a numpy-only benchmark does not pay for the import.
    torch: Any = sys.modules.get("torch")
    gpu = None
    if torch is not None:
        try:
            gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
        except Exception:  # a broken driver must not lose the benchmark's results
            gpu = None
    return {
        "platform": platform.platform(),
        "architecture": platform.machine(),
        "cpu": model or platform.processor() or None,
        "avx512_bf16": None if flags is None else "avx512_bf16" in flags,
        "amx": None if flags is None else any(flag.startswith("amx") for flag in flags),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads() if torch is not None else None,
        "gpu": gpu,
    }


def write_report(out: Path, report: dict[str, Any]) -> None:
    """Write a benchmark's JSON report (folders made as needed) and say where."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")
