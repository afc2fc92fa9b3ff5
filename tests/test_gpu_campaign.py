"""The GPU campaign (scripts/gpu-campaign.sh, benchmarks/gpu_campaign.py) cannot rot: its toy
mode runs here on the CPU, on a machine that offers it only what the GPU machine has (torch,
torchvision, numpy and what they need, the standard library, the wheels it carries), and its
output folder keeps to the limits of what comes back from that machine."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import subprocess
import sys
import tarfile
from collections import defaultdict
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from benchmarks.evaluation import CertifySettings
from benchmarks.gpu_campaign import (
    BASE_DISTRIBUTIONS,
    BLOCKED,
    PROJECT_PACKAGES,
    RESNETS,
    SECRET,
    WHEELS,
    certify_counts,
    pack,
    unpack,
)
from denoisers.checkpoints import read_metadata
from denoisers.classifiers import CIFAR10_CLASSES, cifar_resnet
from denoisers.registry import load_classifier, load_denoiser
from service.core import smoothing
from service.core.certifier import Certifier
from service.core.results import CertifyParams
from service.execution.local import LocalSampler

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu-campaign.sh"


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirements(distribution: str) -> list[str]:
    """Names a distribution needs on Linux, without extras (pytest brings ``packaging``)."""
    from packaging.requirements import Requirement

    names = []
    for line in metadata.requires(distribution) or []:
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
            names.append(_normal(requirement.name))
    return names


def _closure(roots: tuple[str, ...]) -> set[str]:
    seen: set[str] = set()
    todo = [_normal(r) for r in roots]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            todo += _requirements(name)
        except metadata.PackageNotFoundError:
            continue
    return seen


def _allowed_modules() -> set[str]:
    """Top-level modules the GPU machine can import: the standard library, the distributions of
    torch, torchvision and numpy and everything they require, the wheels, the project."""
    tops: defaultdict[str, set[str]] = defaultdict(set)
    for top, distributions in metadata.packages_distributions().items():
        for distribution in distributions:
            tops[_normal(distribution)].add(top)
    allowed = set(PROJECT_PACKAGES) | {"cython_runtime", "sitecustomize"}
    for distribution in _closure(BASE_DISTRIBUTIONS) | {_normal(w) for w in WHEELS}:
        allowed |= tops[distribution]
    return allowed - set(BLOCKED)


# Modules made at run time, never installed: Cython's shared runtime, the stdlib's build data,
# the editable install's import hook (this venv only), multiprocessing's alias of __main__, the
# module torch.distributed writes for remote modules.
_PSEUDO = re.compile(
    r"_cython_\d|_sysconfigdata|__editable__|__mp_main__$|_remote_module_non_scriptable$"
)


def test_the_wheels_need_nothing_the_gpu_machine_lacks() -> None:
    """Every wheel's own requirements are wheels too, or come with torch/torchvision/numpy."""
    there = _closure(BASE_DISTRIBUTIONS) | {_normal(w) for w in WHEELS}
    for wheel in WHEELS:
        assert set(_requirements(wheel)) <= there, wheel
    assert not {_normal(b) for b in BLOCKED} & _closure(BASE_DISTRIBUTIONS)


def test_counts_give_the_certifiers_certificates() -> None:
    """The campaign draws exactly the Certifier's votes (same plan, seeds, sampler), so the
    certificates computed from its counts are the benchmark's own."""
    assert CertifySettings().secret.encode() == SECRET
    sampler = LocalSampler(
        load_denoiser("none"), load_classifier("cifar10-resnet20"), "cpu", 64, precision="fp32"
    )
    certifier = Certifier(sampler, SECRET)
    generator = torch.Generator().manual_seed(3)
    for sigma in (0.12, 0.5):
        image = torch.rand(3, 32, 32, generator=generator)
        params = CertifyParams(sigma=sigma, n0=20, n=130, alpha=0.001)
        expected = asyncio.run(certifier.certify(image, params))
        votes = certify_counts(sampler, image, sigma, 20, 130, group=1)
        assert certify_counts(sampler, image, sigma, 20, 130, group=3) == votes
        cert = smoothing.certify(votes["candidate"], votes["counts"], 130, sigma, 0.001)
        label = None if cert.label is None else CIFAR10_CLASSES[int(str(cert.label))]
        assert (label, cert.radius, cert.p_lower) == (
            expected.label,
            expected.radius,
            expected.p_lower,
        )
        assert sum(votes["counts"].values()) == 130


def test_pack_splits_the_checkpoints_to_keep_within_the_limits(tmp_path: Path) -> None:
    """Twelve checkpoints of a U-Net's size (a full campaign with sigma 0.12) do not fit one
    16 MB file: they go into several tars; a run killed by the time limit is packed too."""
    work = tmp_path / "work"
    (work / "checkpoints").mkdir(parents=True)
    names = [f"unet-cifar10-s{i}-mse.safetensors" for i in range(12)]
    for name in names:
        (work / "checkpoints" / name).write_bytes(os.urandom(1_761_476))
    (work / "log.txt").write_bytes(b"x" * 17_000_000)
    written = pack(tmp_path / "out", work, status=124)
    files = sorted((tmp_path / "out").iterdir())
    assert sorted(written) == files and len(files) <= 8
    assert all(p.stat().st_size <= 16_000_000 for p in files)
    tars = [p for p in files if p.suffix == ".tar"]
    assert len(tars) == 2
    packed = []
    for tar in tars:
        with tarfile.open(tar) as archive:
            packed += archive.getnames()
    assert sorted(packed) == sorted(names)
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["exit_status"] == 124 and "time limit" in results["killed"]


def _smooth_images(count: int, seed: int) -> np.ndarray:
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(count, 3, 4, 4, generator=generator)
    images = F.interpolate(coarse, size=(32, 32), mode="bilinear").mul(255).round().byte()
    return images.permute(0, 2, 3, 1).numpy()


def _fake_shared(root: Path) -> Path:
    """The files the campaign reads from ../shared, small: 30 training JPEGs, 4 test images,
    randomly initialised third-party ResNets (the toy measures nothing)."""
    cifar = root / "data" / "cifar10"
    cifar.mkdir(parents=True)
    with tarfile.open(cifar / "train-jpeg.tar.gz", "w:gz") as archive:
        for index, pixels in enumerate(_smooth_images(30, 0)):
            buffer = io.BytesIO()
            Image.fromarray(pixels).save(buffer, format="JPEG", quality=75)
            info = tarfile.TarInfo(f"train/{CIFAR10_CLASSES[index % 10]}/{index:04d}.jpg")
            info.size = len(buffer.getvalue())
            archive.addfile(info, io.BytesIO(buffer.getvalue()))
    np.savez(
        cifar / "test-lossless-1000.npz",
        x=_smooth_images(4, 1),
        y=np.arange(4, dtype=np.int64),
        classes=np.asarray(CIFAR10_CLASSES),
    )
    models = root / "models" / "third-party" / "cifar10-resnet"
    models.mkdir(parents=True)
    for depth, name in RESNETS.items():
        state = {f"module.{k}": v for k, v in cifar_resnet(depth).state_dict().items()}
        torch.save({"best_prec1": 0.0, "state_dict": state}, models / name)
    return root


_BLOCKER = """\
import importlib.machinery, json, sys
_ALLOWED = frozenset(json.load(open({allowed!r})))
_PATHS = importlib.machinery.PathFinder


class _OnlyWhatTheGpuMachineHas:
    # sys.path's finder, blind to the packages the GPU machine does not have: importing one
    # fails, and importlib.util.find_spec() answers None for it, as there.
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        top = name.partition(".")[0]
        if top in _ALLOWED or top in sys.stdlib_module_names or top.startswith("_sysconfigdata"):
            return _PATHS.find_spec(name, path, target)
        return None

    @classmethod
    def invalidate_caches(cls):
        _PATHS.invalidate_caches()


sys.meta_path[:] = [_OnlyWhatTheGpuMachineHas if f is _PATHS else f for f in sys.meta_path]
"""


@pytest.mark.slow
@pytest.mark.subprocess
def test_toy_campaign_leaves_a_complete_small_output_folder(tmp_path: Path) -> None:
    shared = _fake_shared(tmp_path / "shared")
    allowed = _allowed_modules()
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "allowed.json").write_text(json.dumps(sorted(allowed)))
    (blocker / "sitecustomize.py").write_text(
        _BLOCKER.format(allowed=str(blocker / "allowed.json"))
    )
    out = tmp_path / "out"
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "PYTHONPATH": str(blocker),
        "DSMOOTH_CACHE_DIR": str(tmp_path / "cache"),
    }
    env.pop("OUT", None)
    done = subprocess.run(
        ["bash", str(SCRIPT), "--toy", "--out", str(out), "--shared", str(shared),
         "--wheels", str(tmp_path / "no-wheels"), "--work", str(tmp_path / "work")],
        env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    files = sorted(p for p in out.rglob("*") if p.is_file())
    assert 4 <= len(files) <= 8 and all(p.parent == out for p in files)
    assert all(p.stat().st_size <= 16_000_000 for p in files)
    assert {"results.json", "results.md", "log.txt", "checkpoints-1.tar"} <= {p.name for p in files}
    results = json.loads((out / "results.json").read_text())

    # every stage ran, nothing failed, and only what the GPU machine has was imported
    failed = [s for s in results["stages"] if s["status"] != "done"]
    assert not failed, failed
    imported = {name for name in results["imports"] if not _PSEUDO.match(name)}
    assert imported <= allowed, imported - allowed
    assert not set(BLOCKED) & set(results["imports"])
    assert results["mode"] == "toy" and results["exit_status"] == 0
    assert results["plan"]["sigmas"] == [0.25] and results["plan"]["extra_sigmas"] == [0.5]

    # (a) training: MSE, Stab black-box and white-box per sigma
    trained = {t["name"] for t in results["training"]}
    assert trained == {
        f"unet-cifar10-s{s}-{m}"
        for s in ("0.25", "0.5")
        for m in ("mse", "stab-blackbox", "stab-whitebox-resnet56")
    }
    assert set(results["step_rates"]) == {"mse", "stab-blackbox", "stab-whitebox"}
    # white-box rows validate through the target on test images it never saw, not certified
    for run in results["training"]:
        whitebox = run["method"] == "stab-whitebox"
        assert run["validation_images"] == (
            "2 test images after the 2 certified" if whitebox else "6 held-out training images"
        )
        assert (run["validation_classifier"]["name"] == "cifar-resnet56") == whitebox
    # (b) certification: counts only (scipy is not there), every row, the big row, the timing
    report = results["certified_accuracy"]
    assert report["n"] == 20 and report["certificates"].startswith("pending")
    assert not results["certificates_computed"]
    rows = {(r["method"], r["sigma"]) for r in report["rows"]}
    assert rows == {(m, s) for m in ("mse", "stab-blackbox", "stab-whitebox", "none")
                    for s in (0.25, 0.5)} - {("none", 0.5)}  # fmt: skip
    for row in report["rows"]:
        assert row["images"] == 2 and all(sum(r["counts"].values()) == 20 for r in row["results"])
    big = results["certified_accuracy_big"]
    assert big["n"] == 100 and big["rows"][0]["denoiser"]["name"].endswith("stab-blackbox")
    assert results["single_certification"]["sampling_s"] > 0
    # (c) throughput
    assert [r["pair"] for r in results["throughput"]["rows"]] == ["dncnn + cifar-resnet56"]
    assert results["goals"]["dncnn_resnet56_percent_of_peak"] > 0

    # (d) bringing it back: checkpoints with their cards, certificates computed here
    back = unpack(out, tmp_path / "checkpoints", tmp_path / "reports")
    assert sorted(back["checkpoints"]) == sorted(f"{name}.safetensors" for name in trained)
    for name in trained:
        path = tmp_path / "checkpoints" / f"{name}.safetensors"
        card = read_metadata(path)
        assert card["sigma"] in (0.25, 0.5) and card["training"]["device"] == "cpu"
        assert load_denoiser(f"unet:{path}").module(torch.rand(1, 3, 32, 32)).shape == (
            1,
            3,
            32,
            32,
        )
    finalized = json.loads((tmp_path / "reports" / "gpu-certified_accuracy.json").read_text())
    for row in finalized["rows"]:
        assert set(row["certified_accuracy"]) == {"0.0", "0.25", "0.5", "0.75", "1.0"}
        assert all("radius" in r and "correct" in r for r in row["results"])
    assert (tmp_path / "reports" / "gpu-certified_accuracy-big.json").exists()
    assert back["goals"]["certification_n"] == 100 and back["goals"]["certification_s"] > 0
