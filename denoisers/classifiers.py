"""Local classifiers: CIFAR-10 ResNets (He et al. 2016, option-A shortcuts) and torchvision ResNets.

Every classifier here takes [0, 1] RGB images: mean/std normalisation is its first layer, so that
the smoothing noise lives in pixel space (statistical rule 1 — docs/statistics.md).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import cache, partial
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from denoisers.cards import ModelCard, read_class_names
from denoisers.registry import State, register_architecture, with_state

__all__ = [
    "CIFAR10_CLASSES",
    "CIFAR10_IMAGES",
    "CIFAR_MEAN",
    "CIFAR_STD",
    "IMAGENET_IMAGES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "CifarResNet",
    "Normalize",
    "cifar_resnet",
    "torchvision_resnet",
    "torchvision_weights_file",
]

CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
# The third-party CIFAR ResNets were trained with the ImageNet statistics; ours follow suit so the
# models are interchangeable.
CIFAR_MEAN = IMAGENET_MEAN = (0.485, 0.456, 0.406)
CIFAR_STD = IMAGENET_STD = (0.229, 0.224, 0.225)
# The domains the classifiers were made for (what a certificate's warnings compare images with).
CIFAR10_IMAGES = "CIFAR-10 photos, 32x32 (10 classes)"
IMAGENET_IMAGES = "ImageNet photos, about 224x224 (1000 classes)"


class Normalize(nn.Module):
    """(x - mean) / std per channel, as a layer."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class _BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        # Option A: parameter-free shortcut that subsamples and zero-pads the channels.
        self.pad = (planes - in_planes) // 2 if stride != 1 or in_planes != planes else -1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.pad < 0 else F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))
        return F.relu(out + shortcut)


class CifarResNet(nn.Module):
    """ResNet-(6k+2) for 32x32 images: 3 stages of 16/32/64 channels, global pool, linear."""

    def __init__(self, depth: int, num_classes: int = 10) -> None:
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6k + 2 (got {depth})")
        blocks = (depth - 2) // 6
        self.normalize = Normalize(CIFAR_MEAN, CIFAR_STD)
        self.conv1 = nn.Conv2d(3, 16, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = self._stage(16, 16, blocks, stride=1)
        self.layer2 = self._stage(16, 32, blocks, stride=2)
        self.layer3 = self._stage(32, 64, blocks, stride=2)
        self.linear = nn.Linear(64, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d | nn.Linear):
                nn.init.kaiming_normal_(module.weight)

    @staticmethod
    def _stage(in_planes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
        layers = [_BasicBlock(in_planes, planes, stride)]
        layers += [_BasicBlock(planes, planes, 1) for _ in range(blocks - 1)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(self.normalize(x))))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


def cifar_resnet(depth: int) -> CifarResNet:
    return CifarResNet(depth)


def torchvision_resnet(depth: int, state: dict[str, torch.Tensor] | None = None) -> nn.Module:
    """A torchvision ImageNet ResNet behind a normalisation layer.

    ``state`` is a torchvision ResNet state dict; without it the torchvision ImageNet weights are
    used (downloaded into the torch hub cache when the internet is reachable).
    """
    from torchvision import models

    builders = {18: models.resnet18, 34: models.resnet34, 50: models.resnet50}
    if depth not in builders:
        raise ValueError(f"torchvision ResNet depth must be one of {sorted(builders)}")
    if state is None:
        try:
            model = builders[depth](weights=_torchvision_weights(depth))
        except (OSError, RuntimeError) as exc:  # no internet: URLError is an OSError
            raise RuntimeError(
                f"the torchvision weights of resnet{depth} are not in the torch hub cache "
                f"({torchvision_weights_file(depth)}) and could not be downloaded ({exc}); "
                f"give a file instead: resnet{depth}:PATH.pth"
            ) from exc
    else:
        model = builders[depth](weights=None)
        model.load_state_dict(state)
    return nn.Sequential(Normalize(IMAGENET_MEAN, IMAGENET_STD), model)


def _torchvision_weights(depth: int) -> Any:
    from torchvision import models

    return {
        18: models.ResNet18_Weights.IMAGENET1K_V1,
        34: models.ResNet34_Weights.IMAGENET1K_V1,
        50: models.ResNet50_Weights.IMAGENET1K_V2,
    }[depth]


def torchvision_weights_file(depth: int) -> Path:
    """Where torchvision keeps (or would download) the ImageNet weights of ResNet-``depth``."""
    url = _torchvision_weights(depth).url
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]


def _weights_missing(depth: int) -> str | None:
    """Why ``resnetN`` without a file cannot be loaded offline (None: its weights are cached)."""
    path = torchvision_weights_file(depth)
    if path.is_file():
        return None
    return f"torchvision weights not cached ({path}): downloads them, or give resnet{depth}:PATH"


def _cifar_resnet(depth: int, state: State | None) -> nn.Module:
    return with_state(cifar_resnet(depth), state)


@cache
def _imagenet_classes() -> tuple[str, ...]:
    from torchvision.models import ResNet50_Weights

    return tuple(ResNet50_Weights.IMAGENET1K_V2.meta["categories"])


for _depth in (20, 32, 44, 56, 110):
    register_architecture(
        f"cifar-resnet{_depth}",
        "classifier",
        needs_weights=True,
        description=f"CIFAR-10 ResNet-{_depth} (option-A shortcuts), 32x32 input",
        classes=CIFAR10_CLASSES,
        input_size=32,
        images=CIFAR10_IMAGES,
    )(partial(_cifar_resnet, _depth))

for _depth in (18, 34, 50):
    register_architecture(
        f"resnet{_depth}",
        "classifier",
        needs_weights=False,
        description=f"torchvision ImageNet ResNet-{_depth}, 224x224 input",
        classes=_imagenet_classes,
        input_size=224,
        images=IMAGENET_IMAGES,
        unavailable=partial(_weights_missing, _depth),
    )(partial(torchvision_resnet, _depth))


# A real ImageNet classifier that works offline: the third-party MobileNetV2 (TFLite, uint8 input)
# in the shared data beside the project. It cannot ship with the package, so the name resolves to
# the file there; its card is written here (the shared directory is read-only).
MOBILENET_FILE = Path("models/third-party/imagenet-mobilenet/mobilenet_v2_1.0_224_quant.tflite")


def shared_dir() -> Path:
    """The read-only data beside the project: ``$DSMOOTH_SHARED_DIR``, else ``../shared``
    (the rule of ``service.config.shared_dir``, which this layer cannot import)."""
    default = Path(__file__).resolve().parents[2] / "shared"
    return Path(os.environ.get("DSMOOTH_SHARED_DIR") or default)


def _mobilenet_missing() -> str | None:
    """Why ``imagenet-mobilenetv2`` cannot be loaded here (None: it can)."""
    path = shared_dir() / MOBILENET_FILE
    if not path.is_file():
        return (
            f"{path} not found: it is in the project's shared data; set DSMOOTH_SHARED_DIR to "
            f"that folder (default ../shared), or give the file: tflite:PATH"
        )
    if find_spec("ai_edge_litert") is None and find_spec("tflite_runtime") is None:
        return "TFLite runtime missing: pip install 'denoised-smoothing[tflite]'"
    return None


def _mobilenet_file() -> tuple[str, Path, ModelCard]:
    """The MobileNetV2 file and its card: 224x224 uint8 RGB (pixel values 0-255, quantised by
    the model itself), 1001 outputs whose first is "background", names from its labels file."""
    path = shared_dir() / MOBILENET_FILE
    labels = read_class_names(path.with_name("imagenet_labels.txt"))
    seen: dict[str, int] = {}
    names: list[str] = []
    for name in labels:  # "crane" is both a bird and a machine: the second keeps its index
        seen[name] = seen.get(name, 0) + 1
        names.append(name if seen[name] == 1 else f"{name} ({len(names)})")
    card = ModelCard(
        input_size=224,
        channel_order="rgb",
        layout="nhwc",
        pixel_range=255,
        classes=tuple(names),
        images=IMAGENET_IMAGES,
        version="mobilenet_v2_1.0_224_quant",
    )
    return "tflite", path, card


def _no_build(state: State | None) -> nn.Module:
    raise RuntimeError("imagenet-mobilenetv2 is a model file: load it by name")


register_architecture(
    "imagenet-mobilenetv2",
    "classifier",
    needs_weights=False,
    description="ImageNet MobileNetV2 (TFLite, 224x224) from the shared data (DSMOOTH_SHARED_DIR)",
    input_size=224,
    images=IMAGENET_IMAGES,
    unavailable=_mobilenet_missing,
    file=_mobilenet_file,
)(_no_build)
