"""Bring your own model (#21 item 1): ONNX, TorchScript and TFLite files as local classifiers,
described by model cards, served under DSMOOTH_EXTRA_CLASSIFIERS and certified with the file's
digest as their version."""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import torch
from asgi_lifespan import LifespanManager
from click.testing import CliRunner
from torch import nn

from denoisers.cards import card_path_beside
from denoisers.checkpoints import file_version, save_checkpoint
from denoisers.classifiers import CIFAR10_CLASSES, cifar_resnet, torchvision_weights_file
from denoisers.registry import ModelLoadError, load_classifier
from service.api.app import create_app
from service.cli.main import cli
from service.config import Settings, shared_dir
from service.core.signing import verify_certificate
from service.examples import EXAMPLES, example_image
from service.execution.pool import ModelPool

MOBILENET_DIR = shared_dir() / "models/third-party/imagenet-mobilenet"
MOBILENET = MOBILENET_DIR / "mobilenet_v2_1.0_224_quant.tflite"
ELEPHANT = shared_dir() / "data/imagenet-samples/images/n02504458_African_elephant.JPEG"
# Caffe-style preprocessing: BGR, 0-255, mean/std in those units.
MEAN_255 = (103.9, 116.8, 123.7)
STD_255 = (57.4, 57.1, 58.4)


def _reference() -> nn.Module:
    """The shipped CIFAR-10 ResNet-20: a real trained torch model ([0, 1] RGB in)."""
    return load_classifier("cifar10-resnet20").module.eval()


class _CaffeStyle(nn.Module):
    """The reference, taking BGR 0-255 values normalised by MEAN_255/STD_255: what a card must
    undo for the labels to match."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(MEAN_255).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(STD_255).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x * self.std + self.mean).flip(1) / 255)


def _export_onnx(module: nn.Module, path: Path) -> Path:
    with warnings.catch_warnings():  # the TorchScript-based exporter is deprecated
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, (torch.rand(2, 3, 32, 32),), str(path), dynamo=False,
            input_names=["image"], output_names=["logits"],
            dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
        )  # fmt: skip
    return path


def _export_torchscript(module: nn.Module, path: Path) -> Path:
    with warnings.catch_warnings():  # torch.jit is deprecated in favour of torch.export
        warnings.simplefilter("ignore")
        torch.jit.trace(module, torch.rand(2, 3, 32, 32)).save(str(path))
    return path


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference as a plain ONNX file: [0, 1] RGB, no card."""
    return _export_onnx(_reference(), tmp_path_factory.mktemp("onnx") / "resnet20.onnx")


@pytest.fixture(scope="module")
def torchscript_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _export_torchscript(_reference(), tmp_path_factory.mktemp("ts") / "resnet20.pt")


def _noisy_examples(sigma: float = 0.12, copies: int = 64) -> torch.Tensor:
    """Noisy copies of the four bundled example photos at 32 px (fixed seed)."""
    generator = torch.Generator().manual_seed(0)
    images = []
    for name in EXAMPLES:
        pixels = torch.from_numpy(np.array(example_image(name, 32), dtype=np.float32))
        clean = pixels.permute(2, 0, 1) / 255
        noise = torch.randn(copies, 3, 32, 32, generator=generator) * sigma
        images.append(clean + noise)
    return torch.cat(images)


def _labels(spec: str, images: torch.Tensor) -> torch.Tensor:
    """Labels of the whole base classifier (no denoiser) as the pipeline computes them."""
    pool = ModelPool(Settings(classifier=spec, denoiser="none", device="cpu", precision="fp32"))
    return pool.local_sampler(pool.default_classifier, "none").labels(images)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_a_model_file_labels_noisy_copies_as_its_torch_model(
    fmt: str, onnx_file: Path, torchscript_file: Path
) -> None:
    path = onnx_file if fmt == "onnx" else torchscript_file
    images = _noisy_examples()
    expected = _labels("cifar10-resnet20", images)
    assert len(set(expected.tolist())) > 1  # the noise changes some answers: a real comparison
    assert torch.equal(_labels(f"{fmt}:{path}", images), expected)
    model = load_classifier(f"{fmt}:{path}")
    assert model.version == file_version(path)  # the file's SHA-256 digest, no card
    assert model.architecture == fmt and model.input_size in (32, None)
    assert model.classes == tuple(str(i) for i in range(10))


@pytest.mark.slow
def test_a_card_beside_the_file_gives_preprocessing_names_and_domain(tmp_path: Path) -> None:
    path = _export_onnx(_CaffeStyle(_reference()), tmp_path / "caffe.onnx")
    (tmp_path / "names.txt").write_text("\n".join(CIFAR10_CLASSES) + "\n")
    card = {
        "channel_order": "bgr", "pixel_range": 255, "mean": MEAN_255, "std": STD_255,
        "classes": "names.txt", "images": "CIFAR-10 photos, 32x32", "version": "v7",
    }  # fmt: skip
    card_path_beside(path).write_text(json.dumps(card))
    images = _noisy_examples()
    assert torch.equal(_labels(f"onnx:{path}", images), _labels("cifar10-resnet20", images))
    model = load_classifier(f"onnx:{path}")
    assert model.classes == CIFAR10_CLASSES and model.images == "CIFAR-10 photos, 32x32"
    assert model.input_size == 32  # from the model's static input
    digest = file_version(path)
    assert model.version.startswith(digest + "+card:")  # the card is part of what is certified
    # The same card inline, for a copy of the file without a card beside it.
    bare = tmp_path / "bare" / "caffe.onnx"
    bare.parent.mkdir()
    bare.write_bytes(path.read_bytes())
    inline = "&".join(
        ["channel_order=bgr", "pixel_range=255", f"classes={tmp_path / 'names.txt'}",
         "mean=" + ",".join(map(str, MEAN_255)), "std=" + ",".join(map(str, STD_255))]
    )  # fmt: skip
    assert torch.equal(_labels(f"onnx:{bare}?{inline}", images), _labels(f"onnx:{path}", images))
    # The card's preprocessing matters: without it (inline override) the labels change.
    wrong = f"onnx:{path}?channel_order=rgb"
    assert load_classifier(wrong).version != model.version
    assert not torch.equal(_labels(wrong, images), _labels(f"onnx:{path}", images))


def test_inline_cards_override_and_bad_cards_are_refused(onnx_file: Path, tmp_path: Path) -> None:
    names = tmp_path / "names.json"
    names.write_text(json.dumps(list(CIFAR10_CLASSES)))
    model = load_classifier(f"onnx:{onnx_file}?classes={names}&images=tiny photos&version=3")
    assert model.classes == CIFAR10_CLASSES and model.images == "tiny photos"
    assert model.metadata["card"]["version"] == "3"
    card = tmp_path / "elsewhere.json"
    card.write_text(json.dumps({"images": "from a card elsewhere"}))
    assert load_classifier(f"onnx:{onnx_file}?card={card}").images == "from a card elsewhere"
    refused = {
        "input_size=64": "the model takes 32x32",
        "std=0,1,1": "std must be positive",
        "colour=rgb": "colour",
        f"classes={tmp_path / 'missing.txt'}": "cannot read the class names",
    }
    for query, reason in refused.items():
        with pytest.raises(ModelLoadError, match=reason):
            load_classifier(f"onnx:{onnx_file}?{query}")
    three = tmp_path / "three.txt"
    three.write_text("a\nb\nc\n")
    with pytest.raises(ModelLoadError, match="names 3 classes, the model has 10"):
        load_classifier(f"onnx:{onnx_file}?classes={three}")
    with pytest.raises(ModelLoadError, match="not found"):
        load_classifier(f"onnx:{tmp_path / 'absent.onnx'}")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelLoadError, match="cannot load onnx classifier"):
        load_classifier(f"onnx:{tmp_path / 'junk.onnx'}")


def test_a_state_dict_card_names_classes_but_not_preprocessing(tmp_path: Path) -> None:
    path = tmp_path / "r20.safetensors"
    save_checkpoint(path, cifar_resnet(20).state_dict(), {"architecture": "cifar-resnet20"})
    upper = tmp_path / "upper.txt"
    upper.write_text("\n".join(name.upper() for name in CIFAR10_CLASSES))
    model = load_classifier(f"cifar-resnet20:{path}?classes={upper}&images=my CIFAR")
    assert model.classes[0] == "AIRPLANE" and model.images == "my CIFAR"
    assert model.version.startswith(file_version(path) + "+card:")
    assert load_classifier(f"cifar-resnet20:{path}").version == file_version(path)
    with pytest.raises(ModelLoadError, match="fixes them"):
        load_classifier(f"cifar-resnet20:{path}?mean=0.5,0.5,0.5")


async def _client(**overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    values: dict[str, Any] = {"environment": "development", "device": "cpu", "denoiser": "none"}
    app = create_app(Settings(**{**values, **overrides}))
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://asgi") as client:
            yield client


@pytest.mark.anyio
async def test_the_api_serves_and_certifies_a_model_file(
    onnx_file: Path, torchscript_file: Path
) -> None:
    extra = {"mine-onnx": f"onnx:{onnx_file}", "mine-ts": f"torchscript:{torchscript_file}"}
    buffer = io.BytesIO()
    example_image("chelsea", 32).save(buffer, format="PNG")
    image = base64.b64encode(buffer.getvalue()).decode()
    async for client in _client(extra_classifiers=extra, precision="fp32"):
        catalog = {c["name"]: c for c in (await client.get("/v1/classifiers")).json()}
        assert catalog["mine-onnx"]["architecture"] == "onnx"
        assert catalog["mine-onnx"]["version"] == file_version(onnx_file)
        assert catalog["mine-ts"]["architecture"] == "torchscript"
        keys = (await client.get("/v1/signing-keys")).json()
        answers = {}
        for name in ("cifar10-resnet20", *extra):
            body = {"image": image, "classifier": name, "sigma": 0.12, "n0": 20, "n": 100}
            response = await client.post("/v1/certify", json=body)
            assert response.status_code == 200, response.text
            answers[name] = response.json()
        for name, path in (("mine-onnx", onnx_file), ("mine-ts", torchscript_file)):
            certificate = answers[name]
            assert certificate["classifier"] == {"name": name, "version": file_version(path)}
            assert verify_certificate(certificate, keys) == []
            # The same model: the same candidate class (a file names it by index).
            assert certificate["label_key"] == answers["cifar10-resnet20"]["label_key"]
            assert certificate["candidate"] == certificate["label_key"]


def _tflite_runtime() -> str | None:
    for module in ("ai_edge_litert", "tflite_runtime"):
        if importlib.util.find_spec(module) is not None:
            return module
    return None


@pytest.mark.shared
@pytest.mark.anyio
async def test_the_tflite_mobilenet_labels_a_photo(tmp_path: Path) -> None:
    if not MOBILENET.exists() or not ELEPHANT.exists():
        pytest.skip(f"{MOBILENET} or {ELEPHANT} is absent (../shared)")
    if _tflite_runtime() is None:
        pytest.skip("no TFLite runtime: pip install 'denoised-smoothing[tflite]'")
    labels = MOBILENET_DIR / "imagenet_labels.txt"
    spec = f"tflite:{MOBILENET}?classes={labels}&images=ImageNet photos, 224x224"
    image = base64.b64encode(ELEPHANT.read_bytes()).decode()
    async for client in _client(extra_classifiers={"mobilenet": spec}):
        catalog = {c["name"]: c for c in (await client.get("/v1/classifiers")).json()}
        assert catalog["mobilenet"]["input_size"] == 224
        assert catalog["mobilenet"]["classes"] == 1001  # index 0 is "background"
        assert catalog["mobilenet"]["version"].startswith(file_version(MOBILENET) + "+card:")
        # Without a denoiser the quantised MobileNet keeps the label up to sigma ~0.1.
        body = {"image": image, "classifier": "mobilenet", "sigma": 0.05, "candidate": "clean",
                "n": 30}  # fmt: skip
        response = await client.post("/v1/certify", json=body)
        assert response.status_code == 200, response.text
        certificate = response.json()
    assert certificate["candidate"] == "African elephant, Loxodonta africana"  # the clean label
    assert certificate["label"] == certificate["candidate"] and certificate["radius"] > 0
    assert certificate["warnings"] == []  # a 500x375 photo is what the model was made for
    assert certificate["classifier"]["version"] == catalog["mobilenet"]["version"]


def _models() -> dict[str, str]:
    """``dsmooth models``, line by model name."""
    output = CliRunner().invoke(cli, ["models"]).output
    return {line.split()[1]: line for line in output.splitlines()}


def test_models_says_ready_only_for_what_loads_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty torch hub cache
    lines = _models()
    assert "needs :WEIGHTS" in lines["resnet18"] and "not cached" in lines["resnet18"]
    assert "ready" in lines["none"] and "needs :PATH" in lines["onnx"]
    cached = torchvision_weights_file(18)
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"")  # the control: once the file is cached, it is ready
    lines = _models()
    assert " ready " in lines["resnet18"] and "needs" not in lines["resnet18"]
