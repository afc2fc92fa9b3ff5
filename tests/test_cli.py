import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from scipy.stats import beta, norm

from denoisers.checkpoints import save_checkpoint
from denoisers.classifiers import CIFAR10_CLASSES, cifar_resnet

pytestmark = [pytest.mark.subprocess, pytest.mark.slow]

DSMOOTH = str(Path(sys.executable).with_name("dsmooth"))


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([DSMOOTH, *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def cifar_png(tmp_path_factory, cifar_test) -> tuple[Path, int]:
    images, labels = cifar_test
    path = tmp_path_factory.mktemp("img") / "test0.png"
    pixels = (images[0] * 255).round().byte().permute(1, 2, 0).numpy()
    Image.fromarray(pixels).save(path)
    return path, int(labels[0])


@pytest.fixture(scope="module")
def small_classifier(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("weights") / "resnet20.safetensors"
    save_checkpoint(path, cifar_resnet(20).state_dict(), {"architecture": "cifar-resnet20"})
    return f"cifar-resnet20:{path}"


@pytest.fixture(scope="module")
def example_png(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("example") / "cat.png"
    result = _run("example", "--out", str(path))
    assert result.returncode == 0, result.stderr
    return path


@pytest.mark.shared
def test_certifies_a_cifar_test_image_end_to_end(cifar_png, resnet56_path) -> None:
    path, _ = cifar_png
    result = _run(
        "certify", str(path), "--classifier", f"cifar-resnet56:{resnet56_path}",
        "--denoiser", "none", "--sigma", "0.12", "--n0", "100", "--n", "1000", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    certificate = json.loads(result.stdout)
    counts = {c["label"]: c["count"] for c in certificate["top_counts"]}
    n_a = counts.get(certificate["candidate"], 0)
    assert certificate["p_lower"] == pytest.approx(beta.ppf(0.001, n_a, 1000 - n_a + 1))
    if not certificate["abstained"]:
        assert certificate["label"] == certificate["candidate"] in CIFAR10_CLASSES
        assert 0 <= certificate["radius"] <= 0.12 * norm.ppf(certificate["p_lower"])
    assert certificate["n0"] == 100 and certificate["n"] == 1000
    assert sum(c["count"] for c in certificate["top_counts"]) <= 1000
    assert certificate["classifier"]["name"] == "cifar-resnet56"
    assert certificate["queries"]["total"] == 1100


def test_human_output_names_the_result(example_png, small_classifier) -> None:
    result = _run(
        "certify", str(example_png), "--classifier", small_classifier,
        "--n0", "20", "--n", "100", "--no-progress",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (
        result.stdout.startswith("result ") and "sigma 0.25, n0 20 (noisy), n 100" in result.stdout
    )


def test_predict_prints_a_prediction(example_png, small_classifier) -> None:
    result = _run("predict", str(example_png), "--classifier", small_classifier, "--n", "100",
                  "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert {"p_value", "abstained", "label"} <= json.loads(result.stdout).keys()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["certify", "missing.png"], "cannot read missing.png"),
        (["certify", "{example}", "--classifier", "resnet9000"], "unknown classifier 'resnet9000'"),
        (["certify", "{example}", "--denoiser", "dncnn"], "needs weights"),
        (["certify", "{example}", "--n", "0"], "n: Input should be greater than or equal to 1"),
        (["certify", "{example}", "--sigma", "-1"], "sigma: Input should be greater than 0"),
        (["certify", "{example}", "--alpha", "1.5"], "alpha: Input should be less than"),
        (["certify", "{example}", "--n", "ten"], "'ten' is not a valid integer"),
        (["certify", "{example}", "--bogus"], "No such option"),
        (["certify", "{notimage}"], "not a recognised image"),
    ],
)
def test_bad_input_exits_2_with_one_clear_line(
    args: list[str], message: str, example_png: Path, small_classifier: str, tmp_path: Path
) -> None:
    not_image = tmp_path / "notes.txt"
    not_image.write_text("hello")
    filled = [a.format(example=example_png, notimage=not_image) for a in args]
    if "--classifier" not in filled:
        filled += ["--classifier", small_classifier]
    result = _run(*filled)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dsmooth: error: ")
    assert message in lines[0]


def test_example_writes_a_square_png(example_png) -> None:
    with Image.open(example_png) as image:
        assert image.size == (32, 32) and image.mode == "RGB"


def test_models_lists_architectures() -> None:
    result = _run("models")
    assert result.returncode == 0
    for name in ("cifar-resnet56", "dncnn-wide", "unet-wide"):
        assert name in result.stdout


def test_results_do_not_depend_on_the_process(example_png, small_classifier) -> None:
    args = ["certify", str(example_png), "--classifier", small_classifier, "--n0", "20",
            "--n", "200", "--json", "--batch-size", "64"]  # fmt: skip
    first, second = json.loads(_run(*args).stdout), json.loads(_run(*args[:-2]).stdout)
    assert first["top_counts"] == second["top_counts"]
    assert first["image_digest"] == second["image_digest"]


def test_statistics_stay_free_of_torch() -> None:
    code = "import sys, service.core.smoothing; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False"


def test_verify_accepts_a_cli_certificate_and_rejects_a_tampered_one(
    example_png: Path, tmp_path: Path
) -> None:
    certified = _run("certify", str(example_png), "--n", "200", "--n0", "20", "--json")
    assert certified.returncode == 0, certified.stderr
    certificate, keys = tmp_path / "certificate.json", tmp_path / "keys.json"
    certificate.write_text(certified.stdout)
    keys.write_text(_run("signing-keys").stdout)
    good = _run("verify", str(certificate), "--key", str(keys), "--image", str(example_png))
    assert good.returncode == 0 and good.stdout.startswith("valid (signature, arithmetic, image")
    document = json.loads(certified.stdout)
    document["radius"] = document["radius"] + 0.05
    certificate.write_text(json.dumps(document))
    bad = _run("verify", str(certificate), "--key", str(keys))
    assert bad.returncode == 1 and "signature does not match" in bad.stderr
