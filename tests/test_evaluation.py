"""The certified-accuracy benchmark and the denoiser table, on a few real test images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from service.cli_bench import bench
from service.evaluation import (
    METHODS,
    RADII,
    CertifySettings,
    certified_accuracy,
    denoiser_for,
    denoiser_table,
    format_certified_accuracy,
    run_certified_accuracy,
)
from tests.conftest import LOSSLESS, _need

CLASSIFIER = "cifar10-resnet20"  # shipped, small: the tests' stand-in for the ResNet-56 target


@pytest.fixture(scope="module")
def few_images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 6 lossless test images in the same .npz format."""
    with np.load(_need(LOSSLESS)) as data:
        path = tmp_path_factory.mktemp("data") / "six.npz"
        np.savez(path, x=data["x"][:6], y=data["y"][:6], classes=data["classes"])
    return path


def test_methods_resolve_to_the_shipped_checkpoint_of_each_sigma() -> None:
    assert denoiser_for("none", 0.3) == "none"
    assert denoiser_for("mse", 0.25) == "unet-cifar10-s0.25-mse"
    assert denoiser_for("stab-blackbox", 0.25) == "unet-cifar10-s0.25-stab-blackbox"
    assert denoiser_for("stab-blackbox", 0.5) == "unet-cifar10-s0.5-stab-blackbox"
    assert denoiser_for("stab-blackbox", 0.12) == "unet-cifar10-s0.12-stab-blackbox"
    for sigma in (0.12, 0.25, 0.5):
        expected = f"unet-cifar10-s{sigma:g}-stab-whitebox-resnet56"
        assert denoiser_for("stab-whitebox", sigma) == expected
    assert denoiser_for("mse", 1.0) == "unet-cifar10-s1-mse"
    assert denoiser_for("stab-blackbox", 1.0) == "unet-cifar10-s1-stab-blackbox"
    assert denoiser_for("stab-whitebox", 1.0) is None  # not shipped: no better than MSE there
    assert denoiser_for("mse", 0.3) is None  # nothing trained for 0.3
    assert denoiser_for("unet-cifar10-s0.25-mse", 0.25) == "unet-cifar10-s0.25-mse"
    assert denoiser_for("unet-cifar10-s0.25-mse", 0.5) is None  # trained for another sigma
    assert set(METHODS) == {"none", "mse", "stab-blackbox", "stab-whitebox"}


def test_certified_accuracy_counts_correct_images_at_or_above_the_radius() -> None:
    results = [
        {"correct": True, "radius": 0.5},
        {"correct": True, "radius": 0.25},
        {"correct": False, "radius": 0.9},
        {"correct": True, "radius": 0.0},
    ]
    assert [certified_accuracy(results, r) for r in (0.0, 0.25, 0.5, 0.75)] == [
        0.75, 0.5, 0.25, 0.0,
    ]  # fmt: skip


def test_benchmark_certifies_every_available_row_and_skips_the_rest(few_images: Path) -> None:
    settings = CertifySettings(images=4, n0=10, n=60, precision="fp32")
    report = run_certified_accuracy(CLASSIFIER, ["none", "mse"], [0.25, 0.3], few_images, settings)
    assert [(row["method"], row["sigma"]) for row in report["rows"]] == [
        ("none", 0.25), ("none", 0.3), ("mse", 0.25),
    ]  # fmt: skip
    assert report["skipped"] == [{"row": "mse", "sigma": 0.3, "reason": "no checkpoint"}]
    for row in report["rows"]:
        assert len(row["results"]) == 4
        for result in row["results"]:
            assert result["correct"] == (result["predicted"] == result["label"])
            assert result["radius"] <= row["sigma"] * 2.1  # n = 60 cannot certify more
        expected = {str(r): certified_accuracy(row["results"], r) for r in RADII}
        assert row["certified_accuracy"] == expected
    table = format_certified_accuracy(report)
    assert "denoised smoothing, white-box (published)" in table
    assert "skipped: mse at sigma 0.3 (no checkpoint)" in table


def test_denoiser_table_measures_the_gain_over_the_noise(few_images: Path) -> None:
    report = denoiser_table(CLASSIFIER, ["none", "unet-cifar10-s0.25-mse"], [0.25, 0.5], few_images)
    rows = {(r["denoiser"]["name"], r["sigma"]): r for r in report["rows"]}
    assert set(rows) == {("none", 0.25), ("none", 0.5), ("unet-cifar10-s0.25-mse", 0.25)}
    identity, unet = rows["none", 0.25], rows["unet-cifar10-s0.25-mse", 0.25]
    assert identity["psnr_denoised"] == pytest.approx(identity["psnr_noisy"])
    assert unet["psnr_noisy"] == pytest.approx(identity["psnr_noisy"])  # the same noise draw
    assert unet["psnr_denoised"] > unet["psnr_noisy"] + 5
    assert unet["parameters"] > 0 and unet["mflops_per_image"] > 10
    assert rows["none", 0.5]["psnr_noisy"] < identity["psnr_noisy"]
    assert all(0 <= r["accuracy"] <= 1 for r in report["rows"])


def test_bench_command_writes_json_plot_and_table(few_images: Path, tmp_path: Path) -> None:
    out = tmp_path / "ca.json"
    result = CliRunner().invoke(
        bench,
        ["certify", "--classifier", CLASSIFIER, "--data", str(few_images), "--row", "mse",
         "--sigma", "0.25", "--images", "2", "--n0", "5", "--n", "20", "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["data"]["count"] == 2 and report["n"] == 20
    assert (
        out.with_suffix(".png").exists()
        and "| mse (this project) |" in out.with_suffix(".md").read_text()
    )


def test_bench_command_explains_missing_data(tmp_path: Path) -> None:
    result = CliRunner().invoke(bench, ["denoisers", "--data", str(tmp_path / "absent.npz")])
    assert result.exit_code == 2
    assert "absent.npz not found" in result.output
