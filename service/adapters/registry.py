"""Adapters by name, imported on first use, with an install hint when a dependency is missing.

Third-party packages add adapters through the ``denoised_smoothing.adapters`` entry-point group
(``name = "package.module:AdapterClass"``); a built-in name cannot be overridden.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from importlib.metadata import entry_points
from types import MappingProxyType

import httpx
from pydantic_settings import BaseSettings

from service.adapters.base import Adapter

__all__ = ["ENTRY_POINT_GROUP", "AdapterUnavailable", "adapter_class", "adapters", "create_adapter"]

ENTRY_POINT_GROUP = "denoised_smoothing.adapters"

_BUILTIN: dict[str, tuple[str, str | None]] = {
    "azure": ("service.adapters.azure:AzureAdapter", None),
    "google": ("service.adapters.google:GoogleAdapter", None),
    "aws": ("service.adapters.aws:AwsAdapter", "pip install 'denoised-smoothing[aws]'"),
    "clarifai": ("service.adapters.clarifai:ClarifaiAdapter", None),
    "kserve": ("service.adapters.kserve:KServeAdapter", None),
    "local": ("service.adapters.local:LocalAdapter", None),
}
# What each adapter needs at call time beyond the core dependencies.
_RUNTIME_IMPORTS = {"aws": "botocore"}


class AdapterUnavailable(LookupError):
    """Unknown adapter, or one whose optional dependency is not installed."""


def adapters() -> Mapping[str, str]:
    """Read-only view: adapter name -> ``module:Class`` (built-ins, then entry points)."""
    found = {name: target for name, (target, _) in _BUILTIN.items()}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(entry.name, entry.value)
    return MappingProxyType(found)


def adapter_class(name: str) -> type[Adapter]:
    target = adapters().get(name)
    if target is None:
        raise AdapterUnavailable(f"no adapter {name!r}; known: {', '.join(sorted(adapters()))}")
    hint = _BUILTIN.get(name, ("", None))[1]
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


def create_adapter(
    name: str,
    client: httpx.AsyncClient,
    settings: BaseSettings | None = None,
    label_map: Mapping[str, str] | None = None,
) -> Adapter:
    return adapter_class(name)(client, settings, label_map)
