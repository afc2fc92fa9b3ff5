"""``dsmooth bench photos`` (#21 item 5): the true-label mapping of the sample photos, the 224 px
crop, the photo denoisers it finds, and one small end-to-end run on two shared photos."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks import photos
from benchmarks.report import RADII
from denoisers.registry import architectures, load_classifier, shipped_checkpoints
from service.config import shared_dir

SAMPLES = shared_dir() / "data/imagenet-samples"


def _class_index(tmp_path: Path) -> Path:
    index = {"0": ["n01440764", "tench"], "386": ["n02504458", "African_elephant"]}
    path = tmp_path / "imagenet_class_index.json"
    path.write_text(json.dumps(index))
    return path


def test_true_labels_follow_the_synset_ids_with_mobilenets_background_offset(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    for name in ("n02504458_African_elephant", "n01440764_tench"):
        Image.new("RGB", (8, 8)).save(folder / f"{name}.JPEG")
    tench, elephant = photos.read_photos(folder, _class_index(tmp_path))  # sorted by name
    assert (elephant.wnid, elephant.index, elephant.name) == ("n02504458", 386, "African_elephant")
    assert photos.true_key(elephant, "local") == "387"  # output 0 is "background"
    assert photos.true_key(elephant, "google") == "/m/n02504458"  # the fake's mid
    assert photos.true_key(tench, "local") == "1"
    Image.new("RGB", (8, 8)).save(folder / "n99999999_unknown.JPEG")
    with pytest.raises(ValueError, match="n99999999"):
        photos.read_photos(folder, _class_index(tmp_path))


def test_the_real_index_and_model_name_the_same_class() -> None:
    if not (SAMPLES / "imagenet_class_index.json").is_file():
        pytest.skip(f"{SAMPLES} is absent: the read-only ../shared data is not on this machine")
    (elephant,) = [
        p
        for p in photos.read_photos(SAMPLES / "images", SAMPLES / "imagenet_class_index.json")
        if p.wnid == "n02504458"
    ]
    assert elephant.index == 386
    if architectures()["imagenet-mobilenetv2"].unavailable():
        pytest.skip("the shared MobileNetV2 (or its runtime) is absent")
    model = load_classifier("imagenet-mobilenetv2")
    assert model.classes[int(photos.true_key(elephant, "local"))].startswith("African elephant")


def test_the_photo_is_centre_cropped_and_resized_to_224(tmp_path: Path) -> None:
    pixels = np.zeros((200, 400, 3), dtype=np.uint8)  # wide: red, green centre square, red
    pixels[:, :100] = pixels[:, 300:] = (255, 0, 0)
    pixels[:, 100:300] = (0, 255, 0)
    Image.fromarray(pixels).save(tmp_path / "wide.png")
    image = photos.load_photo(tmp_path / "wide.png")
    assert image.shape == (3, 224, 224) and image.min() >= 0 and image.max() <= 1
    assert image[1].mean() > 0.99 and image[0].max() < 0.01  # only the green centre is left


def test_the_photo_denoisers_are_found_not_listed() -> None:
    found = photos.photo_denoisers()
    shipped = {name for name in shipped_checkpoints() if name.startswith("unet-imagenet-")}
    assert set(found.values()) == {n for n in shipped if n.endswith("-mse")}
    if "unet-imagenet-s0.25-mse" in shipped:
        assert found[0.25] == "unet-imagenet-s0.25-mse"


@pytest.mark.shared
def test_two_photos_end_to_end_local_and_through_google(tmp_path: Path) -> None:
    if not (SAMPLES / "images").is_dir() or architectures()["imagenet-mobilenetv2"].unavailable():
        pytest.skip(f"{shared_dir()}: the shared MobileNetV2 and sample photos are absent")
    if "unet-imagenet-s0.25-mse" not in shipped_checkpoints():
        pytest.skip("no photo denoiser for sigma 0.25 is shipped")
    out = tmp_path / "photos.json"
    photos.main(
        [
            "--count", "2", "--google-count", "1", "--agreement-count", "2", "--sigma", "0.25",
            "--n", "16", "--google-n", "16", "--n0", "4", "--via", "both", "--out", str(out),
        ]
    )  # fmt: skip
    report = json.loads(out.read_text())
    assert report["benchmark"] == "photos" and report["n0"] == 4
    assert report["provenance"]["git"]["commit"]
    assert {row["via"] for row in report["rows"]} == {"local", "google"}
    assert [(row["via"], row["denoiser"]["name"]) for row in report["rows"]] == [
        ("local", "none"),
        ("local", "unet-imagenet-s0.25-mse"),
        ("google", "none"),
        ("google", "unet-imagenet-s0.25-mse"),
    ]
    for row in report["rows"]:
        assert row["photos"] == (2 if row["via"] == "local" else 1)
        accuracy = [row["certified_accuracy"][str(r)] for r in RADII]
        assert all(0 <= a <= 1 for a in accuracy)
        assert accuracy == sorted(accuracy, reverse=True), row  # non-increasing in r
        # n = 16 cannot certify beyond sigma * Phi^-1(0.001^(1/16)) = 0.25 * 0.38
        assert row["certified_accuracy"]["0.25"] == 0
        assert 0 <= row["agreement"]["rate"] <= 1 and row["agreement"]["photos"] == 2
        sequential = row["sequential"]
        assert 1 <= sequential["queries_median"] <= 16 + 1 and sequential["budget"] == 16
        for result in row["results"]:
            assert result["correct"] == (result["label_key"] == result["truth"])
    # The first photo by name is the tench (ImageNet 0): MobileNetV2 gets it right on the clean
    # photo, so its clean label must be the truth under the background offset, both ways.
    first = {row["via"]: row["results"][0] for row in report["rows"]}
    assert first["local"]["photo"].startswith("n01440764_tench")
    assert first["local"]["truth"] == first["local"]["clean_label_key"] == "1"
    assert first["google"]["truth"] == first["google"]["clean_label_key"] == "/m/n01440764"
    assert {"local", "google"} == set(report["clean_accuracy"])
    # PSNR of the same copies against the clean photo: 20 log10(1 / 0.25) = 12 dB noisy (less
    # where clipping at [0, 1] helps, more never), far higher once denoised.
    psnr = {row["denoiser"]["name"]: row["agreement"]["psnr_db"] for row in report["rows"]}
    assert 11 < psnr["none"] < 15 and psnr["unet-imagenet-s0.25-mse"] > 20
    # --count 0 (agreement and PSNR only) leaves no queries to summarise: the table says "-".
    report["rows"][0]["sequential"] |= {"queries_median": None, "queries_mean": None}
    assert " - " in photos.format_table(report).splitlines()[1]
    markdown = out.with_suffix(".md").read_text()
    assert "| paper | Azure (black-box) | 0.25 | 100 | 100 | - | - | - | - | - | 33 |" in markdown
    assert out.with_suffix(".png").stat().st_size > 10_000
