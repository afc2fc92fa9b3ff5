"""Example images from scikit-image's bundled photos, for demos and smoke tests."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

__all__ = ["EXAMPLES", "example_image", "write_example"]

EXAMPLES = ("chelsea", "coffee", "astronaut", "rocket")


def example_image(name: str = "chelsea", size: int | None = 32) -> Image.Image:
    """A scikit-image photo (``chelsea`` is a cat), centre-cropped square and resized to ``size``.

    The resize makes a CIFAR-sized input; the certified image is the resized one.
    """
    if name not in EXAMPLES:
        raise ValueError(f"unknown example {name!r}; choose from {', '.join(EXAMPLES)}")
    from skimage import data

    photo = Image.fromarray(getattr(data, name)()).convert("RGB")
    side = min(photo.size)
    left, top = (photo.width - side) // 2, (photo.height - side) // 2
    square = photo.crop((left, top, left + side, top + side))
    return square if size is None else square.resize((size, size), Image.Resampling.LANCZOS)


def write_example(path: Path, name: str = "chelsea", size: int | None = 32) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    example_image(name, size).save(path, format="PNG")
    return path
