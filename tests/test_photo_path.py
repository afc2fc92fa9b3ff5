"""The offline photo path (#21 item 2): ``imagenet-mobilenetv2`` (the third-party MobileNetV2 in
the shared data) by name, and the photo denoiser picked for it when none is named."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from click.testing import CliRunner

from denoisers.registry import ModelLoadError, architectures, load_classifier
from service.api.app import create_app
from service.cli.main import cli
from service.config import Settings, shared_dir
from service.core.errors import NoDenoiserForSigma
from service.execution.pool import ModelPool

SAMPLES = shared_dir() / "data/imagenet-samples"
# Photos MobileNetV2 gets right on the clean image (it is right on 88.8% of the 1000 samples);
# smoothed at sigma 0.25 the schooner comes out "pirate, pirate ship": most, not all, must pass.
PHOTOS = ("n01440764_tench", "n02504458_African_elephant", "n04147183_schooner")


def test_listed_with_the_reason_when_the_shared_data_is_absent(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DSMOOTH_SHARED_DIR", str(tmp_path))
    reason = architectures()["imagenet-mobilenetv2"].unavailable()
    assert reason is not None and "DSMOOTH_SHARED_DIR" in reason and str(tmp_path) in reason
    line = next(
        line
        for line in CliRunner().invoke(cli, ["models"]).output.splitlines()
        if "imagenet-mobilenetv2" in line
    )
    assert "ready" not in line and "DSMOOTH_SHARED_DIR" in line
    with pytest.raises(ModelLoadError, match="DSMOOTH_SHARED_DIR"):
        load_classifier("imagenet-mobilenetv2")


def _expected_label(wnid: str) -> str:
    """The model's name for ``wnid``: its labels file, shifted by the "background" output."""
    index = json.loads((SAMPLES / "imagenet_class_index.json").read_text())
    position = next(int(i) for i, (w, _) in index.items() if w == wnid)
    model = load_classifier("imagenet-mobilenetv2")
    return model.classes[position + 1]


@pytest.mark.shared
@pytest.mark.slow
def test_one_command_certifies_sample_photos_offline() -> None:
    if not (SAMPLES / "images").is_dir() or architectures()["imagenet-mobilenetv2"].unavailable():
        pytest.skip(f"{shared_dir()}: the shared MobileNetV2 and sample photos are absent")
    assert architectures()["imagenet-mobilenetv2"].unavailable() is None
    right = 0
    for photo in PHOTOS:
        args = [
            "certify", str(SAMPLES / "images" / f"{photo}.JPEG"),
            "--classifier", "imagenet-mobilenetv2", "--sigma", "0.25", "--n", "100",
            "--json", "--no-progress",
        ]  # fmt: skip
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output
        certificate = json.loads(result.output[result.output.index("{") :])
        # No denoiser named: the photo denoiser for sigma 0.25, not the CIFAR-10 default.
        assert certificate["denoiser"]["name"] == "unet-imagenet-s0.25-mse"
        assert certificate["classifier"]["name"] == "imagenet-mobilenetv2"
        right += certificate["label"] == _expected_label(photo.split("_", 1)[0])
    assert right >= len(PHOTOS) - 1, f"{right} of {len(PHOTOS)} photos certified with their label"


def _mobilenet_here() -> None:
    if architectures()["imagenet-mobilenetv2"].unavailable():
        pytest.skip(f"{shared_dir()}: the shared MobileNetV2 (or its runtime) is absent")


def test_served_by_name_only_where_the_file_is(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DSMOOTH_SHARED_DIR", str(tmp_path))
    assert "imagenet-mobilenetv2" not in ModelPool(Settings()).names("classifier")


@pytest.mark.shared
def test_the_photo_denoiser_by_default_for_an_imagenet_classifier() -> None:
    _mobilenet_here()
    pool = ModelPool(Settings())
    assert "imagenet-mobilenetv2" in pool.names("classifier")
    assert pool.denoiser_for(None, 0.25, "imagenet-mobilenetv2") == "unet-imagenet-s0.25-mse"
    assert pool.denoiser_for(None, 0.12, "imagenet-mobilenetv2") == "unet-imagenet-s0.12-mse"
    assert pool.denoiser_for(None, 0.5, "imagenet-mobilenetv2") == "unet-imagenet-s0.5-mse"
    assert pool.denoiser_for(None, 0.25, "cifar10-resnet20") == "unet-cifar10-s0.25-mse"
    assert pool.denoiser_for("none", 0.25, "imagenet-mobilenetv2") == "none"  # named: as named
    with pytest.raises(NoDenoiserForSigma):
        pool.denoiser_for(None, 1.0, "imagenet-mobilenetv2")  # no photo denoiser for 1.0
    # An operator's own default denoiser stays the default for every classifier.
    mine = ModelPool(Settings(denoiser="none"))
    assert mine.denoiser_for(None, 0.25, "imagenet-mobilenetv2") == "none"


@pytest.mark.shared
@pytest.mark.anyio
async def test_the_api_lists_it() -> None:
    _mobilenet_here()
    app = create_app(Settings())
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://asgi") as client:
            listed = {c["name"]: c for c in (await client.get("/v1/classifiers")).json()}
    entry = listed["imagenet-mobilenetv2"]
    assert entry["input_size"] == 224 and entry["version"].startswith("sha256:")
    assert entry["kind"] == "local" and entry["default"] is False
