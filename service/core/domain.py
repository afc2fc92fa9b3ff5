"""Honest defaults: what a classifier was made for, and the warnings a result carries when its
image, sigma or denoiser is far from that.

A certificate is valid whatever the image: it bounds the smoothed base classifier, resize and
all. But a 224 px photo shrunk into a 32 px CIFAR-10 model, or a 32 px thumbnail sent to a vendor
API built for photos, certifies a label that may mean little, and a denoiser trained for another
noise level certifies smaller radii than it should. Those results say so in ``warnings``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["ENLARGE", "SHRINK", "STRETCH", "Domain", "image_warnings", "sigma_warnings"]

# How far is far: a copy shrunk 4x or more to the model's side (a 224 px photo into a 32 px
# CIFAR model is 7x; a 500 px photo into a 224 px ImageNet model, 2.2x, is how those are used),
# enlarged 2x or more (a 32 px image into a 224 px model), or squeezed from an aspect ratio of
# 1.5 or more into a square input.
SHRINK = 4.0
ENLARGE = 2.0
STRETCH = 1.5


@dataclass(frozen=True, slots=True)
class Domain:
    """What a classifier declares about the images it was made for."""

    images: str | None  # the kind of images, in words ("CIFAR-10 photos, 32x32 (10 classes)")
    input_size: int | None  # the side every copy is resized to (None: any size, never resized)
    classes: int | None  # number of classes (None: an open vocabulary)
    min_side: int | None = None  # the shortest side its images should have (vendor APIs)

    def describe(self) -> str:
        if self.images:
            return self.images
        return f"{self.input_size}x{self.input_size} images" if self.input_size else "any images"


def image_warnings(classifier: str, domain: Domain, shape: Sequence[int]) -> list[str]:
    """Why an image of ``shape`` [C, H, W] is far from ``classifier``'s domain (none: it is not)."""
    height, width = int(shape[-2]), int(shape[-1])
    size = f"{width}x{height} px"
    made_for = domain.describe()
    found: list[str] = []
    side = domain.input_size
    if side is not None:
        longer, shorter = max(height, width), min(height, width)
        if longer >= SHRINK * side:
            found.append(
                f"the image is {size} but {classifier} classifies {made_for}: every denoised "
                f"copy is shrunk {longer / side:.0f}x to {side}x{side} before it is classified, "
                "so the certificate speaks about a thumbnail and its label may mean little; "
                "choose a classifier made for images of this size"
            )
        elif shorter * ENLARGE <= side:
            found.append(
                f"the image is {size} but {classifier} classifies {made_for}: every denoised "
                f"copy is enlarged {side / shorter:.0f}x to {side}x{side}, far from the images "
                "the model learnt from, so its label may mean little"
            )
        if longer >= STRETCH * shorter:
            found.append(
                f"the {size} image is squeezed into the square {side}x{side} input of "
                f"{classifier} (aspect ratio {longer / shorter:.1f}); crop it to a square first "
                "for a label the model was trained to give"
            )
    if domain.min_side is not None and min(height, width) < domain.min_side:
        found.append(
            f"the image is {size} but {classifier} is made for {made_for}: the copies are "
            "upscaled for it and their labels describe blur more than content; send the photo "
            f"at least {domain.min_side} px on its shorter side"
        )
    return found


def sigma_warnings(
    denoiser: str, trained_for: float | None, sigma: float, better: Sequence[str] = ()
) -> list[str]:
    """A denoiser used at a noise level it was not trained for (none: it was, or it declares
    none). ``better`` names served denoisers trained for ``sigma``."""
    if trained_for is None or abs(trained_for - sigma) < 1e-9:
        return []
    instead = f" (served: {', '.join(better)})" if better else ""
    return [
        f"the denoiser {denoiser} was trained for sigma {trained_for:g}, not {sigma:g}: it "
        "removes this noise worse, so the radius is smaller (or the result abstains more often) "
        f"than with a denoiser trained for sigma {sigma:g}{instead}"
    ]
