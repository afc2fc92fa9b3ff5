"""Model cards: what a classifier file does not say about itself.

A card describes how the pixels of a certificate ([0, 1] RGB, NCHW) become the model's input and
what its outputs mean. It is a JSON file beside the model (``model.onnx`` -> ``model.card.json``)
or inline in the spec, after a ``?``, as ``key=value`` pairs joined by ``&``::

    onnx:/models/net.onnx?input_size=224&mean=0.485,0.456,0.406&std=0.229,0.224,0.225
    tflite:/models/mobilenet.tflite?card=/cards/mobilenet.json&images=ImageNet photos

Inline values override the card file's; ``card=PATH`` names a card file elsewhere (a read-only
model directory). Every field is optional:

``input_size``     side the denoised copies are resized to (``any``: never resized, the model
                   takes any size; default: the model's static input shape where it is square)
``channel_order``  ``rgb`` (default) or ``bgr``
``layout``         ``nchw`` or ``nhwc`` (default: the axis of size 3 in the model's input shape)
``pixel_range``    the model's pixel values run from 0 to this: 1 or 255 (default 1; 255 for
                   integer input tensors)
``mean``, ``std``  normalisation, per channel in the model's pixel units: (x - mean) / std
``classes``        class names: a file (one name a line, or a JSON list) relative to the card
                   (inline: as given, like the model's path), or a JSON list in a card file
``images``         the kind of images the model was made for (its domain), e.g. "ImageNet photos"
``version``        the publisher's version (recorded; certificates name the file's digest)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

__all__ = [
    "CardError",
    "ModelCard",
    "card_path_beside",
    "load_card",
    "read_class_names",
    "split_spec",
]


class CardError(ValueError):
    """A model card (file or inline) that cannot be read or does not validate."""


class ModelCard(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    input_size: Annotated[int, Field(ge=1, le=4096)] | Literal["any"] | None = None
    channel_order: Literal["rgb", "bgr"] = "rgb"
    layout: Literal["nchw", "nhwc"] | None = None
    pixel_range: Literal[1, 255] | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    classes: tuple[str, ...] | None = None
    images: str | None = None
    version: str | None = None

    @field_validator("std")
    @classmethod
    def _positive(cls, std: tuple[float, float, float] | None) -> tuple[float, float, float] | None:
        if std is not None and min(std) <= 0:
            raise ValueError("std must be positive")
        return std

    @property
    def given(self) -> set[str]:
        """The fields the card sets (the rest take the model's defaults)."""
        return set(self.model_fields_set)

    def digest(self) -> str:
        """8 hex digits of the card's canonical JSON: part of the model's version, since the card
        changes what the base classifier computes."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:8]


def split_spec(weights: str) -> tuple[str, dict[str, str]]:
    """``PATH?key=value&...`` -> (PATH, {key: value})."""
    path, _, query = weights.partition("?")
    inline = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=False)) if query else {}
    return path, inline


def card_path_beside(model: Path) -> Path:
    """Where a model's card lives: ``net.onnx`` -> ``net.card.json``."""
    return model.with_name(model.name.rsplit(".", 1)[0] + ".card.json")


def read_class_names(path: Path) -> tuple[str, ...]:
    """Class names from a text file (one a line) or JSON (a list, or ``{"0": name}`` /
    ``{"0": [id, name]}`` as in ImageNet's class index)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CardError(f"cannot read the class names file {path}: {exc}") from exc
    if path.suffix.lower() != ".json":
        return tuple(line.strip() for line in text.splitlines() if line.strip())
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise CardError(f"{path}: not JSON ({exc})") from exc
    if isinstance(data, list):
        return tuple(str(name) for name in data)
    if isinstance(data, dict):
        items = sorted(data.items(), key=lambda item: int(item[0]))
        return tuple(str(v[-1] if isinstance(v, list) else v) for _, v in items)
    raise CardError(f"{path}: class names must be a JSON list or object")


def _from_file(path: Path) -> tuple[dict[str, Any], Path]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CardError(f"cannot read the model card {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise CardError(f"{path}: a model card is a JSON object")
    return data, path.parent


def _inline_values(inline: Mapping[str, str]) -> dict[str, Any]:
    """Inline strings to the card's types: comma lists for mean/std, ``any`` for the size."""
    values: dict[str, Any] = {}
    for key, raw in inline.items():
        if key in ("mean", "std"):
            values[key] = [part.strip() for part in raw.split(",")]
        elif key == "input_size" and raw.strip().lower() in ("any", "none", "null"):
            values[key] = "any"
        elif key == "pixel_range" and raw.strip().isdigit():  # a literal 1 or 255, not "255"
            values[key] = int(raw)
        else:
            values[key] = raw
    return values


def load_card(model: Path, inline: Mapping[str, str]) -> ModelCard | None:
    """The model's card: the file beside it (or named by ``card=``) with ``inline`` on top;
    None when there is neither."""
    inline = dict(inline)
    named = inline.pop("card", None)
    data: dict[str, Any] = {}
    base = model.parent
    source = Path(named).expanduser() if named else card_path_beside(model)
    if named or source.is_file():
        data, base = _from_file(source)
    if "input_size" in data and data["input_size"] is None:  # null in a card file: any size
        data["input_size"] = "any"
    data.update(_inline_values(inline))
    classes = data.get("classes")
    if isinstance(classes, str):  # inline, a path as given (like the model's); else the card's
        file = Path(classes).expanduser()
        data["classes"] = read_class_names(file if "classes" in inline else base / file)
    if not data:
        return None
    try:
        return ModelCard.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'card'}: {error['msg']}"
            for error in exc.errors()
        )
        raise CardError(f"model card of {model.name}: {problems}") from exc
