"""Classifiers brought as files: ONNX (onnxruntime), TorchScript and TFLite (ai-edge-litert).

Each becomes an ``nn.Module`` that takes what every classifier here takes — [0, 1] RGB images,
NCHW — and returns logits [B, K]: the model card's preprocessing (channel order, pixel range,
mean/std, layout) runs first, inside the module, so that the smoothing noise stays in the pixel
space of the image (statistical rule 1). ONNX and TFLite models run on the CPU through their
runtimes (numpy in, numpy out) whatever device the pipeline uses; TorchScript runs where the
pipeline puts it.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from denoisers.cards import CardError, ModelCard

__all__ = ["FORMATS", "ExternalModel", "Preprocess", "RuntimeMissing", "load_external"]

Format = Literal["onnx", "torchscript", "tflite"]
FORMATS: dict[str, str] = {
    "onnx": "ONNX model through onnxruntime (extra: onnx)",
    "torchscript": "TorchScript module (torch.jit.save)",
    "tflite": "TensorFlow Lite model through ai-edge-litert (extra: tflite)",
}
_EXTRAS = {"onnx": ("onnxruntime", "onnx"), "tflite": ("ai-edge-litert", "tflite")}


class RuntimeMissing(ImportError):
    """The runtime of a model format is not installed."""

    def __init__(self, fmt: str) -> None:
        package, extra = _EXTRAS[fmt]
        super().__init__(f"{fmt} models need {package}: pip install 'denoised-smoothing[{extra}]'")


class Preprocess(nn.Module):
    """[0, 1] RGB NCHW -> the model's input as its card describes it (float32)."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(
        self,
        channel_order: str = "rgb",
        pixel_range: float = 1.0,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        layout: str = "nchw",
    ) -> None:
        super().__init__()
        self.bgr, self.nhwc = channel_order == "bgr", layout == "nhwc"
        self.pixel_range = pixel_range
        self.register_buffer("mean", torch.tensor(mean or (0.0, 0.0, 0.0)).view(1, 3, 1, 1),
                             persistent=False)  # fmt: skip
        self.register_buffer("std", torch.tensor(std or (1.0, 1.0, 1.0)).view(1, 3, 1, 1),
                             persistent=False)  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        if self.bgr:
            x = x.flip(1)
        x = (x * self.pixel_range - self.mean) / self.std
        return x.permute(0, 2, 3, 1) if self.nhwc else x


@dataclass(frozen=True, slots=True)
class ExternalModel:
    """A loaded model file: the module and what the registry records about it."""

    module: nn.Module
    classes: tuple[str, ...]
    input_size: int | None
    details: dict[str, Any]


@dataclass(frozen=True, slots=True)
class _Input:
    """What a runtime says about the model's first input."""

    shape: tuple[int | None, ...]  # None: a dynamic dimension
    dtype: np.dtype[Any]
    quantization: tuple[float, int] | None = None  # (scale, zero point) of an integer input


class _NumpyRuntime(nn.Module):
    """A model run by a runtime outside torch, on the CPU, a batch (or an image) at a time."""

    def __init__(self, preprocess: Preprocess, model_input: _Input, normalised: bool) -> None:
        super().__init__()
        self.preprocess, self.model_input, self.normalised = preprocess, model_input, normalised
        self.lock = threading.Lock()  # runtimes' interpreters are not thread-safe

    def run(self, batch: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    @torch.compiler.disable
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            values = self.preprocess(x.detach().to("cpu")).contiguous().numpy()
            batch = _to_input(values, self.model_input, self.normalised)
            with self.lock:
                if self.model_input.shape[0] is None or batch.shape[0] == 1:
                    logits = self.run(batch)
                else:  # a fixed batch of one: one image at a time
                    logits = np.concatenate([self.run(batch[i : i + 1]) for i in range(len(batch))])
        out = torch.from_numpy(np.asarray(logits, dtype=np.float32).reshape(len(values), -1))
        return out.to(x.device)


def _to_input(values: np.ndarray, model_input: _Input, normalised: bool) -> np.ndarray:
    """Card-preprocessed float values to the input tensor's dtype: integer inputs are quantised
    with their (scale, zero point) when the card normalises, else take the values as they are
    (pixel values 0-255) rounded and clipped."""
    dtype = model_input.dtype
    if np.issubdtype(dtype, np.floating):
        return values.astype(dtype, copy=False)
    if normalised and model_input.quantization is not None:
        scale, zero = model_input.quantization
        values = values / scale + zero
    info = np.iinfo(dtype)
    return np.clip(np.rint(values), info.min, info.max).astype(dtype)


class OnnxClassifier(_NumpyRuntime):
    def __init__(self, path: Path, preprocess: Preprocess, model_input: _Input, normalised: bool,
                 session: Any) -> None:  # fmt: skip
        super().__init__(preprocess, model_input, normalised)
        self.path, self.session = path, session
        self.input_name = session.get_inputs()[0].name

    def run(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self.session.run(None, {self.input_name: batch})[0])


class TFLiteClassifier(_NumpyRuntime):
    def __init__(self, path: Path, preprocess: Preprocess, model_input: _Input, normalised: bool,
                 interpreter: Any) -> None:  # fmt: skip
        super().__init__(preprocess, model_input, normalised)
        self.path, self.interpreter = path, interpreter
        self.input_index = interpreter.get_input_details()[0]["index"]
        output = interpreter.get_output_details()[0]
        self.output_index = output["index"]
        scale, zero = output.get("quantization", (0.0, 0))
        self.output_quantization = (float(scale), int(zero)) if scale else None

    def run(self, batch: np.ndarray) -> np.ndarray:
        self.interpreter.set_tensor(self.input_index, batch)
        self.interpreter.invoke()
        raw = self.interpreter.get_tensor(self.output_index).astype(np.float32)
        if self.output_quantization is not None:
            scale, zero = self.output_quantization
            raw = (raw - zero) * scale
        return raw


class _Scripted(nn.Module):
    """A TorchScript module behind the card's preprocessing."""

    def __init__(self, preprocess: Preprocess, scripted: nn.Module) -> None:
        super().__init__()
        self.preprocess, self.scripted = preprocess, scripted

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.scripted(self.preprocess(x))
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"the TorchScript model returned {type(out).__name__}, not a tensor")
        return out.flatten(1)


_ONNX_TYPES = {
    "tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
    "tensor(uint8)": np.uint8, "tensor(int8)": np.int8,
}  # fmt: skip


def _onnx(path: Path) -> tuple[Any, _Input, tuple[int | None, ...]]:
    try:
        import onnxruntime
    except ImportError as exc:
        raise RuntimeMissing("onnx") from exc
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    first = session.get_inputs()[0]
    if first.type not in _ONNX_TYPES:
        raise CardError(f"the model's input is {first.type}; supported: {', '.join(_ONNX_TYPES)}")
    shape = tuple(d if isinstance(d, int) and d > 0 else None for d in first.shape)
    output = tuple(
        d if isinstance(d, int) and d > 0 else None for d in session.get_outputs()[0].shape
    )
    return session, _Input(shape, np.dtype(_ONNX_TYPES[first.type])), output


def _tflite(path: Path) -> tuple[Any, _Input, tuple[int | None, ...]]:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:  # the older package of the same runtime
            from tflite_runtime.interpreter import Interpreter
        except ImportError as exc:
            raise RuntimeMissing("tflite") from exc
    interpreter = Interpreter(model_path=str(path), num_threads=torch.get_num_threads())
    interpreter.allocate_tensors()
    first = interpreter.get_input_details()[0]
    scale, zero = first.get("quantization", (0.0, 0))
    # One static input shape: a batch of one (the XNNPACK delegate cannot resize most models),
    # so the base class feeds the interpreter image by image.
    signature = first.get("shape_signature", first["shape"])
    shape = (1, *(int(d) if int(d) > 0 else None for d in signature[1:]))
    quantization = (float(scale), int(zero)) if scale else None
    model_input = _Input(shape, np.dtype(first["dtype"]), quantization)
    output = tuple(int(d) for d in interpreter.get_output_details()[0]["shape"])
    return interpreter, model_input, output


def _layout(shape: tuple[int | None, ...], card: ModelCard | None, default: str) -> str:
    if card is not None and card.layout is not None:
        return card.layout
    if len(shape) == 4 and shape[1] == 3 and shape[3] != 3:
        return "nchw"
    if len(shape) == 4 and shape[3] == 3 and shape[1] != 3:
        return "nhwc"
    return default


def _input_size(spatial: tuple[int | None, int | None], card: ModelCard | None) -> int | None:
    """The side copies are resized to: the card's, else the model's static square input."""
    declared = None if card is None else card.input_size
    height, width = spatial
    static = height if height is not None and height == width else None
    if height is not None and width is not None and height != width:
        raise CardError(f"the model's input is {height}x{width}: only square inputs are supported")
    if declared == "any":
        if static is not None:
            raise CardError(f"the card says any input size, but the model takes {static}x{static}")
        return None
    if declared is not None and static is not None and declared != static:
        raise CardError(f"the card says input_size {declared}, the model takes {static}x{static}")
    return declared if declared is not None else static


def _preprocess(card: ModelCard | None, layout: str, integer_input: bool) -> Preprocess:
    pixel_range = 255 if integer_input else 1
    if card is None:
        return Preprocess(layout=layout, pixel_range=pixel_range)
    if card.pixel_range is not None:
        pixel_range = card.pixel_range
    return Preprocess(card.channel_order, pixel_range, card.mean, card.std, layout)


def _normalised(card: ModelCard | None) -> bool:
    return card is not None and (card.mean is not None or card.std is not None)


def load_external(fmt: str, path: Path, card: ModelCard | None) -> ExternalModel:
    """Load a model file of format ``fmt`` (one of :data:`FORMATS`) with its card."""
    if fmt == "torchscript":
        return _load_torchscript(path, card)
    opened, model_input, output = _onnx(path) if fmt == "onnx" else _tflite(path)
    shape = model_input.shape
    if len(shape) != 4:
        raise CardError(f"the model's input has shape {shape}: expected an image batch (4-D)")
    layout = _layout(shape, card, "nhwc" if fmt == "tflite" else "nchw")
    channels, spatial = (shape[1], shape[2:4]) if layout == "nchw" else (shape[3], shape[1:3])
    if channels not in (3, None):
        raise CardError(f"the model takes {channels} channels: only RGB (3) is supported")
    integer = not np.issubdtype(model_input.dtype, np.floating)
    preprocess = _preprocess(card, layout, integer)
    normalised = _normalised(card)
    runtime: _NumpyRuntime
    if fmt == "onnx":
        runtime = OnnxClassifier(path, preprocess, model_input, normalised, opened)
    else:
        runtime = TFLiteClassifier(path, preprocess, model_input, normalised, opened)
    input_size = _input_size((spatial[0], spatial[1]), card)
    count = output[-1] if output and output[-1] is not None and len(output) == 2 else None
    if count is None:
        count = _probe(runtime, input_size)
    details = {"format": fmt, "input_dtype": str(model_input.dtype), "layout": layout}
    return ExternalModel(runtime.eval(), _classes(card, count), input_size, details)


def _load_torchscript(path: Path, card: ModelCard | None) -> ExternalModel:
    with warnings.catch_warnings():  # torch.jit is deprecated in favour of torch.export
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.load(str(path), map_location="cpu")
    layout = "nchw" if card is None or card.layout is None else card.layout
    module = _Scripted(_preprocess(card, layout, False), scripted).eval()
    input_size = _input_size((None, None), card)
    count = _probe(module, input_size)
    details = {"format": "torchscript", "layout": layout}
    return ExternalModel(module, _classes(card, count), input_size, details)


def _probe(module: nn.Module, input_size: int | None) -> int:
    """The number of classes, from one forward pass on a grey image."""
    side = input_size or 32
    with torch.inference_mode():
        out = module(torch.full((1, 3, side, side), 0.5))
    if out.dim() != 2:
        raise CardError(f"the model returned shape {tuple(out.shape)}: expected [batch, classes]")
    return int(out.shape[1])


def _classes(card: ModelCard | None, count: int) -> tuple[str, ...]:
    names = None if card is None else card.classes
    if names is None:
        return tuple(str(i) for i in range(count))
    if len(names) != count:
        raise CardError(f"the card names {len(names)} classes, the model has {count} outputs")
    return names
