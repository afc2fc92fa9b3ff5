"""Adapters by name, imported on first use, with an install hint when a dependency is missing.

Third-party packages add adapters through the ``denoised_smoothing.adapters`` entry-point group
(``name = "package.module:AdapterClass"``); a built-in name cannot be overridden.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from importlib.metadata import entry_points
from types import MappingProxyType

from service.adapters.base import Adapter

__all__ = ["ENTRY_POINT_GROUP", "AdapterUnavailable", "adapter_class", "adapters"]

ENTRY_POINT_GROUP = "denoised_smoothing.adapters"

_DISTRIBUTION = "denoised-smoothing"  # the built-ins' entry points are this package's own
# Install hints and what each adapter needs at call time beyond the core dependencies.
_INSTALL_HINTS = {"aws": "pip install 'denoised-smoothing[aws]'"}
_RUNTIME_IMPORTS = {"aws": "botocore"}


class AdapterUnavailable(LookupError):
    """Unknown adapter, or one whose optional dependency is not installed."""


def adapters() -> Mapping[str, str]:
    """Read-only view: adapter name -> ``module:Class``, from the entry-point group (this
    package's own entries first, so a third-party name clash never replaces a built-in)."""
    entries = sorted(
        entry_points(group=ENTRY_POINT_GROUP),
        key=lambda entry: entry.dist is None or entry.dist.name != _DISTRIBUTION,
    )
    found: dict[str, str] = {}
    for entry in entries:
        found.setdefault(entry.name, entry.value)
    return MappingProxyType(found)


def adapter_class(name: str) -> type[Adapter]:
    target = adapters().get(name)
    if target is None:
        raise AdapterUnavailable(f"no adapter {name!r}; known: {', '.join(sorted(adapters()))}")
    hint = _INSTALL_HINTS.get(name)
    module_name, _, class_name = target.partition(":")
    try:
        if name in _RUNTIME_IMPORTS:
            importlib.import_module(_RUNTIME_IMPORTS[name])
        cls = getattr(importlib.import_module(module_name), class_name)
    except ImportError as exc:
        advice = f"; install it with: {hint}" if hint else ""
        raise AdapterUnavailable(f"adapter {name!r} needs {exc.name}{advice}") from exc
    if not (isinstance(cls, type) and issubclass(cls, Adapter)):
        raise AdapterUnavailable(f"{target} is not an Adapter subclass")
    return cls
