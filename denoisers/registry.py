"""Named models: architectures, the checkpoints the project ships, and ``NAME[:WEIGHTS]`` loading.

A model spec is ``NAME`` or ``NAME:WEIGHTS``. ``NAME`` is an architecture (``dncnn``,
``cifar-resnet56``, ``resnet50``, ...) or a shipped checkpoint (a ``.safetensors`` file in
``denoisers/checkpoints/`` whose metadata names its architecture). ``WEIGHTS`` is a path to a
safetensors checkpoint or a torch pickle (``.th``, ``.pt``, ``.pth``).

A classifier may also be a model file of another framework: ``onnx:PATH``, ``torchscript:PATH``,
``tflite:PATH`` (:mod:`denoisers.runtimes`). A file's model card (:mod:`denoisers.cards`: input
size, channel order, normalisation, class names, the kind of images) lies beside it or follows
the path inline (``PATH?key=value&...``); for a state dict of a registered architecture the card
may only name the classes, the images and a version. A file's version is its SHA-256 digest
(``sha256:<12 hex>``), followed by ``+card:<8 hex>`` when a card changes what it computes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path, PurePath
from types import MappingProxyType
from typing import Any, Literal

import torch
from torch import nn

from denoisers.cards import CardError, ModelCard, load_card, split_spec
from denoisers.checkpoints import file_version, read_metadata, read_state
from denoisers.runtimes import FORMATS, load_external

__all__ = [
    "FORMATS",
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
    "shipped_siblings",
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
    images: str | None = None  # the kind of images it was made for (its domain)
    # Why its default weights cannot be loaded here (None: they can, or it needs weights).
    unavailable: Callable[[], str | None] = lambda: None
    # A model file by name (a third-party classifier in a known place): (format, path, card),
    # loaded as ``FORMAT:PATH`` with that card when the name is given without weights.
    file: Callable[[], tuple[str, Path, ModelCard]] | None = None

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
    images: str | None = None  # the kind of images it was made for (its domain)

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
    images: str | None = None,
    unavailable: Callable[[], str | None] | None = None,
    file: Callable[[], tuple[str, Path, ModelCard]] | None = None,
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
            name, kind, build, needs_weights, description, class_names, input_size, images,
            unavailable or (lambda: None), file,
        )  # fmt: skip
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
        _data_name(training.get("data")),
        classifiers,
    )


def _data_name(path: str | None) -> tuple[str, ...] | None:
    """The training data by its last two path parts (``cifar10/train-jpeg.tar.gz``): the trainer
    records the path as it was typed, and where the data lay on the training machine
    (``../shared`` or ``/work/shared``) must not split a family."""
    return PurePath(path).parts[-2:] if path else None


@cache
def shipped_metadata() -> Mapping[str, Mapping[str, Any]]:
    """Each shipped checkpoint's metadata, read from its header once per process."""
    return {name: read_metadata(path) for name, path in shipped_checkpoints().items()}


def shipped_siblings(like: str) -> dict[float, str]:
    """The shipped denoisers of the family of the shipped denoiser ``like``, by the sigma each
    was trained for (``like`` first among any two of one sigma); {} when ``like`` is not
    shipped."""
    shipped = shipped_metadata()
    if like not in shipped:
        return {}
    family = _family(shipped[like])
    siblings: dict[float, str] = {}
    for name, metadata in sorted(shipped.items(), key=lambda item: item[0] != like):
        trained_for = metadata.get("sigma")
        kind = metadata.get("kind")
        if kind == "denoiser" and trained_for is not None and _family(metadata) == family:
            siblings.setdefault(float(trained_for), name)
    return siblings


def shipped_denoiser_for(sigma: float, like: str) -> str | None:
    """The shipped denoiser trained for ``sigma`` in the family of the shipped denoiser ``like``
    (``like`` itself when it is trained for ``sigma``); None when none is shipped."""
    for trained_for, name in shipped_siblings(like).items():
        if abs(trained_for - sigma) < 1e-9:
            return name
    return None


def load_model(spec: str, kind: ModelKind) -> LoadedModel:
    """Build the model named by ``spec`` (``NAME`` or ``NAME:WEIGHTS``) in eval mode on the CPU."""
    name, _, rest = spec.partition(":")
    weights, inline = split_spec(rest)
    if name in FORMATS:
        if kind != "classifier":
            raise UnknownModelError(f"{name!r} files serve classifiers only, not {kind}s")
        return _external(name, _weights_path(name, weights), inline)
    shipped = shipped_checkpoints()
    if name in shipped and not weights:
        return _from_checkpoint(name, kind, shipped[name])
    arch = _ARCHITECTURES.get(name)
    if arch is None or arch.kind != kind:
        known = sorted([a.name for a in _ARCHITECTURES.values() if a.kind == kind])
        known += sorted(n for n, m in shipped_metadata().items() if m.get("kind") == kind)
        raise UnknownModelError(f"unknown {kind} {name!r}; known: {', '.join(known)}")
    if not weights and arch.file is not None:
        missing = arch.unavailable()
        if missing:
            raise ModelLoadError(f"{kind} {name!r} cannot be loaded: {missing}")
        fmt, file, file_card = arch.file()
        return replace(_loaded_external(fmt, file, file_card), name=name)
    if not weights:
        if arch.needs_weights:
            raise ModelLoadError(f"{kind} {name!r} needs weights: use {name}:PATH")
        return _build(arch, None, name, _default_version(arch))
    path = _weights_path(name, weights)
    card = _card(path, inline)
    if card is not None and card.given - _STATE_CARD_FIELDS:
        fields = ", ".join(sorted(card.given - _STATE_CARD_FIELDS))
        raise ModelLoadError(
            f"the card of {path.name} sets {fields}: the architecture {name!r} fixes them (its "
            f"first layer normalises); a state dict's card may set only "
            f"{', '.join(sorted(_STATE_CARD_FIELDS))}"
        )
    model = _build(arch, path, name, _file_version(path, card))
    return _with_card(model, card) if card is not None else model


# What a model card may say about a state dict of a registered architecture.
_STATE_CARD_FIELDS = frozenset({"classes", "images", "version"})


def _weights_path(name: str, weights: str) -> Path:
    if not weights:
        raise ModelLoadError(f"{name!r} needs a file: use {name}:PATH")
    path = Path(weights).expanduser()
    if not path.is_file():
        raise ModelLoadError(f"weights file not found: {path}")
    return path


def _card(path: Path, inline: Mapping[str, str]) -> ModelCard | None:
    try:
        return load_card(path, inline)
    except CardError as exc:
        raise ModelLoadError(str(exc)) from exc


def _file_version(path: Path, card: ModelCard | None) -> str:
    """The file's digest, and the card's where there is one: a card changes the base
    classifier (preprocessing, names), so it is part of the version and of every noise seed."""
    return file_version(path) + ("" if card is None else f"+card:{card.digest()}")


def _card_metadata(card: ModelCard) -> dict[str, Any]:
    return {"card": card.model_dump(mode="json", exclude={"classes"}, exclude_none=True)}


def _with_card(model: LoadedModel, card: ModelCard) -> LoadedModel:
    """A state dict's model with its card's class names and images."""
    classes = model.classes
    if card.classes is not None:
        if len(card.classes) != len(model.classes):
            raise ModelLoadError(
                f"the card names {len(card.classes)} classes, {model.architecture!r} has "
                f"{len(model.classes)}"
            )
        classes = card.classes
    return replace(
        model,
        classes=classes,
        images=card.images or model.images,
        metadata={**model.metadata, **_card_metadata(card)},
    )


def _external(fmt: str, path: Path, inline: Mapping[str, str]) -> LoadedModel:
    """A classifier file of another framework (ONNX, TorchScript, TFLite) and its card."""
    return _loaded_external(fmt, path, _card(path, inline))


def _loaded_external(fmt: str, path: Path, card: ModelCard | None) -> LoadedModel:
    try:
        loaded = load_external(fmt, path, card)
    except Exception as exc:  # the runtimes raise their own types for unreadable files
        raise ModelLoadError(f"cannot load {fmt} classifier from {path}: {exc}") from exc
    metadata: dict[str, Any] = {**loaded.details, "file": path.name}
    if card is not None:
        metadata.update(_card_metadata(card))
    return LoadedModel(
        name=fmt,
        kind="classifier",
        architecture=fmt,
        version=_file_version(path, card),
        module=loaded.module,
        classes=loaded.classes,
        input_size=loaded.input_size,
        metadata=metadata,
        images=None if card is None else card.images,
    )


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
        images=arch.images,
    )


def _default_version(arch: Architecture) -> str:
    return "identity" if arch.name == "none" else f"torchvision:{arch.name}-imagenet1k"
