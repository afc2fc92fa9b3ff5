from pathlib import Path

import pytest
import torch

from denoisers.checkpoints import read_metadata, save_checkpoint
from denoisers.classifiers import CifarResNet, cifar_resnet
from denoisers.dncnn import DnCNN
from denoisers.registry import (
    ModelLoadError,
    UnknownModelError,
    _family,
    architectures,
    create_model,
    load_classifier,
    load_denoiser,
    register_architecture,
    shipped_checkpoints,
    shipped_denoiser_for,
)


@pytest.mark.shared
@pytest.mark.slow
def test_third_party_resnet56_scores_at_least_92_percent(resnet56_path: Path, cifar_test) -> None:
    model = load_classifier(f"cifar-resnet56:{resnet56_path}")
    images, labels = cifar_test
    with torch.inference_mode():
        predictions = torch.cat([model.module(batch).argmax(1) for batch in images.split(250)])
    accuracy = (predictions == labels).float().mean().item()
    assert accuracy >= 0.92
    assert model.version.startswith("sha256:") and model.input_size == 32


@pytest.mark.parametrize(("depth", "params"), [(20, 0.27e6), (56, 0.85e6), (110, 1.7e6)])
def test_cifar_resnets_have_the_published_sizes(depth: int, params: float) -> None:
    count = sum(p.numel() for p in cifar_resnet(depth).parameters())
    assert count == pytest.approx(params, rel=0.03)


def test_cifar_resnet_rejects_impossible_depths() -> None:
    with pytest.raises(ValueError, match="6k"):
        CifarResNet(21)


@pytest.mark.slow
def test_untrained_dncnn_is_the_identity() -> None:
    x = torch.rand(2, 3, 16, 16)
    assert torch.equal(DnCNN().eval()(x), x)
    layers = [m for m in DnCNN(depth=17).modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(layers) == 17


@pytest.mark.parametrize(("name", "width"), [("unet", 32), ("unet-wide", 64)])
def test_untrained_unets_are_the_identity_at_their_width(name: str, width: int) -> None:
    model = create_model(name).eval()
    assert model.enc1[0].out_channels == width and model.bottom[0].out_channels == 4 * width
    x = torch.rand(2, 3, 18, 14)  # not a multiple of 4: padded and cropped back
    assert torch.equal(model(x), x)


@pytest.mark.slow
def test_weights_round_trip_through_safetensors_with_metadata(tmp_path: Path) -> None:
    torch.manual_seed(1)
    trained = DnCNN(channels=64)
    torch.nn.init.normal_(trained.body[-1].weight, std=0.01)
    path = tmp_path / "d.safetensors"
    save_checkpoint(path, trained.state_dict(), {"architecture": "dncnn", "sigma": 0.25})
    loaded = load_denoiser(f"dncnn:{path}")
    x = torch.rand(1, 3, 8, 8)
    assert torch.equal(loaded.module(x), trained.eval()(x))
    assert loaded.sigma == 0.25 and read_metadata(path)["architecture"] == "dncnn"


@pytest.mark.slow
def test_third_party_pickle_format_loads(tmp_path: Path) -> None:
    model = cifar_resnet(20)
    state = {f"module.{k}": v for k, v in model.state_dict().items()}
    path = tmp_path / "resnet20.th"
    torch.save({"best_prec1": 91.7, "state_dict": state}, path)
    loaded = load_classifier(f"cifar-resnet20:{path}")
    x = torch.rand(2, 3, 32, 32)
    assert torch.equal(loaded.module(x), model.eval()(x))


def test_unknown_names_list_the_known_ones() -> None:
    with pytest.raises(UnknownModelError, match="cifar-resnet56"):
        load_classifier("resnet9000")
    with pytest.raises(UnknownModelError, match="unknown denoiser"):
        load_denoiser("cifar-resnet20")


@pytest.mark.slow
def test_missing_or_wrong_weights_give_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="needs weights"):
        load_denoiser("dncnn")
    with pytest.raises(ModelLoadError, match="not found"):
        load_classifier(f"cifar-resnet20:{tmp_path / 'absent.th'}")
    wrong = tmp_path / "wrong.safetensors"
    save_checkpoint(wrong, DnCNN(depth=3).state_dict(), {})
    with pytest.raises(ModelLoadError, match="cannot load"):
        load_denoiser(f"dncnn:{wrong}")


def test_registry_refuses_to_overwrite_a_name_and_is_read_only() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_architecture("dncnn", "denoiser", needs_weights=True, description="x")(
            lambda state: torch.nn.Identity()
        )
    with pytest.raises(TypeError):
        architectures()["x"] = architectures()["none"]  # type: ignore[index]


def test_the_shipped_sibling_for_a_sigma_shares_architecture_objective_and_data() -> None:
    like = "unet-cifar10-s0.25-mse"
    assert shipped_denoiser_for(0.25, like) == like
    assert shipped_denoiser_for(0.12, like) == "unet-cifar10-s0.12-mse"
    # The photo U-Net is also trained for 0.25, but on other data: not a sibling.
    assert shipped_denoiser_for(0.25, "unet-cifar10-s0.12-mse") == like
    assert shipped_denoiser_for(0.3, like) is None
    assert shipped_denoiser_for(0.12, "unet-imagenet-s0.25-mse") == "unet-imagenet-s0.12-mse"
    assert shipped_denoiser_for(0.12, "dncnn:somewhere.safetensors") is None


def test_stab_through_the_target_and_through_surrogates_are_not_siblings() -> None:
    stab = {"architecture": "unet", "objective": "mse+stab", "training": {"data": "cifar10"}}
    whitebox = {**stab, "classifiers": [{"name": "cifar-resnet56", "role": "target"}]}
    blackbox = {**stab, "classifiers": [{"name": "cifar-resnet20", "role": "surrogate"}]}
    assert _family(whitebox) != _family(blackbox)
    assert _family(whitebox) == _family({**whitebox, "sigma": 0.5})


def test_where_the_training_data_lay_does_not_split_a_family() -> None:
    def trained_on(data: str) -> dict[str, object]:
        return {"architecture": "unet", "objective": "mse", "training": {"data": data}}

    shared = trained_on("../shared/data/cifar10/train-jpeg.tar.gz")
    assert _family(shared) == _family(trained_on("/work/shared/data/cifar10/train-jpeg.tar.gz"))
    assert _family(shared) != _family(trained_on("/work/shared/data/imagenet-samples/train"))
    assert _family(shared) != _family(trained_on("../shared/data/cifar100/train-jpeg.tar.gz"))


def test_shipped_black_box_denoisers_never_saw_the_benchmark_target() -> None:
    blackbox = {
        name: read_metadata(path)
        for name, path in shipped_checkpoints().items()
        if "stab-blackbox" in name
    }
    assert blackbox, "no black-box Stab checkpoint is shipped"
    for name, metadata in blackbox.items():
        classifiers = metadata["classifiers"]
        assert classifiers and {c["role"] for c in classifiers} == {"surrogate"}, name
        assert "cifar-resnet56" not in {c["name"] for c in classifiers}, name
