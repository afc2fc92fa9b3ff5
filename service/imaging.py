"""Image decoding into the certificate's space: RGB float32 [C, H, W] with values in [0, 1].

The image is certified exactly as decoded: no resizing here (statistical rule 1). EXIF orientation
is applied and the first frame of an animation is used, so the certified pixels are the ones a
person sees.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = [
    "ACCEPTED_FORMATS",
    "DEFAULT_MAX_PIXELS",
    "ImageDecodeError",
    "decode_image",
    "load_image",
]

ACCEPTED_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF")
DEFAULT_MAX_PIXELS = 16_000_000


class ImageDecodeError(ValueError):
    """The bytes are not an image this service accepts; the message says why."""


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> torch.Tensor:
    """Decode PNG/JPEG/WebP/BMP/GIF bytes to an RGB float32 tensor [3, H, W] in [0, 1]."""
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
                        f"the limit is {max_pixels:,}"
                    )
                opened.seek(0)
                upright = ImageOps.exif_transpose(opened)
                rgb = upright.convert("RGB")
    except ImageDecodeError:
        raise
    except UnidentifiedImageError as exc:
        raise ImageDecodeError(
            f"not a recognised image; accepted formats: {', '.join(ACCEPTED_FORMATS)}"
        ) from exc
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise ImageDecodeError(f"image refused as a decompression bomb: {exc}") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageDecodeError(f"image could not be decoded: {exc}") from exc
    array = np.asarray(rgb, dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(255.0)


def load_image(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> torch.Tensor:
    """Read and decode an image file; errors name the file."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageDecodeError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        return decode_image(data, max_pixels)
    except ImageDecodeError as exc:
        raise ImageDecodeError(f"{path}: {exc}") from exc
