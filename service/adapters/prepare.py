"""Turning denoised copies into what a vendor accepts: clip, quantise, upscale, PNG-encode.

All of it is part of the base classifier (it happens after the noise), so it is allowed by
statistical rule 1 and must be deterministic: the same copy always gives the same bytes.
"""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image

__all__ = [
    "encode_copies",
    "encode_png",
    "largest_png",
    "quantise",
    "upscaled",
    "upscaled_size",
]


def quantise(images: torch.Tensor) -> np.ndarray:
    """[B, 3, H, W] floats to uint8 [B, H, W, 3]: clipped to [0, 1], rounded to 8 bits."""
    scaled = images.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8)
    return scaled.permute(0, 2, 3, 1).cpu().numpy()


def upscaled_size(width: int, height: int, min_side: int) -> tuple[int, int]:
    """(width, height) scaled, aspect kept, so that the short side is at least ``min_side``."""
    short = min(width, height)
    if short >= min_side:
        return width, height
    scale = min_side / short
    return max(min_side, round(width * scale)), max(min_side, round(height * scale))


def upscaled(image: Image.Image, min_side: int) -> Image.Image:
    """Resized (Lanczos, aspect kept) so that the short side is at least ``min_side``."""
    size = upscaled_size(image.width, image.height, min_side)
    return image if size == image.size else image.resize(size, Image.Resampling.LANCZOS)


def largest_png(width: int, height: int, min_side: int = 1) -> int:
    """Bytes an :func:`encode_png` copy of a ``width`` x ``height`` image may take at most: the
    pixels and a filter byte a row, when noise leaves nothing to compress, and what deflate's
    stored blocks and the PNG chunks add (0.04% of that on uniform noise; 0.1% allowed).
    """
    width, height = upscaled_size(width, height, min_side)
    raw = height * (3 * width + 1)
    return raw + raw // 1000 + 1024


def encode_png(pixels: np.ndarray, min_side: int = 1) -> bytes:
    """One uint8 [H, W, 3] image as PNG bytes (fast compression), upscaled to ``min_side``."""
    buffer = io.BytesIO()
    upscaled(Image.fromarray(pixels, "RGB"), min_side).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def encode_copies(images: torch.Tensor, min_side: int = 1) -> list[bytes]:
    """[B, 3, H, W] floats in [0, 1] to B PNGs, quantised and upscaled to ``min_side``."""
    return [encode_png(pixels, min_side) for pixels in quantise(images)]
