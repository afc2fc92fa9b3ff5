"""Named models: architectures, the checkpoints the project ships, and ``NAME[:WEIGHTS]`` loading.

A model spec is ``NAME`` or ``NAME:WEIGHTS``. ``NAME`` is an architecture (``dncnn``,
``cifar-resnet56``, ``resnet50``, ...) or a shipped checkpoint (a ``.safetensors`` file in
``denoisers/checkpoints/`` whose metadata names its architecture). ``WEIGHTS`` is a path to a
safetensors checkpoint or a torch pickle (``.th``, ``.pt``, ``.pth``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import torch
from torch import nn

from denoisers.checkpoints import file_version, read_metadata, read_state

__all__ = [
    "SHIPPED_DIR",
    "Architecture",
    "LoadedModel",
    "ModelKind",
    "ModelLoadError",
    "State",
    "UnknownModelError",
    "architectures",
    "create_model",
    "list_models",
    "load_classifier",
    "load_denoiser",
    "load_model",
    "register_architecture",
    "shipped_checkpoints",
    "shipped_denoiser_for",
    "shipped_metadata",
    "with_state",
]

ModelKind = Literal["denoiser", "classifier"]
State = dict[str, torch.Tensor]
Builder = Callable[[State | None], nn.Module]

SHIPPED_DIR = Path(__file__).parent / "checkpoints"


class UnknownModelError(LookupError):
    """No architecture or shipped checkpoint has this name."""


class ModelLoadError(RuntimeError):
    """The model exists but its weights could not be loaded."""


@dataclass(frozen=True, slots=True)
class Architecture:
    name: str
    kind: ModelKind
    build: Builder
    needs_weights: bool
    description: str
    class_names: Callable[[], tuple[str, ...]] = tuple
    input_size: int | None = None

    @property
    def classes(self) -> tuple[str, ...]:
        return self.class_names()


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """A model ready for inference (eval mode, CPU) with what a certificate must record."""

    name: str
    kind: ModelKind
    architecture: str
    version: str
    module: nn.Module
    classes: tuple[str, ...] = ()
    input_size: int | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def sigma(self) -> float | None:
        """The noise level a denoiser was trained for, when its checkpoint says."""
        value = self.metadata.get("sigma")
        return float(value) if value is not None else None


_ARCHITECTURES: dict[str, Architecture] = {}


def register_architecture(
    name: str,
    kind: ModelKind,
    *,
    needs_weights: bool,
    description: str,
    classes: tuple[str, ...] | Callable[[], tuple[str, ...]] = (),
    input_size: int | None = None,
) -> Callable[[Builder], Builder]:
    """Register ``build(state_or_None) -> module`` under ``name``; refuses to overwrite a name.

    ``classes`` may be a function, called when first needed (ImageNet's names import torchvision,
    seconds that every CLI start would otherwise pay).
    """
    class_names = classes if callable(classes) else (lambda: classes)

    def decorator(build: Builder) -> Builder:
        if name in _ARCHITECTURES:
            raise ValueError(f"architecture {name!r} is already registered")
        _ARCHITECTURES[name] = Architecture(
            name, kind, build, needs_weights, description, class_names, input_size
        )
        return build

    return decorator


def architectures() -> Mapping[str, Architecture]:
    """Read-only view of the registered architectures."""
    return MappingProxyType(_ARCHITECTURES)


def shipped_checkpoints() -> dict[str, Path]:
    """Checkpoints shipped with the package, by name (the file stem)."""
    return {path.stem: path for path in sorted(SHIPPED_DIR.glob("*.safetensors"))}


def with_state(module: nn.Module, state: State | None) -> nn.Module:
    """``module`` with ``state`` loaded into it (as built when ``state`` is None)."""
    if state is not None:
        module.load_state_dict(state)
    return module


def create_model(name: str, state: State | None = None) -> nn.Module:
    """A registered architecture, built with ``state`` or with fresh (or its default) weights."""
    arch = _ARCHITECTURES.get(name)
    if arch is None:
        raise UnknownModelError(f"unknown architecture {name!r}; known: {', '.join(list_models())}")
    return arch.build(state)


def list_models(kind: ModelKind | None = None) -> list[str]:
    """Names of the registered architectures (of one kind), sorted."""
    return sorted(a.name for a in _ARCHITECTURES.values() if kind in (None, a.kind))


@register_architecture(
    "none", "denoiser", needs_weights=False, description="no denoiser (plain randomized smoothing)"
)
def _identity(state: State | None) -> nn.Module:
    return nn.Identity()


def _family(metadata: Mapping[str, Any]) -> tuple[Any, ...]:
    """What makes denoisers siblings: the same architecture, objective, training data and
    classifiers (Stab through the target is not Stab through surrogates)."""
    training = metadata.get("training") or {}
    classifiers = tuple(sorted((c["role"], c["name"]) for c in metadata.get("classifiers", [])))
    return (
        metadata.get("architecture"),
        metadata.get("objective"),
        training.get("data"),
        classifiers,
    )


@cache
def shipped_metadata() -> Mapping[str, Mapping[str, Any]]:
    """Each shipped checkpoint's metadata, read from its header once per process."""
    return {name: read_metadata(path) for name, path in shipped_checkpoints().items()}


def shipped_denoiser_for(sigma: float, like: str) -> str | None:
    """The shipped denoiser trained for ``sigma`` in the family of the shipped denoiser ``like``
    (``like`` itself when it is trained for ``sigma``); None when none is shipped."""
    shipped = shipped_metadata()
    if like not in shipped:
        return None
    family = _family(shipped[like])
    for name, metadata in sorted(shipped.items(), key=lambda item: item[0] != like):
        trained_for = metadata.get("sigma")
        if (
            metadata.get("kind") == "denoiser"
            and trained_for is not None
            and abs(float(trained_for) - sigma) < 1e-9
            and _family(metadata) == family
        ):
            return name
    return None


def load_model(spec: str, kind: ModelKind) -> LoadedModel:
    """Build the model named by ``spec`` (``NAME`` or ``NAME:WEIGHTS``) in eval mode on the CPU."""
    name, _, weights = spec.partition(":")
    shipped = shipped_checkpoints()
    if name in shipped and not weights:
        return _from_checkpoint(name, kind, shipped[name])
    arch = _ARCHITECTURES.get(name)
    if arch is None or arch.kind != kind:
        known = sorted([a.name for a in _ARCHITECTURES.values() if a.kind == kind])
        known += sorted(n for n, m in shipped_metadata().items() if m.get("kind") == kind)
        raise UnknownModelError(f"unknown {kind} {name!r}; known: {', '.join(known)}")
    if not weights:
        if arch.needs_weights:
            raise ModelLoadError(f"{kind} {name!r} needs weights: use {name}:PATH")
        return _build(arch, None, name, _default_version(arch))
    path = Path(weights).expanduser()
    if not path.is_file():
        raise ModelLoadError(f"weights file not found: {path}")
    return _build(arch, path, name, file_version(path))


def load_denoiser(spec: str) -> LoadedModel:
    return load_model(spec, "denoiser")


def load_classifier(spec: str) -> LoadedModel:
    return load_model(spec, "classifier")


def _from_checkpoint(name: str, kind: ModelKind, path: Path) -> LoadedModel:
    metadata = shipped_metadata()[name]
    arch = _ARCHITECTURES.get(str(metadata.get("architecture")))
    if arch is None or arch.kind != kind:
        raise ModelLoadError(f"{path}: metadata names no {kind} architecture")
    return _build(arch, path, name, str(metadata.get("version", file_version(path))), metadata)


def _build(
    arch: Architecture,
    path: Path | None,
    name: str,
    version: str,
    metadata: Mapping[str, Any] | None = None,
) -> LoadedModel:
    try:
        state = read_state(path) if path is not None else None
        if metadata is None and path is not None and path.suffix == ".safetensors":
            metadata = read_metadata(path)
        module = arch.build(state).eval()
    except (OSError, RuntimeError, ValueError, KeyError) as exc:
        where = f" from {path}" if path is not None else ""
        raise ModelLoadError(f"cannot load {arch.kind} {name!r}{where}: {exc}") from exc
    return LoadedModel(
        name=name,
        kind=arch.kind,
        architecture=arch.name,
        version=version,
        module=module,
        classes=arch.classes,
        input_size=arch.input_size,
        metadata=dict(metadata or {}),
    )


def _default_version(arch: Architecture) -> str:
    return "identity" if arch.name == "none" else f"torchvision:{arch.name}-imagenet1k"
