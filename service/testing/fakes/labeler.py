"""Labels for the fakes: a real ImageNet MobileNetV2 when ../shared has it, else a deterministic
function of the pixels (so that noise and denoising really change the votes either way)."""

from __future__ import annotations

import hashlib
import io
import json
import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image

from service.config import shared_dir

SHARED = shared_dir()
MOBILENET = SHARED / "models/third-party/imagenet-mobilenet/mobilenet_v2_1.0_224_quant.tflite"
CLASS_INDEX = SHARED / "data/imagenet-samples/imagenet_class_index.json"


@dataclass(frozen=True)
class Guess:
    ident: str  # a stable id: the WordNet id for ImageNet classes
    name: str
    score: float  # 0..1


class PixelLabeler:
    """Six colour classes from the mean colour: deterministic, cheap, noise-sensitive."""

    NAMES = ("red thing", "green thing", "blue thing", "dark thing", "bright thing", "grey thing")

    def top(self, image: bytes, k: int = 5) -> list[Guess]:
        pixels = np.asarray(Image.open(io.BytesIO(image)).convert("RGB"), dtype=np.float64) / 255
        mean = pixels.reshape(-1, 3).mean(axis=0)
        spread = mean.max() - mean.min()
        scores = np.array([*(mean - mean.mean() + 0.5), 1 - mean.mean(), mean.mean(), 1 - spread])
        order = np.argsort(-scores, kind="stable")[:k]
        return [Guess(f"c{i}", self.NAMES[i], float(np.clip(scores[i], 0, 1))) for i in order]


class BytesLabeler:
    """Labels from a hash of the image bytes: nearly free, for rate benchmarks where the fake's
    own CPU must not be the bottleneck."""

    def top(self, image: bytes, k: int = 5) -> list[Guess]:
        digest = hashlib.sha256(image).digest()
        return [Guess(f"h{digest[i] % 20}", f"hash class {digest[i] % 20}", 0.9 - 0.1 * i)
                for i in range(min(k, 5))]  # fmt: skip


class MobileNetLabeler:
    """The quantised MobileNetV2 (1001 outputs, index 0 = background) through ai-edge-litert."""

    def __init__(self, model: Path, class_index: Path) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=str(model), num_threads=1)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        index = json.loads(class_index.read_text())
        self.classes = [tuple(index[str(i)]) for i in range(1000)]
        self.lock = threading.Lock()  # an interpreter is not thread-safe

    def top(self, image: bytes, k: int = 5) -> list[Guess]:
        rgb = (
            Image.open(io.BytesIO(image))
            .convert("RGB")
            .resize((224, 224), Image.Resampling.BILINEAR)
        )
        batch = np.asarray(rgb, dtype=np.uint8)[None]
        with self.lock:
            self.interpreter.set_tensor(self.input["index"], batch)
            self.interpreter.invoke()
            raw = self.interpreter.get_tensor(self.output["index"])[0].astype(np.float64)
        scale, zero = self.output["quantization"]
        scores = (raw - zero) * scale if scale else raw
        order = np.argsort(-scores[1:], kind="stable")[:k]  # drop "background"
        return [
            Guess(self.classes[i][0], self.classes[i][1].replace("_", " "), float(scores[i + 1]))
            for i in order
        ]


@cache
def default_labeler() -> PixelLabeler | MobileNetLabeler:
    if MOBILENET.exists() and CLASS_INDEX.exists():
        try:
            return MobileNetLabeler(MOBILENET, CLASS_INDEX)
        except ImportError:
            pass
    return PixelLabeler()
