import io
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from denoisers.checkpoints import read_metadata, read_state, state_digest
from denoisers.registry import load_classifier, load_denoiser
from denoisers.training.classifier import ClassifierTrainingConfig, train_classifier
from denoisers.training.data import ImageSet, PhotoCrops, augment_cifar, load_image_folder
from denoisers.training.denoiser import (
    DenoiserTrainingConfig,
    TrainingData,
    lineage,
    train_denoiser,
)
from denoisers.training.objectives import mse_loss, stab_loss

DSMOOTH = str(Path(sys.executable).with_name("dsmooth"))


def _image_set(count: int, seed: int = 0) -> ImageSet:
    """Smooth random images (low-frequency colour fields) with labels."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(count, 3, 4, 4, generator=g)
    images = F.interpolate(coarse, size=(32, 32), mode="bilinear").mul(255).round().byte()
    return ImageSet(images, torch.randint(0, 10, (count,), generator=g), tuple("abcdefghij"))


def test_augmentation_crops_a_padded_window_and_may_flip() -> None:
    batch = torch.arange(2 * 3 * 32 * 32, dtype=torch.float32).view(2, 3, 32, 32)
    out = augment_cifar(batch, torch.Generator().manual_seed(1))
    padded = F.pad(batch, (4, 4, 4, 4), mode="reflect")
    for i in range(2):
        windows = [padded[i, :, dy : dy + 32, dx : dx + 32] for dy in range(9) for dx in range(9)]
        assert any(torch.equal(out[i], w) or torch.equal(out[i], w.flip(-1)) for w in windows)


def test_image_folder_tarball_is_extracted_once_and_cached(tmp_path: Path) -> None:
    tarball = tmp_path / "tiny.tar.gz"
    with tarfile.open(tarball, "w:gz") as archive:
        for label in ("cat", "dog"):
            for index in range(3):
                buffer = io.BytesIO()
                Image.new("RGB", (32, 32), (index * 40, 0, 0)).save(buffer, format="PNG")
                info = tarfile.TarInfo(f"train/{label}/{index:04d}.png")
                info.size = len(buffer.getvalue())
                archive.addfile(info, io.BytesIO(buffer.getvalue()))
    first = load_image_folder(tarball, cache_dir=tmp_path / "cache")
    assert first.images.shape == (6, 3, 32, 32) and first.classes == ("cat", "dog")
    assert first.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert (tmp_path / "cache/tiny/train.npz").exists()
    again = load_image_folder(tarball, cache_dir=tmp_path / "cache")
    assert torch.equal(first.images, again.images)


def test_photo_crops_are_square_unit_floats(tmp_path: Path) -> None:
    for index in range(2):
        Image.new("RGB", (300, 200), (index * 100, 50, 0)).save(tmp_path / f"{index}.JPEG")
    crops = PhotoCrops(tmp_path, size=48).sample(5, torch.Generator().manual_seed(0))
    assert crops.shape == (5, 3, 48, 48) and crops.min() >= 0 and crops.max() <= 1


def test_photo_holdout_is_disjoint_from_training_photos(tmp_path: Path) -> None:
    for index in range(5):  # each photo one flat colour: a crop tells which photo it came from
        Image.new("RGB", (80, 64), (index * 50, 0, 0)).save(tmp_path / f"{index}.png")
    rest, held = PhotoCrops(tmp_path, size=32).split(2)
    assert (len(rest), len(held)) == (3, 2)
    seen = {int(c[0, 0, 0] * 255) for c in rest.sample(40, torch.Generator().manual_seed(1))}
    kept = {int(c[0, 0, 0] * 255) for c in held.sample(40, torch.Generator().manual_seed(1))}
    assert len(seen) == 3 and len(kept) == 2 and not seen & kept


@pytest.mark.slow
def test_classifier_training_exports_a_loadable_checkpoint_and_resumes(tmp_path: Path) -> None:
    data = _image_set(64)
    out, run = tmp_path / "c.safetensors", tmp_path / "run"
    config = ClassifierTrainingConfig(depth=20, epochs=2, batch_size=16, bf16=False)
    first = train_classifier(config, data, data.head(16), run, out)
    trained = load_classifier(f"cifar-resnet20:{out}").module.state_dict()
    again = train_classifier(config, data, data.head(16), run, out)  # picks up the finished run
    assert [h["epoch"] for h in again["history"]] == [1, 2]
    assert again["history"] == first["history"]
    loaded = load_classifier(f"cifar-resnet20:{out}")
    assert all(torch.equal(v, loaded.module.state_dict()[k]) for k, v in trained.items())
    assert read_metadata(out)["architecture"] == "cifar-resnet20"


@pytest.mark.slow
def test_mse_training_makes_the_denoiser_better_than_the_noise(tmp_path: Path) -> None:
    data = _image_set(256)
    config = DenoiserTrainingConfig(architecture="unet", sigma=0.25, epochs=4, batch_size=32)
    torch.manual_seed(0)
    metadata = train_denoiser(
        config, TrainingData(data, 32, None), data.head(64), [], tmp_path / "run",
        tmp_path / "d.safetensors",
    )  # fmt: skip
    validation = metadata["validation"]
    assert validation["psnr_denoised"] > validation["psnr_noisy"] + 1
    loaded = load_denoiser(f"unet:{tmp_path / 'd.safetensors'}")
    assert loaded.sigma == 0.25 and loaded.metadata["objective"] == "mse"


@pytest.mark.slow
def test_stab_fine_tuning_records_its_classifiers(tmp_path: Path) -> None:
    data = _image_set(64)
    surrogate = load_classifier_random(tmp_path)
    init = tmp_path / "mse.safetensors"
    mse = DenoiserTrainingConfig(architecture="unet", sigma=0.12, epochs=1, batch_size=32)
    train_denoiser(mse, TrainingData(data, 32, None), data.head(16), [], tmp_path / "a", init)
    stab = DenoiserTrainingConfig(
        architecture="unet", sigma=0.12, objective="mse+stab", init=str(init), epochs=1,
        batch_size=32, lr=1e-4,
    )  # fmt: skip
    metadata = train_denoiser(
        stab, TrainingData(data, 32, None), data.head(16), [surrogate], tmp_path / "b",
        tmp_path / "stab.safetensors",
    )  # fmt: skip
    assert metadata["classifiers"] == [
        {"name": surrogate.name, "version": surrogate.version, "role": "surrogate"}
    ]
    assert {"agreement", "accuracy", "psnr_denoised"} <= metadata["validation"].keys()


def load_classifier_random(tmp_path: Path):
    from denoisers.checkpoints import save_checkpoint
    from denoisers.classifiers import cifar_resnet

    path = tmp_path / "surrogate.safetensors"
    save_checkpoint(path, cifar_resnet(20).state_dict(), {"architecture": "cifar-resnet20"})
    return load_classifier(f"cifar-resnet20:{path}")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"objective": "mse+stab"}, "give --init"),
        ({"objective": "l1"}, "objective must be one of"),
        ({"architecture": "none"}, "not a trainable denoiser"),
        ({"ema": 1.0}, "ema must be a decay"),
    ],
)
def test_impossible_training_configs_are_refused(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DenoiserTrainingConfig(**changes)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--surrogate", "x", "--target", "y"],
         "dsmooth: error: give --surrogate (black-box) or --target (white-box), not both"),
        (["--val-skip", "2", "--val-count", "3"],
         "dsmooth: error: --val-skip 2 + --val-count 3 is more than the 4 images of"),
    ],
    ids=["surrogates-and-target", "skip-past-the-end"],
)  # fmt: skip
@pytest.mark.subprocess
@pytest.mark.slow
def test_train_denoiser_cli_refuses_impossible_options(
    tmp_path: Path, args: list[str], message: str
) -> None:
    npz = tmp_path / "val.npz"
    np.savez(npz, x=np.zeros((4, 32, 32, 3), np.uint8), y=np.zeros(4), classes=np.array(["a"]))
    result = subprocess.run(
        [DSMOOTH, "train-denoiser", "--sigma", "0.25", "--data", str(tmp_path),
         "--validation", str(npz), *args,
         "--run-dir", str(tmp_path / "r"), "--out", str(tmp_path / "o.safetensors")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().startswith(message)


def test_validation_can_skip_the_images_the_benchmarks_certify() -> None:
    data = _image_set(50)
    later = data.head(10, skip=40)
    assert torch.equal(later.images, data.images[40:]) and torch.equal(
        later.labels, data.labels[40:]
    )
    assert torch.equal(data.head(10).images, data.images[:10])  # control: no skip, the first
    assert len(data.head(10, skip=45)) == 5  # as many as there are, as without a skip
    with pytest.raises(ValueError, match="cannot skip 50 of 50"):
        data.head(10, skip=50)


def test_holdout_split_is_disjoint_seeded_and_complete() -> None:
    data = _image_set(50)
    rest, held = data.split(10)
    _, again_held = data.split(10)
    assert len(rest) == 40 and len(held) == 10
    assert torch.equal(held.images, again_held.images)
    ids = {tuple(img.flatten()[:64].tolist()) for img in data.images}
    assert {tuple(i.flatten()[:64].tolist()) for i in rest.images} | {
        tuple(i.flatten()[:64].tolist()) for i in held.images
    } == ids
    with pytest.raises(ValueError, match="cannot hold out"):
        data.split(50)


@pytest.mark.slow
def test_a_plateau_stops_the_run_and_exports_the_best_epoch(tmp_path: Path) -> None:
    data = _image_set(64)
    # A vanishing learning rate cannot move the figure by min_delta: epoch 1 stays the best.
    config = DenoiserTrainingConfig(
        architecture="unet", sigma=0.25, epochs=6, batch_size=32, lr=1e-12, patience=2,
        min_delta=0.5, ema=0.9, command="dsmooth train-denoiser ...",
    )  # fmt: skip
    run, out = tmp_path / "run", tmp_path / "d.safetensors"
    metadata = train_denoiser(config, TrainingData(data, 32, None), data.head(16), [], run, out)
    assert [h["epoch"] for h in metadata["history"]] == [1, 2, 3]
    card = metadata["card"]
    assert card["stopped"] == "plateau" and card["exported_epoch"] == 1
    assert card["images_seen"] == 3 * 64 and card["resume"] == "dsmooth train-denoiser ..."
    assert card["lineage"] == {
        "runs": 1, "wall_seconds": card["wall_seconds"], "images_seen": 3 * 64
    }  # fmt: skip
    assert metadata["validation"]["epoch"] == 1
    # the weights' digest in the version: two runs of one day never share one (nor votes)
    assert metadata["version"].endswith("-" + state_digest(read_state(out)))
    best = load_denoiser(f"unet:{run / 'best.safetensors'}").module.state_dict()
    exported = load_denoiser(f"unet:{out}").module.state_dict()
    assert all(torch.equal(v, exported[k]) for k, v in best.items())
    assert (run / "curve.png").exists()
    assert [h["epoch"] for h in __import__("json").loads((run / "curve.json").read_text())] == [
        1, 2, 3,
    ]  # fmt: skip
    # Resuming a plateaued run trains nothing more.
    again = train_denoiser(config, TrainingData(data, 32, None), data.head(16), [], run, out)
    assert again["history"] == metadata["history"]


def test_the_mixed_objective_adds_weighted_mse_to_stab() -> None:
    torch.manual_seed(0)
    clean = torch.rand(4, 3, 32, 32)
    denoised = (clean + 0.1 * torch.randn_like(clean)).clamp(0, 1)
    classifier = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 10))
    stab = stab_loss(denoised, clean, [classifier])
    mixed = stab_loss(denoised, clean, [classifier], mse_weight=50.0)
    assert torch.isclose(mixed, stab + 50.0 * mse_loss(denoised, clean))
    assert mixed > stab  # the control: a weight changes the loss
    with pytest.raises(ValueError, match="mse_weight"):
        DenoiserTrainingConfig(objective="mse", mse_weight=1.0)


def test_a_checkpoint_counts_the_training_of_the_one_it_started_from() -> None:
    first = {"wall_seconds": 3000.0, "images_seen": 128_000}  # a card from before lineage
    second = {"wall_seconds": 600.0, "images_seen": 12_800}
    assert lineage(None, first) == {"runs": 1, "wall_seconds": 3000.0, "images_seen": 128_000}
    after_two = lineage({"card": first}, second)
    assert after_two == {"runs": 2, "wall_seconds": 3600.0, "images_seen": 140_800}
    third = lineage(
        {"card": {**second, "lineage": after_two}}, {"wall_seconds": 60.0, "images_seen": 1}
    )
    assert third == {"runs": 3, "wall_seconds": 3660.0, "images_seen": 140_801}
    assert lineage({}, second)["runs"] == 1  # a starting checkpoint without a card


def test_a_run_may_start_from_a_torch_pickle(tmp_path: Path) -> None:
    """--init takes the .th/.pt files read_state reads; the card's lineage reads the starting
    checkpoint's metadata at export, and a pickle has none (it raised, after the whole run)."""
    pickle = tmp_path / "start.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, pickle)
    assert read_metadata(pickle) == {}
    assert lineage(read_metadata(pickle), {"wall_seconds": 5.0, "images_seen": 7})["runs"] == 1
