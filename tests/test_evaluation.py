"""The certified-accuracy benchmark and the denoiser table, on a few real test images."""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from benchmarks.evaluation import (
    METHODS,
    RADII,
    CertifySettings,
    certified_accuracy,
    default_data,
    default_target,
    denoiser_for,
    denoiser_table,
    format_certified_accuracy,
    run_certified_accuracy,
    shared_dir,
)
from benchmarks.provenance import provenance
from benchmarks.report import RADII as REPORT_RADII
from service.cli.bench import bench
from tests.conftest import LOSSLESS, _need

CLASSIFIER = "cifar10-resnet20"  # shipped, small: the tests' stand-in for the ResNet-56 target
BENCHMARKS = (
    "adapters", "attack", "certify", "confidence-sequences", "denoisers", "fairness", "load",
    "photos", "queries", "throughput", "workers",
)  # fmt: skip


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
    for sigma in (0.12, 0.25, 0.5, 1.0):
        expected = f"unet-cifar10-s{sigma:g}-stab-whitebox-resnet56"
        assert denoiser_for("stab-whitebox", sigma) == expected
    assert denoiser_for("mse", 1.0) == "unet-cifar10-s1-mse"
    assert denoiser_for("stab-blackbox", 1.0) == "unet-cifar10-s1-stab-blackbox"
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


@pytest.mark.shared
@pytest.mark.slow
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


@pytest.mark.shared
@pytest.mark.slow
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


@pytest.mark.shared
@pytest.mark.slow
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


def test_bench_lists_every_benchmark() -> None:
    result = CliRunner().invoke(bench, ["--help"])
    assert result.exit_code == 0, result.output
    assert set(bench.commands) == set(BENCHMARKS)
    commands = result.output.split("Commands:")[1]
    listed = re.findall(r"^  (\S+)  ", commands, flags=re.MULTILINE)
    assert sorted(listed) == sorted(BENCHMARKS)


def test_script_benchmarks_take_their_own_arguments_through_click(tmp_path: Path) -> None:
    help_ = CliRunner().invoke(bench, ["confidence-sequences", "--help"])
    assert help_.exit_code == 0, help_.output
    assert "usage: dsmooth bench confidence-sequences" in help_.output
    assert "--streams" in help_.output  # argparse's own help, not click's
    out = tmp_path / "cs.json"
    args = ["--streams", "20", "--batch", "20", "--radius-streams", "0", "--p", "0.9",
            "--radius", "0.25", "--n", "1000", "--no-plugin", "--out", str(out)]  # fmt: skip
    result = CliRunner().invoke(bench, ["confidence-sequences", *args])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["streams"] == 20 and report["n"] == 1000
    assert report["provenance"]["device"] == "cpu"
    wrong = CliRunner().invoke(bench, ["confidence-sequences", "--alpha", "2"])
    assert wrong.exit_code == 2 and "alpha must lie in (0, 1)" in wrong.output


def test_provenance_records_commit_versions_and_machine() -> None:
    record = provenance("cpu")
    json.dumps(record)  # it goes into the benchmark's JSON as is
    root = Path(__file__).resolve().parents[1]
    if shutil.which("git") and (root / ".git").exists():
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True
        )
        assert record["git"]["commit"] == head.stdout.strip()
        assert re.fullmatch(r"[0-9a-f]{40}", record["git"]["commit"])
        assert isinstance(record["git"]["dirty"], bool)
    else:
        assert record["git"] == {"commit": "unknown", "dirty": None}
    assert record["versions"] == {
        "python": platform.python_version(),
        "torch": metadata.version("torch"),
        "numpy": metadata.version("numpy"),
        "denoised-smoothing": metadata.version("denoised-smoothing"),
    }
    assert record["device"] == "cpu"
    machine = record["machine"]
    assert machine["cpu_count"] == os.cpu_count() and machine["platform"] == platform.platform()
    if Path("/proc/cpuinfo").exists():
        assert machine["cpu"] and isinstance(machine["avx512_bf16"], bool)
        assert isinstance(machine["amx"], bool)


def test_one_radius_grid_and_one_shared_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert RADII is REPORT_RADII
    monkeypatch.setenv("DSMOOTH_SHARED_DIR", str(tmp_path))
    assert shared_dir() == tmp_path
    assert default_data() == tmp_path / "data/cifar10/test-lossless-1000.npz"
    assert default_target().startswith(f"cifar-resnet56:{tmp_path}/models/")
    monkeypatch.delenv("DSMOOTH_SHARED_DIR")
    assert shared_dir() == Path(__file__).resolve().parents[2] / "shared"
