"""Image decoding into the certificate's space: RGB float32 [C, H, W] with values in [0, 1].

The image is certified exactly as decoded: no resizing here (statistical rule 1). EXIF orientation
is applied and the first frame of an animation is used, so the certified pixels are the ones a
person sees.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from service.config import DEFAULT_MAX_PIXELS

__all__ = [
    "ACCEPTED_FORMATS",
    "ImageDecodeError",
    "decode_image",
    "decoding_notes",
    "load_image",
]

ACCEPTED_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF")


DecodeFailure = Literal["empty", "unsupported", "too_large", "corrupt"]


class ImageDecodeError(ValueError):
    """The bytes are not an image this service accepts; the message says why."""

    def __init__(self, message: str, reason: DecodeFailure = "corrupt") -> None:
        super().__init__(message)
        self.reason: DecodeFailure = reason


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> torch.Tensor:
    """Decode PNG/JPEG/WebP/BMP/GIF bytes to an RGB float32 tensor [3, H, W] in [0, 1].

    16-bit images are scaled, not clipped; transparent images are composited onto white.
    """
    if not data:
        raise ImageDecodeError("the image is empty (0 bytes)", "empty")
    try:
        with warnings.catch_warnings():
            # Pillow's decompression-bomb guard warns first and raises at twice the limit:
            # turn its warning into a refusal too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS) as opened:
                width, height = opened.size
                if width * height > max_pixels:
                    raise ImageDecodeError(
                        f"image is {width}x{height} = {width * height:,} pixels; "
                        f"the limit is {max_pixels:,}",
                        "too_large",
                    )
                opened.seek(0)
                rgb = _to_rgb(ImageOps.exif_transpose(opened))
    except ImageDecodeError:
        raise
    except UnidentifiedImageError as exc:
        raise ImageDecodeError(
            f"not a recognised image; accepted formats: {', '.join(ACCEPTED_FORMATS)}",
            "unsupported",
        ) from exc
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise ImageDecodeError(
            f"image refused: it has over {max_pixels:,} pixels (a decompression bomb?)",
            "too_large",
        ) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageDecodeError(f"image could not be decoded: {exc}") from exc
    array = np.asarray(rgb, dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(255.0)


def decoding_notes(data: bytes) -> list[str]:
    """Where the certified pixels (what :func:`decode_image` makes) may differ from what a
    viewer shows: transparency composited onto white, an EXIF rotation, an animation's first
    frame. Reads the header only; an image that cannot be opened has none (decoding says why)."""
    try:
        with Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS) as opened:
            transparent = opened.mode in ("RGBA", "LA", "PA") or "transparency" in opened.info
            rotated = opened.getexif().get(ExifTags.Base.Orientation, 1) not in (1, None)
            frames = getattr(opened, "n_frames", 1)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return []
    notes = []
    if transparent:
        notes.append(
            "the image has transparency: it was certified composited onto white, which a "
            "viewer may show on another background"
        )
    if rotated:
        notes.append(
            "the image was certified turned as its EXIF orientation says; a viewer that ignores "
            "EXIF shows it otherwise"
        )
    if frames > 1:
        notes.append(f"the image is animated ({frames} frames): only its first was certified")
    return notes


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I", "I;16", "I;16L", "I;16B", "I;16N"):
        # 16-bit greyscale: scale to 8 bits (Pillow's own conversion would clip at 255).
        wide = np.asarray(image, dtype=np.float64)
        image = Image.fromarray(np.clip(wide / 257.0, 0, 255).round().astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def load_image(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> torch.Tensor:
    """Read and decode an image file; errors name the file."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageDecodeError(f"cannot read {path}: {exc.strerror or exc}", "empty") from exc
    try:
        return decode_image(data, max_pixels)
    except ImageDecodeError as exc:
        raise ImageDecodeError(f"{path}: {exc}", exc.reason) from exc


def resize_to(images: torch.Tensor, size: int | None) -> torch.Tensor:
    """Resize [B, C, H, W] to size x size (antialiased bilinear) unless it already is."""
    if size is None or tuple(images.shape[-2:]) == (size, size):
        return images
    return F.interpolate(
        images, size=(size, size), mode="bilinear", antialias=True, align_corners=False
    )
