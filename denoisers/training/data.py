"""Training and evaluation data, loaded through torchvision and kept in memory as uint8 tensors.

- CIFAR-10 as JPEG class folders (a ``.tar.gz`` is extracted once into a cache folder) through
  ``torchvision.datasets.ImageFolder``, or the official dataset through
  ``torchvision.datasets.CIFAR10`` (``download=True`` where the internet is reachable).
- The pixel-exact first 1000 CIFAR-10 test images (``test-lossless-1000.npz``) for every evaluation.
- Random crops of natural photos (a folder of JPEGs) for a denoiser of full-size images.

Small images are decoded once and cached as ``.npz`` next to the extraction, so an epoch costs no
JPEG decoding; augmentation then runs batched on tensors.
"""

from __future__ import annotations

import copy
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

__all__ = [
    "DEFAULT_CACHE_DIR",
    "ImageSet",
    "PhotoCrops",
    "augment_cifar",
    "load_cifar10_official",
    "load_image_folder",
    "load_lossless_npz",
]

DEFAULT_CACHE_DIR = Path(os.environ.get("DSMOOTH_CACHE_DIR", Path.home() / ".cache" / "dsmooth"))


@dataclass(frozen=True)
class ImageSet:
    """Images as uint8 [N, 3, H, W], integer labels [N] and the class names."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)

    def floats(self, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """Images[start:stop] as float32 in [0, 1]."""
        return self.images[start:stop].float().div_(255)

    def head(self, count: int, skip: int = 0) -> ImageSet:
        """The first ``count`` images (or as many as there are) after the first ``skip``."""
        if skip and skip >= len(self):
            raise ValueError(f"cannot skip {skip} of {len(self)} images")
        rows = slice(skip, skip + count)
        return ImageSet(self.images[rows], self.labels[rows], self.classes)

    def split(self, held_out: int, seed: int = 0) -> tuple[ImageSet, ImageSet]:
        """(the rest, ``held_out`` images) under a seeded permutation: a validation split of
        the training images that training never sees."""
        if not 0 < held_out < len(self):
            raise ValueError(f"cannot hold out {held_out} of {len(self)} images")
        order = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))
        rest, kept = order[:-held_out], order[-held_out:]
        return (
            ImageSet(self.images[rest], self.labels[rest], self.classes),
            ImageSet(self.images[kept], self.labels[kept], self.classes),
        )


def load_lossless_npz(path: Path) -> ImageSet:
    """The ``test-lossless-1000.npz`` format: ``x`` uint8 [N, H, W, 3], ``y`` [N], ``classes``."""
    with np.load(path) as data:
        images = torch.from_numpy(data["x"]).permute(0, 3, 1, 2).contiguous()
        return ImageSet(images, torch.from_numpy(data["y"]).long(), tuple(data["classes"]))


def load_image_folder(source: Path, cache_dir: Path = DEFAULT_CACHE_DIR) -> ImageSet:
    """Class folders of same-size images (or a ``.tar.gz`` of them) through ``ImageFolder``.

    A tarball is extracted once under ``cache_dir``; the decoded tensors are cached beside it.
    """
    from torchvision.datasets import ImageFolder

    root = _extracted(source, cache_dir) if source.is_file() else source
    cached = root.with_name(root.name + ".npz")
    if cached.exists() and cached.stat().st_mtime >= root.stat().st_mtime:
        with np.load(cached) as data:
            return ImageSet(
                torch.from_numpy(data["x"]),
                torch.from_numpy(data["y"]).long(),
                tuple(str(c) for c in data["classes"]),
            )
    folder = ImageFolder(str(root))
    arrays = [
        np.asarray(Image.open(path).convert("RGB"), dtype=np.uint8)
        for path, _ in tqdm(folder.samples, desc=f"decoding {root.name}", unit="img")
    ]
    images = np.stack(arrays).transpose(0, 3, 1, 2)
    labels = np.asarray(folder.targets, dtype=np.int64)
    np.savez(cached, x=images, y=labels, classes=np.asarray(folder.classes))
    return ImageSet(torch.from_numpy(images), torch.from_numpy(labels), tuple(folder.classes))


def load_cifar10_official(root: Path, train: bool, download: bool = False) -> ImageSet:
    """The official CIFAR-10 python batches through ``torchvision.datasets.CIFAR10``."""
    from torchvision.datasets import CIFAR10

    dataset = CIFAR10(str(root), train=train, download=download)
    images = torch.from_numpy(dataset.data).permute(0, 3, 1, 2).contiguous()
    return ImageSet(images, torch.tensor(dataset.targets), tuple(dataset.classes))


def _extracted(tarball: Path, cache_dir: Path) -> Path:
    """Extract ``tarball`` once into ``cache_dir/<stem>/``; returns its single top folder."""
    stem = tarball.name.removesuffix(".tar.gz").removesuffix(".tgz").removesuffix(".tar")
    target = cache_dir / stem
    marker = target / ".extracted"
    if not marker.exists():
        target.mkdir(parents=True, exist_ok=True)
        with tarfile.open(tarball) as archive:
            archive.extractall(target, filter="data")
        marker.touch()
    folders = [p for p in target.iterdir() if p.is_dir()]
    return folders[0] if len(folders) == 1 else target


def augment_cifar(batch: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Standard CIFAR augmentation on a uint8/float batch: 4-pixel padded random crop, h-flip.

    Runs on the batch's device (a GPU-resident training set is augmented there); the random
    numbers come from ``generator``'s device, or the batch's without one."""
    n, _, h, w = batch.shape
    device = batch.device
    rng = generator.device if generator is not None else device
    padded = torch.nn.functional.pad(batch.float(), (4, 4, 4, 4), mode="reflect")
    dy = torch.randint(0, 9, (n,), generator=generator, device=rng).to(device)
    dx = torch.randint(0, 9, (n,), generator=generator, device=rng).to(device)
    rows = (dy[:, None] + torch.arange(h, device=device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=device))[:, None, None, :]
    cropped = padded[
        torch.arange(n, device=device)[:, None, None, None],
        torch.arange(3, device=device)[:, None, None],
        rows,
        cols,
    ]
    flip = (torch.rand(n, generator=generator, device=rng) < 0.5).to(device)
    cropped[flip] = cropped[flip].flip(-1)
    return cropped


class PhotoCrops:
    """Random square crops (with horizontal flips) of a folder of photos, for denoiser training."""

    def __init__(self, folder: Path, size: int = 64, max_side: int = 256) -> None:
        paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in {".jpeg", ".jpg", ".png"})
        if not paths:
            raise ValueError(f"no photos (.jpeg, .jpg, .png) in {folder}")
        self.size = size
        # Photos are shrunk so the short side is max_side: crops then show objects, not texture.
        self.photos = [_shrunk(p, max_side, size) for p in tqdm(paths, desc="loading photos")]

    def __len__(self) -> int:
        return len(self.photos)

    def split(self, held_out: int, seed: int = 0) -> tuple[PhotoCrops, PhotoCrops]:
        """(the rest, ``held_out`` photos) under a seeded permutation: validation crops come
        from photos training never sees, and never from the evaluation photos."""
        if not 0 < held_out < len(self):
            raise ValueError(f"cannot hold out {held_out} of {len(self)} photos")
        order = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed)).tolist()
        rest, kept = copy.copy(self), copy.copy(self)
        rest.photos = [self.photos[i] for i in order[:-held_out]]
        kept.photos = [self.photos[i] for i in order[-held_out:]]
        return rest, kept

    def sample(self, count: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``count`` crops as float32 [count, 3, size, size] in [0, 1]."""
        picks = torch.randint(0, len(self.photos), (count,), generator=generator).tolist()
        crops = []
        for index in picks:
            photo = self.photos[index]
            _, h, w = photo.shape
            top = int(torch.randint(0, h - self.size + 1, (1,), generator=generator))
            left = int(torch.randint(0, w - self.size + 1, (1,), generator=generator))
            crop = photo[:, top : top + self.size, left : left + self.size]
            if torch.rand(1, generator=generator).item() < 0.5:
                crop = crop.flip(-1)
            crops.append(crop)
        return torch.stack(crops).float().div_(255)


def _shrunk(path: Path, max_side: int, min_side: int) -> torch.Tensor:
    """The photo with its short side brought to ``max_side`` if longer (or ``min_side`` if
    shorter: every photo must hold a crop)."""
    with Image.open(path) as photo:
        rgb = photo.convert("RGB")
    short = min(rgb.size)
    scale = max_side / short if short > max_side else max(1.0, min_side / short)
    if scale != 1:
        rgb = rgb.resize(
            (round(rgb.width * scale), round(rgb.height * scale)), Image.Resampling.LANCZOS
        )
    return torch.from_numpy(np.asarray(rgb, dtype=np.uint8).copy()).permute(2, 0, 1)
