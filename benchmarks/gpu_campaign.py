"""The GPU campaign: the denoiser set, certified accuracy and throughput, on one GPU in 9 minutes.

``scripts/gpu-campaign.sh`` runs it (issue #22 item 4). On one H200-class GPU, within the time
plan below, it

(a) trains the CIFAR-10 U-Net denoisers: MSE from scratch at the first sigma (fine-tuned from it
    at the others: as many epochs as fit the stage's time), then MSE + Stab fine-tuning through
    four surrogates (black-box) and through the ResNet-56 target (white-box), for sigma 0.25,
    0.5, 1.0 (0.12 when time is left);
(b) certifies the first 500 lossless test images at n = 10,000 (n0 = 100, alpha = 0.001) for
    every trained row, and one row at n = 100,000, whose first certification is timed (the GPU
    goal: under one second);
(c) runs the throughput benchmark (:mod:`benchmarks.throughput`) on the GPU with
    ``torch.compile`` (the GPU goal: 40% of the bf16 matmul peak on DnCNN + ResNet-56);
(d) leaves everything in at most 8 files of at most 16 MB in one folder: ``results.json``
    (plan, stages, training cards, every certification, throughput, goals), ``results.md``,
    ``log.txt`` and ``checkpoints-N.tar`` (the safetensors checkpoints with their cards).

What it imports is what the GPU machine has: torch, torchvision (and what they need), numpy, the
standard library, and the small wheels of :data:`WHEELS` (``make gpu-wheels``). scipy (a 35 MB
wheel: it does not fit the 64 MiB that may travel beside the data) is not imported here: the
certification stage records each image's vote counts, the exact inputs of the Clopper-Pearson
bound, and ``finalize`` turns them into certificates with :mod:`service.core.smoothing` wherever
scipy is installed (``pack`` does it at once when it is; ``unpack`` does it here otherwise).
The counts are those the :class:`~service.core.certifier.Certifier` draws for the same request
(same noise plan, seeds and sampler), so the certificates are the benchmark's own.

Subcommands: ``run`` (the campaign), ``pack`` (finalize and write the output folder; the shell
script calls it after ``run``, also when the time guard killed ``run``), ``finalize``,
``unpack`` (bring the results into the repository), ``wheels`` (the pinned wheel list),
``travel-size`` (what a device call would carry).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from benchmarks.provenance import provenance
from benchmarks.report import RADII
from denoisers.registry import LoadedModel, load_classifier, load_denoiser
from denoisers.training.data import ImageSet, load_image_folder, load_lossless_npz
from denoisers.training.denoiser import DenoiserTrainingConfig, TrainingData, train_denoiser
from service.core.noise import DEFAULT_CHUNK_SIZE, Phase, image_digest, plan_phase
from service.execution.devices import Precision
from service.execution.local import LocalSampler

__all__ = [
    "FULL",
    "TOY",
    "WHEELS",
    "Plan",
    "certify_counts",
    "finalize",
    "main",
    "pack",
    "unpack",
]

# What the GPU machine's python3 is assumed to have, and what travels as wheels beside it.
BASE_DISTRIBUTIONS = ("torch", "torchvision", "numpy")
WHEELS = (
    "safetensors",
    "tqdm",
    "pydantic",
    "pydantic-core",
    "pydantic-settings",
    "python-dotenv",
    "annotated-types",
    "typing-inspection",
    "typing-extensions",
)
PROJECT_PACKAGES = ("benchmarks", "denoisers", "service")
# Never imported on this path: matplotlib (learning-curve PNGs are skipped) and scipy (above).
BLOCKED = ("matplotlib", "scipy")

SECRET = b"benchmark-secret"  # CertifySettings.secret of `dsmooth bench certify`: runs repeat
SHIPPED_TRAIN_DATA = "../shared/data/cifar10/train-jpeg.tar.gz"  # as the shipped cards say
TRAIN_TARBALL = "data/cifar10/train-jpeg.tar.gz"
LOSSLESS = "data/cifar10/test-lossless-1000.npz"
THIRD_PARTY = "models/third-party/cifar10-resnet"
RESNETS = {
    20: "resnet20-12fca82f.th",
    32: "resnet32-d509ac18.th",
    44: "resnet44-014dd654.th",
    56: "resnet56-4bfd9763.th",
}
OWN_SURROGATE = "cifar10-resnet20"  # shipped with the project: travels with the tree
MAX_FILE_BYTES = 15_000_000  # under 16 MB and 16 MiB
MAX_FILES = 8


@dataclass(frozen=True)
class Plan:
    """What the campaign does and how many seconds of wall clock each part may take.

    Training stages get a time slot each: their epochs are what fits the slot at the step rate
    measured just before (capped at the paper's epochs), and a slot overrun by 30% stops the
    run at the next epoch. Certification rows stop at their slot too (a row then covers its
    first images only, and says so). A stage starts only while the guard's deadline (the
    budget less the reserve for packing) leaves it its minimum.
    """

    budget_s: float  # the whole script, wheels to packing
    reserve_s: float  # kept at the end for packing (no stage starts inside it)
    device: str
    precision: Precision  # certification and benchmark arithmetic; "auto": bf16 on CUDA
    bf16_training: bool
    sigmas: tuple[float, ...]  # trained and certified in this order
    extra_sigmas: tuple[float, ...]  # only while time is left after everything else
    batch_size: int  # training
    holdout: int  # training images held out for validation (never the test images)
    # White-box rows validate on the test images after those certified instead: the target
    # learnt its training images, so held-out training images overstate what it gains.
    target_holdout: int
    mse_first_s: float  # MSE from scratch at sigmas[0]
    mse_s: float  # MSE fine-tuned from sigmas[0]'s at the others
    blackbox_s: float  # MSE + Stab through the four surrogates
    whitebox_s: float  # MSE + Stab through the target
    mse_max_epochs: int  # the paper trained DnCNN 90 epochs
    stab_max_epochs: int  # and Stab about 20 more
    max_steps_per_epoch: int | None  # toy mode: a few steps
    calibration_steps: tuple[int, int]  # warm-up (0: none) and timed steps of a step rate
    images: int  # first test images certified
    n0: int
    n: int
    alpha: float
    row_s: float  # one certification row at most
    cert_batch: int  # noisy copies per forward pass when certifying (a few chunks at once)
    big_n: int  # the one row at n = 100,000
    big_row: tuple[str, float]  # (method, sigma) of that row
    big_s: float
    throughput_pairs: tuple[str, ...]  # names from benchmarks.throughput.pairs()
    throughput_n: int
    throughput_batch: int
    throughput_s: float  # past half of it, the remaining pairs run without torch.compile
    peak_dtypes: tuple[str, ...]
    compile: bool  # torch.compile (CUDA graphs on CUDA) in the benchmark and the n = 100,000 row


# The 9 minutes (540 s) on one H200, as planned: expected seconds (slots in brackets), and the
# sum with the reserve. Rows: 500 images at n = 10,000, about 18 s each [25].
#   setup: wheels, imports, CUDA, decoding 50,000 JPEGs .............................  30
#   step rates of the three objectives (15 warm-up + 60 timed steps each) ...........  10
#   throughput: DnCNN + ResNet-56, U-Net + ResNet-56, eager and compiled [80] .......  70
#   sigma 0.25: MSE from scratch [55], black-box [15], white-box [10], 3 rows .......  134
#   n = 100,000: compile (a cache hit), the timed certification, the row [30] .......  40
#   sigma 0.5: MSE fine-tuned from 0.25's [30], black-box [15], white-box [10], 3 rows  109
#   sigma 1.0: the same .............................................................  109
#   reserve: packing, results [25] ..................................................  25
#                                                                                total  527
# Then, only while time is left: sigma 0.12 (needs 93 s), the no-denoiser rows (13 s each).
FULL = Plan(
    budget_s=540,
    reserve_s=25,
    device="cuda",
    precision="auto",
    bf16_training=True,
    sigmas=(0.25, 0.5, 1.0),
    extra_sigmas=(0.12,),
    batch_size=256,
    holdout=1000,
    target_holdout=500,
    mse_first_s=55,
    mse_s=30,
    blackbox_s=15,
    whitebox_s=10,
    mse_max_epochs=90,
    stab_max_epochs=20,
    max_steps_per_epoch=None,
    calibration_steps=(15, 60),
    images=500,
    n0=100,
    n=10_000,
    alpha=0.001,
    row_s=25,
    cert_batch=4000,
    big_n=100_000,
    big_row=("stab-blackbox", 0.25),
    big_s=30,
    throughput_pairs=("dncnn + cifar-resnet56", "unet + cifar-resnet56"),
    throughput_n=20_000,
    throughput_batch=1000,
    throughput_s=80,
    peak_dtypes=("fp32", "bf16"),
    compile=True,
)
# A few steps and images on the CPU: what the test suite runs so that the script cannot rot.
TOY = Plan(
    budget_s=600,
    reserve_s=5,
    device="cpu",
    precision="fp32",
    bf16_training=False,
    sigmas=(0.25,),
    extra_sigmas=(0.5,),
    batch_size=8,
    holdout=6,
    target_holdout=2,
    mse_first_s=1,
    mse_s=1,
    blackbox_s=1,
    whitebox_s=1,
    mse_max_epochs=1,
    stab_max_epochs=1,
    max_steps_per_epoch=1,
    calibration_steps=(0, 1),
    images=2,
    n0=5,
    n=20,
    alpha=0.001,
    row_s=60,
    cert_batch=100,
    big_n=100,
    big_row=("stab-blackbox", 0.25),
    big_s=60,
    throughput_pairs=("dncnn + cifar-resnet56",),
    throughput_n=4,
    throughput_batch=4,
    throughput_s=60,
    peak_dtypes=("fp32",),
    compile=False,
)

METHODS = {  # row -> checkpoint name at a sigma (the names of the shipped checkpoints)
    "none": "none",
    "mse": "unet-cifar10-s{sigma:g}-mse",
    "stab-blackbox": "unet-cifar10-s{sigma:g}-stab-blackbox",
    "stab-whitebox": "unet-cifar10-s{sigma:g}-stab-whitebox-resnet56",
}


def _now() -> float:
    return time.monotonic()


def _write_json(path: Path, value: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(value, indent=1))
    tmp.replace(path)


# --- certification: the Certifier's fixed-n plan, counts only --------------------------------


def _label_counts(array: np.ndarray) -> dict[str, int]:
    """Counts by label key, as :meth:`LocalSampler.count` reports them."""
    return {str(index): int(count) for index, count in enumerate(array) if count}


def certify_counts(
    sampler: LocalSampler, image: torch.Tensor, sigma: float, n0: int, n: int, group: int = 1
) -> dict[str, Any]:
    """The votes of one fixed-n certification with a noisy candidate, drawn exactly as
    :meth:`Certifier.certify` draws them (same chunk plan, seeds and sampler): the candidate from
    the n0 selection votes (ties by label key), and the n estimation votes. ``group`` chunks
    share a forward pass (the counts of a chunk do not depend on it)."""
    digest = image_digest(image)
    # chunk_size_for() of service.core.certifier (which imports scipy): a 32x32 image's chunks
    chunk = int(max(1, min(DEFAULT_CHUNK_SIZE, (1 << 25) // int(np.prod(image.shape)))))
    tallies = []
    for phase, total in ((Phase.SELECTION, n0), (Phase.ESTIMATION, n)):
        plan = plan_phase(SECRET, digest, sigma, sampler.noise_params, phase, total, chunk)
        counts = np.zeros(sampler.num_classes, dtype=np.int64)
        for start in range(0, len(plan), group):
            work = [(image, c) for c in plan[start : start + group]]
            for part in sampler.count_chunks(work):
                counts += part
        tallies.append(_label_counts(counts))
    selection, estimation = tallies
    ranked = sorted(selection.items(), key=lambda item: (-item[1], item[0]))
    candidate = ranked[0][0] if ranked else None
    return {"candidate": candidate, "counts": estimation, "n0": n0, "n": n}


def _certify_row(
    sampler: LocalSampler,
    data: ImageSet,
    classes: Sequence[str],
    sigma: float,
    n0: int,
    n: int,
    plan: Plan,
    stop_at: float,
) -> dict[str, Any]:
    """Certify the test images in order until all are done or ``stop_at`` has passed."""
    group = max(1, plan.cert_batch // DEFAULT_CHUNK_SIZE)
    results = []
    for index in tqdm(range(len(data)), desc=f"certify sigma={sigma} n={n}", unit="image"):
        if _now() >= stop_at:
            break
        began = time.perf_counter()
        votes = certify_counts(sampler, data.floats(index, index + 1)[0], sigma, n0, n, group)
        label = classes[int(data.labels[index])]
        results.append(
            {"index": index, "label": label, **votes, "seconds": time.perf_counter() - began}
        )
    return {
        "sigma": sigma,
        "n0": n0,
        "n": n,
        "images": len(results),
        "planned_images": len(data),
        "seconds_per_image": sum(r["seconds"] for r in results) / max(1, len(results)),
        "precision": sampler.precision,
        "results": results,
    }


# --- the campaign -----------------------------------------------------------------------------


class Campaign:
    def __init__(self, plan: Plan, shared: Path, work: Path, deadline: float, toy: bool) -> None:
        self.plan, self.shared, self.work, self.toy = plan, shared, work, toy
        self.deadline = deadline  # monotonic: no stage starts after it
        self.started = _now()
        self.device = torch.device(plan.device)
        self.checkpoints = work / "checkpoints"
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        self.rates: dict[str, float] = {}
        self.results: dict[str, Any] = {
            "campaign": "gpu-campaign (issue #22 item 4)",
            "mode": "toy" if toy else "full",
            "plan": asdict(plan),
            "stages": [],
            "training": [],
            "certified_accuracy": None,
            "certified_accuracy_big": None,
            "single_certification": None,
            "throughput": None,
            "environment": _environment(self.device),
        }

    # bookkeeping

    def left(self) -> float:
        return self.deadline - _now()

    def save(self) -> None:
        self.results["elapsed_s"] = round(_now() - self.started, 1)
        _write_json(self.work / "results.json", self.results)

    def stage(self, name: str, minimum_s: float, run: Callable[[], Any]) -> Any:
        """Run ``run`` unless less than ``minimum_s`` is left; record how it went; never raise."""
        record: dict[str, Any] = {"stage": name, "at_s": round(_now() - self.started, 1)}
        self.results["stages"].append(record)
        if self.left() < minimum_s:
            record.update(
                status="skipped", reason=f"time: {self.left():.0f} s left, needs {minimum_s:.0f} s"
            )
            print(f"== {name}: skipped ({record['reason']})", flush=True)
            self.save()
            return None
        print(f"== {name} (at {record['at_s']} s, {self.left():.0f} s left)", flush=True)
        began = _now()
        try:
            value = run()
        except Exception as exc:  # one failed stage must not lose the others' results
            record.update(
                status="failed",
                error=f"{type(exc).__name__}: {exc}",
                traceback=traceback.format_exc(limit=8),
            )
            print(f"== {name}: FAILED {record['error']}", flush=True)
            value = None
        else:
            record["status"] = "done"
        record["seconds"] = round(_now() - began, 1)
        self.save()
        return value

    # inputs

    def load(self) -> bool:
        plan = self.plan
        tarball = self.shared / TRAIN_TARBALL
        train = load_image_folder(tarball, cache_dir=self.work / "cache")
        self.train_set, self.held_out = train.split(plan.holdout)
        if self.device.type == "cuda":  # augmented on the GPU: the CPU would be the bottleneck
            self.train_set = ImageSet(
                self.train_set.images.to(self.device), self.train_set.labels, self.train_set.classes
            )
        self.data_label = SHIPPED_TRAIN_DATA if not self.toy else str(tarball)
        lossless = load_lossless_npz(self.shared / LOSSLESS)
        self.test = lossless.head(plan.images)
        self.target_held_out = lossless.head(plan.target_holdout, skip=plan.images)
        folder = self.shared / THIRD_PARTY
        self.target = load_classifier(f"cifar-resnet56:{folder / RESNETS[56]}")
        self.surrogates = [load_classifier(OWN_SURROGATE)] + [
            load_classifier(f"cifar-resnet{depth}:{folder / RESNETS[depth]}")
            for depth in (20, 32, 44)
        ]
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        self.results["data"] = {
            "train": str(tarball),
            "train_images": len(self.train_set),
            "held_out": len(self.held_out),
            "target_held_out": len(self.target_held_out),
            "test": str(self.shared / LOSSLESS),
            "test_images": len(self.test),
        }
        return True

    # training

    def _config(
        self,
        sigma: float,
        objective: str,
        epochs: int,
        steps: int | None,
        lr: float,
        init: Path | None,
        role: str,
        slot: float,
        note: str,
    ) -> DenoiserTrainingConfig:
        return DenoiserTrainingConfig(
            architecture="unet",
            sigma=sigma,
            objective=objective,
            epochs=epochs,
            batch_size=self.plan.batch_size,
            lr=lr,
            steps_per_epoch=steps,
            init=str(init) if init else None,
            classifier_role=role,
            bf16=self.plan.bf16_training,
            data=self.data_label,
            holdout=self.plan.holdout,
            device=str(self.device),
            max_seconds=max(1.0, min(1.3 * slot, self.left())),
            command=f"scripts/gpu-campaign.sh ({note})",
        )

    def _classifiers(self, kind: str) -> tuple[list[LoadedModel], LoadedModel, ImageSet]:
        """(Stab classifiers, validation classifier, validation images) of an objective kind.
        Black-box and MSE rows are validated by the project's own ResNet-20, never the target,
        on held-out training images; white-box rows by the target on test images it never saw."""
        if kind == "stab-blackbox":
            return self.surrogates, self.surrogates[0], self.held_out
        if kind == "stab-whitebox":
            return [self.target], self.target, self.target_held_out
        return [], self.surrogates[0], self.held_out

    def rate(self, kind: str) -> float:
        """Training steps per second of an objective kind, measured once (warm-up, then timed)."""
        if kind not in self.rates:
            warm, timed = self.plan.calibration_steps
            classifiers, check, validation = self._classifiers(kind)
            objective = "mse" if kind == "mse" else "mse+stab"
            init = None
            if objective != "mse":  # a fresh U-Net's weights will do for timing
                init = self.work / "calibration" / "init.safetensors"
                if not init.exists():
                    from denoisers.checkpoints import save_checkpoint
                    from denoisers.registry import create_model

                    save_checkpoint(init, create_model("unet").state_dict(), {})
            elapsed = 0.0
            for steps in (warm, timed) if warm else (timed,):  # warm-up: cuDNN, the allocator
                run = self.work / "calibration" / f"{kind}-{steps}-{len(self.rates)}"
                shutil.rmtree(run, ignore_errors=True)
                config = self._config(
                    0.25,
                    objective,
                    1,
                    steps,
                    1e-4,
                    init,
                    "target" if kind == "stab-whitebox" else "surrogate",
                    60,
                    f"step rate of {kind}",
                )
                done = train_denoiser(
                    config,
                    TrainingData(self.train_set, config.batch_size, steps),
                    validation,
                    classifiers,
                    run,
                    run / "out.safetensors",
                    check,
                )
                elapsed = float(done["history"][-1]["seconds"])
            # The epoch's time: its steps and one validation, as in every epoch of a real run.
            self.rates[kind] = timed / max(elapsed, 1e-3)
            self.results["step_rates"] = {k: round(v, 2) for k, v in self.rates.items()}
        return self.rates[kind]

    def train(self, kind: str, sigma: float) -> dict[str, Any] | None:
        plan = self.plan
        name = METHODS[kind].format(sigma=sigma)
        out = self.checkpoints / f"{name}.safetensors"
        if out.exists():
            return {"name": name, "reused": True}
        first = sigma == plan.sigmas[0]
        mse_init = self.checkpoints / f"{METHODS['mse'].format(sigma=plan.sigmas[0])}.safetensors"
        if kind == "mse":
            init = None if first or not mse_init.exists() else mse_init
            slot = plan.mse_first_s if init is None else plan.mse_s
            lr, max_epochs, role = (
                (1e-3 if init is None else 5e-4),
                plan.mse_max_epochs,
                "surrogate",
            )
        else:
            init = self.checkpoints / f"{METHODS['mse'].format(sigma=sigma)}.safetensors"
            if not init.exists():
                raise RuntimeError(f"{init.name} was not trained: nothing to fine-tune")
            slot = plan.blackbox_s if kind == "stab-blackbox" else plan.whitebox_s
            lr, max_epochs = 1e-4, plan.stab_max_epochs
            role = "target" if kind == "stab-whitebox" else "surrogate"
        per_pass = -(-len(self.train_set) // plan.batch_size)
        if plan.max_steps_per_epoch is not None:
            per_pass = min(per_pass, plan.max_steps_per_epoch)
        fit = max(1, int(slot * self.rate(kind)))
        epochs = max(1, min(max_epochs, fit // per_pass))
        steps = per_pass if fit >= per_pass else fit
        config = self._config(
            sigma,
            "mse" if kind == "mse" else "mse+stab",
            epochs,
            None if steps == -(-len(self.train_set) // plan.batch_size) else steps,
            lr,
            init,
            role,
            slot,
            f"{kind}, sigma {sigma:g}",
        )
        classifiers, check, validation = self._classifiers(kind)
        run = self.work / "runs" / name
        metadata = train_denoiser(
            config,
            TrainingData(self.train_set, plan.batch_size, config.steps_per_epoch),
            validation,
            classifiers,
            run,
            out,
            check,
        )
        card = metadata["card"]
        summary = {
            "name": name,
            "method": kind,
            "sigma": sigma,
            "init": init.name if init else None,
            "slot_s": slot,
            "planned_epochs": epochs,
            "steps_per_epoch": steps,
            "batch_size": plan.batch_size,
            "lr": lr,
            "epochs": card["epochs"],
            "exported_epoch": card["exported_epoch"],
            "images_seen": card["images_seen"],
            "seconds": card["wall_seconds"],
            "stopped": card["stopped"],
            "validation": metadata["validation"],
            "validation_classifier": metadata["validation_classifier"],
            "validation_images": (
                f"{len(validation)} test images after the {plan.images} certified"
                if validation is self.target_held_out
                else f"{len(validation)} held-out training images"
            ),
            "classifiers": metadata["classifiers"],
            "version": metadata["version"],
        }
        self.results["training"].append(summary)
        return summary

    # certification

    def denoiser(self, kind: str, sigma: float) -> LoadedModel | None:
        if kind == "none":
            return load_denoiser("none")
        path = self.checkpoints / f"{METHODS[kind].format(sigma=sigma)}.safetensors"
        if not path.exists():
            return None
        loaded = load_denoiser(f"unet:{path}")
        return dataclasses.replace(
            loaded, name=path.stem, version=str(loaded.metadata.get("version", loaded.version))
        )

    def _report(self, key: str, n0: int, n: int) -> dict[str, Any]:
        if self.results[key] is None:
            self.results[key] = {
                "benchmark": "certified_accuracy",
                "classifier": {"name": self.target.name, "version": self.target.version},
                "data": {"path": str(self.shared / LOSSLESS), "count": len(self.test)},
                "n0": n0,
                "n": n,
                "alpha": self.plan.alpha,
                "radii": list(RADII),
                "classes": list(self.target.classes),
                "rows": [],
                "skipped": [],
                "certificates": "pending: counts only",
                "precision": None,
                "provenance": provenance(str(self.device)),
                "date": time.strftime("%Y-%m-%d %H:%M:%S"),
            }
        report: dict[str, Any] = self.results[key]
        return report

    def certify(self, kind: str, sigma: float) -> dict[str, Any] | None:
        plan = self.plan
        report = self._report("certified_accuracy", plan.n0, plan.n)
        denoiser = self.denoiser(kind, sigma)
        if denoiser is None:
            report["skipped"].append({"row": kind, "sigma": sigma, "reason": "not trained"})
            return None
        sampler = LocalSampler(
            denoiser, self.target, self.device, plan.cert_batch, precision=plan.precision
        )
        stop_at = min(self.deadline, _now() + plan.row_s)
        row = _certify_row(
            sampler, self.test, self.target.classes, sigma, plan.n0, plan.n, plan, stop_at
        )
        row = {
            "method": kind,
            "denoiser": {"name": denoiser.name, "version": denoiser.version},
            **row,
        }
        report["rows"].append(row)
        report["precision"] = sampler.precision
        return {k: v for k, v in row.items() if k != "results"}

    def big(self) -> dict[str, Any] | None:
        """The row at n = 100,000 on a compiled sampler, whose second certification is timed
        (the first one compiles and records the CUDA graphs)."""
        plan = self.plan
        kind, sigma = plan.big_row
        denoiser = self.denoiser(kind, sigma) or self.denoiser("mse", sigma)
        if denoiser is None:
            raise RuntimeError(f"no denoiser trained for sigma {sigma:g}")
        kind = kind if denoiser.name.endswith(kind) else "mse"
        compile_s = [
            row["compile_s"]
            for row in (self.results["throughput"] or {}).get("rows", [])
            if row["pair"] == "unet + cifar-resnet56" and row["compile_s"] is not None
        ]
        # The same graphs as the benchmark's U-Net + ResNet-56 (a cache hit), unless those
        # took over a minute to compile: then eager, rather than the rest of the campaign.
        compile = plan.compile and not (compile_s and compile_s[0] > 60)
        sampler = LocalSampler(
            denoiser,
            self.target,
            self.device,
            plan.cert_batch,
            precision=plan.precision,
            compile=compile,
        )
        group = max(1, plan.cert_batch // DEFAULT_CHUNK_SIZE)
        began = time.perf_counter()
        certify_counts(sampler, self.test.floats(0, 1)[0], sigma, plan.n0, plan.big_n, group)
        warm_s = time.perf_counter() - began
        image = self.test.floats(1, 2)[0] if len(self.test) > 1 else self.test.floats(0, 1)[0]
        began = time.perf_counter()
        votes = certify_counts(sampler, image, sigma, plan.n0, plan.big_n, group)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        sampling_s = time.perf_counter() - began
        single: dict[str, Any] = {
            "denoiser": denoiser.name,
            "classifier": self.target.name,
            "sigma": sigma,
            "n0": plan.n0,
            "n": plan.big_n,
            "precision": sampler.precision,
            "first_certification_s": round(warm_s, 3),
            "sampling_s": round(sampling_s, 4),
            "votes": votes,
        }
        self.results["single_certification"] = single
        self.save()
        report = self._report("certified_accuracy_big", plan.n0, plan.big_n)
        stop_at = min(self.deadline, _now() + plan.big_s)
        row = _certify_row(
            sampler, self.test, self.target.classes, sigma, plan.n0, plan.big_n, plan, stop_at
        )
        report["rows"].append(
            {
                "method": kind,
                "denoiser": {"name": denoiser.name, "version": denoiser.version},
                **row,
            }
        )
        report["precision"] = sampler.precision
        return {**single, "row_images": row["images"]}

    # throughput

    def throughput(self) -> dict[str, Any]:
        from benchmarks import throughput

        plan = self.plan
        torch.manual_seed(0)
        peaks = {
            name: throughput.matmul_peak(self.device, getattr(torch, _DTYPES[name]))
            for name in plan.peak_dtypes
        }
        args = argparse.Namespace(
            device=str(self.device),
            precision=plan.precision,
            n=plan.throughput_n,
            n_224=1,
            batch=plan.throughput_batch,
            compile=plan.compile,
        )
        rows = []
        began = _now()
        for name, denoiser, classifier, size in throughput.pairs(False):
            if name not in plan.throughput_pairs or self.left() < 10:
                continue
            if args.compile and _now() - began > plan.throughput_s / 2:
                args.compile = False  # compilation took half the slot: the next pairs eager only
            rows.append(throughput.measure_pair(name, denoiser, classifier, size, peaks, args))
            print(json.dumps(rows[-1]), flush=True)
            self.results["throughput"] = {
                "device": str(self.device),
                "device_name": _device_name(self.device),
                "matmul_peak_gflops": {k: round(v / 1e9, 1) for k, v in peaks.items()},
                "n": plan.throughput_n,
                "batch": plan.throughput_batch,
                "rows": rows,
            }
            self.save()
        return {"rows": len(rows)}

    # the whole plan

    def run(self) -> None:
        plan = self.plan
        print(_plan_table(plan), flush=True)
        if not self.stage("load data and models", 0, self.load):
            return
        self.stage("throughput", 30 if not self.toy else 0, self.throughput)
        for sigma in plan.sigmas:
            self.sigma(sigma)
            if sigma == plan.big_row[1]:
                self.stage(
                    f"n = {plan.big_n:,}: one timed certification and the row",
                    10 if not self.toy else 0,
                    self.big,
                )
        need = plan.mse_s + plan.blackbox_s + plan.whitebox_s + 3 * plan.row_s / 2
        for sigma in plan.extra_sigmas:
            if self.left() < need and not self.toy:
                self.stage(f"sigma {sigma:g}", need, bool)  # recorded as skipped
                continue
            self.sigma(sigma)
        for sigma in plan.sigmas:
            self.stage(
                f"certify none, sigma {sigma:g}",
                plan.row_s / 2,
                functools.partial(self.certify, "none", sigma),
            )

    def sigma(self, sigma: float) -> None:
        plan = self.plan
        slots = {
            "mse": plan.mse_first_s if sigma == plan.sigmas[0] else plan.mse_s,
            "stab-blackbox": plan.blackbox_s,
            "stab-whitebox": plan.whitebox_s,
        }
        for kind, slot in slots.items():
            self.stage(
                f"train {kind}, sigma {sigma:g}",
                slot / 2,
                functools.partial(self.train, kind, sigma),
            )
        for kind in slots:
            self.stage(
                f"certify {kind}, sigma {sigma:g}",
                plan.row_s / 5,
                functools.partial(self.certify, kind, sigma),
            )


_DTYPES = {"fp32": "float32", "bf16": "bfloat16"}


def _device_name(device: torch.device) -> str | None:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else None


def _environment(device: torch.device) -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for name in (*BASE_DISTRIBUTIONS, *WHEELS):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "python": sys.version.split()[0],
        "versions": versions,
        "torch_cuda": torch.version.cuda,
        "device_name": _device_name(device),
        "cpu_count": os.cpu_count(),
        "provenance": provenance(str(device)),
    }


def _plan_table(plan: Plan) -> str:
    rows = [
        ("budget (whole script) / reserve", f"{plan.budget_s:g} s / {plan.reserve_s:g} s"),
        ("sigmas (then, if time is left)", f"{plan.sigmas} ({plan.extra_sigmas})"),
        (
            "MSE: first sigma / others",
            f"{plan.mse_first_s:g} s / {plan.mse_s:g} s, "
            f"<= {plan.mse_max_epochs} epochs of batch {plan.batch_size}",
        ),
        (
            "Stab black-box / white-box",
            f"{plan.blackbox_s:g} s / {plan.whitebox_s:g} s, <= {plan.stab_max_epochs} epochs",
        ),
        (
            "certification rows",
            f"{plan.images} images, n0 {plan.n0}, n {plan.n:,}, <= {plan.row_s:g} s each",
        ),
        (
            "big row",
            f"{plan.big_row[0]} sigma {plan.big_row[1]:g}, n {plan.big_n:,}, <= {plan.big_s:g} s",
        ),
        (
            "throughput",
            f"{', '.join(plan.throughput_pairs)}; n {plan.throughput_n:,}, compile {plan.compile}",
        ),
    ]
    return "\n".join(f"plan: {what:<34} {value}" for what, value in rows)


# --- after the run: certificates, the output folder, bringing results back --------------------


def finalize(results: dict[str, Any]) -> bool:
    """Certificates from the recorded counts (:func:`service.core.smoothing.certify`, as the
    Certifier computes them) and each row's certified accuracy. False where scipy is missing."""
    try:
        from benchmarks.evaluation import certified_accuracy
        from denoisers.classifiers import CIFAR10_CLASSES
        from service.core import smoothing
    except Exception:  # no scipy, or one that does not load
        return False
    for key in ("certified_accuracy", "certified_accuracy_big"):
        report = results.get(key)
        if not report:
            continue
        classes = report.get("classes") or CIFAR10_CLASSES
        for row in report["rows"]:
            for result in row["results"]:
                cert = smoothing.certify(
                    result["candidate"],
                    result["counts"],
                    result["n"],
                    row["sigma"],
                    report["alpha"],
                )
                label = None if cert.label is None else classes[int(str(cert.label))]
                result.update(
                    predicted=label,
                    correct=label == result["label"],
                    radius=cert.radius,
                    p_lower=cert.p_lower,
                )
            row["certified_accuracy"] = {
                str(r): certified_accuracy(row["results"], r) for r in RADII
            }
        report["certificates"] = "computed (service.core.smoothing)"
    single = results.get("single_certification")
    if single and "radius" not in single:
        began = time.perf_counter()
        votes = single["votes"]
        cert = smoothing.certify(
            votes["candidate"],
            votes["counts"],
            votes["n"],
            single["sigma"],
            results["plan"]["alpha"],
        )
        bound_s = time.perf_counter() - began
        single.update(
            radius=cert.radius,
            p_lower=cert.p_lower,
            bound_s=round(bound_s, 6),
            total_s=round(single["sampling_s"] + bound_s, 4),
        )
    results["goals"] = goals(results)
    return True


def goals(results: dict[str, Any]) -> dict[str, Any]:
    """The GPU goals of the issue, as measured (None where not measured): DnCNN + ResNet-56 at
    40% of the matmul peak of its precision (bf16 on a GPU), one certification at n = 100,000
    in under a second."""
    percent, precision = None, None
    for row in (results.get("throughput") or {}).get("rows", []):
        if row["pair"] == "dncnn + cifar-resnet56":
            percent = max(row["percent_of_peak"], row.get("compiled_percent_of_peak") or 0)
            precision = row["precision"]
    single = results.get("single_certification") or {}
    seconds = single.get("total_s", single.get("sampling_s"))
    return {
        "dncnn_resnet56_percent_of_peak": percent,
        "dncnn_resnet56_precision": precision,
        "dncnn_resnet56_at_least_40_percent": None if percent is None else percent >= 40,
        "certification_n": single.get("n"),
        "certification_s": seconds,
        "certification_under_1_s": None if seconds is None else seconds < 1,
        "device": (results.get("environment") or {}).get("device_name"),
    }


def markdown(results: dict[str, Any]) -> str:
    """The tables a README update needs: certified accuracy per row, training, throughput."""
    lines = [f"# GPU campaign ({results.get('mode')}), {results.get('elapsed_s')} s", ""]
    for key in ("certified_accuracy", "certified_accuracy_big"):
        report = results.get(key)
        if not report or not report["rows"]:
            continue
        lines += [
            f"## Certified accuracy, n = {report['n']:,} ({report['certificates']})",
            "",
            "| row | sigma | images | " + " | ".join(f"r = {r}" for r in RADII) + " | s/image |",
            "|---" * (len(RADII) + 4) + "|",
        ]
        for row in report["rows"]:
            accuracy = row.get("certified_accuracy")
            cells = (
                " | ".join(f"{100 * accuracy[str(r)]:.1f}" for r in RADII)
                if accuracy
                else " | ".join("-" for _ in RADII)
            )
            lines.append(
                f"| {row['denoiser']['name']} | {row['sigma']:g} | {row['images']} | "
                f"{cells} | {row['seconds_per_image']:.3f} |"
            )
        lines.append("")
    if results.get("training"):
        lines += [
            "## Training",
            "",
            "| checkpoint | epochs | images seen | s | validation |",
            "|---|---|---|---|---|",
        ]
        for t in results["training"]:
            if t.get("reused"):
                continue
            v = t["validation"]
            shown = ", ".join(f"{k} {v[k]:.4g}" for k in ("psnr_denoised", "accuracy") if k in v)
            lines.append(
                f"| {t['name']} | {t['epochs']} | {t['images_seen']:,} | {t['seconds']} | {shown} |"
            )
        lines.append("")
    throughput = results.get("throughput")
    if throughput:
        lines += [
            f"## Throughput ({throughput['device_name'] or throughput['device']}, matmul "
            f"peak {throughput['matmul_peak_gflops']} GFLOP/s)",
            "",
            "| pair | samples/s | % of peak | compiled/s | % of peak | compile s |",
            "|---|---|---|---|---|---|",
        ]
        for row in throughput["rows"]:
            lines.append(
                f"| {row['pair']} | {row['samples_per_s']} | {row['percent_of_peak']} | "
                f"{row['compiled_samples_per_s']} | {row['compiled_percent_of_peak']} | "
                f"{row['compile_s']} |"
            )
        lines.append("")
    lines += [
        "## Goals",
        "",
        "```",
        json.dumps(results.get("goals") or goals(results), indent=1),
        "```",
        "",
        "## Stages",
        "",
    ]
    for stage in results.get("stages", []):
        lines.append(
            f"- {stage['stage']}: {stage['status']} "
            f"({stage.get('seconds', stage.get('reason', ''))})"
        )
    return "\n".join(lines) + "\n"


def _tar_groups(paths: Sequence[Path], limit: int) -> list[list[Path]]:
    groups: list[list[Path]] = []
    size = 0
    for path in sorted(paths):
        bytes_ = path.stat().st_size + 4096
        if not groups or size + bytes_ > limit:
            groups.append([])
            size = 0
        groups[-1].append(path)
        size += bytes_
    return groups


def pack(out: Path, work: Path, status: int = 0) -> list[Path]:
    """Write the output folder: results.json, results.md, log.txt, checkpoints-N.tar."""
    out.mkdir(parents=True, exist_ok=True)
    source = work / "results.json"
    results: dict[str, Any] = (
        json.loads(source.read_text()) if source.exists() else {"stages": [], "mode": None}
    )
    results["exit_status"] = status
    if status in (124, 137):
        results["killed"] = "the hard time limit stopped the run; what it wrote is kept"
    elif status:
        results["killed"] = f"the run exited with status {status}"
    results["certificates_computed"] = finalize(results)
    results.setdefault("goals", goals(results))
    checkpoints = sorted((work / "checkpoints").glob("*.safetensors"))
    written: list[Path] = []
    for number, group in enumerate(_tar_groups(checkpoints, MAX_FILE_BYTES), start=1):
        tar = out / f"checkpoints-{number}.tar"
        with tarfile.open(tar, "w") as archive:
            for path in group:
                archive.add(path, arcname=path.name)
        written.append(tar)
    results["checkpoints"] = {}
    for tar in written:
        with tarfile.open(tar) as archive:
            results["checkpoints"][tar.name] = archive.getnames()
    log = work / "log.txt"
    if log.exists():
        with log.open("rb") as handle:
            handle.seek(max(0, log.stat().st_size - MAX_FILE_BYTES))
            (out / "log.txt").write_bytes(handle.read())
        written.append(out / "log.txt")
    (out / "results.md").write_text(markdown(results))
    written.append(out / "results.md")
    _write_json(out / "results.json", results)
    written.append(out / "results.json")
    if len(written) > MAX_FILES or any(
        p.stat().st_size > MAX_FILE_BYTES + 1_000_000 for p in written
    ):
        raise RuntimeError(f"the output breaks its limits: {[p.name for p in written]}")
    return written


def unpack(source: Path, checkpoints: Path, reports: Path) -> dict[str, Any]:
    """Bring a campaign's output folder into the repository: the checkpoints (cards inside)
    into ``checkpoints``; the certified-accuracy reports, finalized here if they were not,
    as JSON files that ``dsmooth report`` renders, under ``reports``."""
    results = json.loads((source / "results.json").read_text())
    if not results.get("certificates_computed"):
        if not finalize(results):
            raise RuntimeError("scipy is needed to compute the certificates (make install)")
        results["certificates_computed"] = True
        if os.access(source, os.W_OK):
            _write_json(source / "results.json", results)
    checkpoints.mkdir(parents=True, exist_ok=True)
    names = []
    for tar in sorted(source.glob("checkpoints-*.tar")):
        with tarfile.open(tar) as archive:
            archive.extractall(checkpoints, filter="data")
            names += archive.getnames()
    reports.mkdir(parents=True, exist_ok=True)
    written = {}
    for key, stem in (
        ("certified_accuracy", "gpu-certified_accuracy"),
        ("certified_accuracy_big", "gpu-certified_accuracy-big"),
    ):
        if results.get(key) and results[key]["rows"]:
            path = reports / f"{stem}.json"
            _write_json(path, results[key])
            written[key] = str(path)
    if results.get("throughput"):
        path = reports / "gpu-throughput.json"
        _write_json(path, {"benchmark": "throughput", **results["throughput"]})
        written["throughput"] = str(path)
    (reports / "gpu-campaign.md").write_text(markdown(results))
    return {"checkpoints": names, "reports": written, "goals": results.get("goals")}


# --- the wheels and what travels --------------------------------------------------------------


def wheel_pins() -> list[str]:
    """``name==version`` of every wheel, as installed here (so the GPU runs this venv's code)."""
    return [f"{name}=={metadata.version(name)}" for name in WHEELS]


def _git_files(root: Path, *args: str) -> Iterator[Path]:
    listed = subprocess.run(
        ["git", "-C", str(root), "ls-files", "-z", *args], capture_output=True, check=True
    ).stdout
    for name in listed.decode().split("\0"):
        if name and (root / name).is_file() and not (root / name).is_symlink():
            yield root / name


def travel_size(root: Path, carry: Sequence[Path]) -> dict[str, int]:
    """Bytes a device call would send: tracked and untracked-not-ignored files, and ``carry``."""
    tree = sum(p.stat().st_size for p in _git_files(root))
    tree += sum(p.stat().st_size for p in _git_files(root, "--others", "--exclude-standard"))
    carried = sum(
        p.stat().st_size
        for c in carry
        for p in ([c] if c.is_file() else c.rglob("*"))
        if p.is_file()
    )
    return {"tree": tree, "carry": carried, "total": tree + carried, "limit": 64 << 20}


# --- command line -----------------------------------------------------------------------------


def _block(names: Sequence[str]) -> None:
    """Make ``import NAME`` fail here as on a machine without it (a None entry does that)."""
    for name in names:
        if name not in sys.modules:
            sys.modules[name] = None  # type: ignore[assignment]


def _imported() -> list[str]:
    """Top-level modules imported by this process, outside the standard library."""
    tops = {name.split(".")[0] for name, module in sys.modules.items() if module is not None}
    return sorted(t for t in tops - {"__main__", "__mp_main__"} if t not in sys.stdlib_module_names)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.gpu_campaign", description=__doc__.split("\n\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="the campaign (scripts/gpu-campaign.sh runs it)")
    run.add_argument(
        "--shared",
        type=Path,
        required=True,
        help="folder with data/cifar10/... and models/third-party/... (../shared)",
    )
    run.add_argument("--work", type=Path, required=True, help="scratch folder (runs, caches)")
    run.add_argument("--toy", action="store_true", help="a few steps and images on the CPU")
    run.add_argument("--device", help="override the plan's device")
    run.add_argument(
        "--ends-at",
        type=float,
        help="unix time at which the whole script must end (default: now + the plan's budget); "
        "no stage starts in the plan's reserve before it",
    )
    packer = commands.add_parser("pack", help="finalize and write the output folder")
    packer.add_argument("--out", type=Path, required=True)
    packer.add_argument("--work", type=Path, required=True)
    packer.add_argument("--status", type=int, default=0, help="run's exit status")
    final = commands.add_parser("finalize", help="certificates from the counts of results.json")
    final.add_argument("results", type=Path)
    back = commands.add_parser("unpack", help="bring an output folder into the repository")
    back.add_argument("folder", type=Path)
    back.add_argument("--checkpoints", type=Path, default=Path("denoisers/checkpoints"))
    back.add_argument("--reports", type=Path, default=Path("build/benchmarks"))
    commands.add_parser("wheels", help="name==version of the wheels to carry")
    size = commands.add_parser("travel-size", help="bytes a device call would carry")
    size.add_argument("carry", type=Path, nargs="*")
    args = parser.parse_args(argv)

    if args.command == "run":
        _block(BLOCKED)
        plan = TOY if args.toy else FULL
        if args.device:
            plan = dataclasses.replace(plan, device=args.device)
        if plan.device.startswith("cuda") and not torch.cuda.is_available():
            raise SystemExit("no CUDA device: the campaign needs one (--toy runs on the CPU)")
        if plan.device == "cpu":
            from service.execution.devices import configure_cpu_threads

            configure_cpu_threads()
        ends_at = time.time() + plan.budget_s if args.ends_at is None else args.ends_at
        left = ends_at - time.time() - plan.reserve_s
        args.work.mkdir(parents=True, exist_ok=True)
        campaign = Campaign(plan, args.shared, args.work, _now() + left, args.toy)
        campaign.run()
        campaign.results["imports"] = _imported()
        campaign.save()
        print(f"campaign done in {_now() - campaign.started:.0f} s", flush=True)
    elif args.command == "pack":
        for path in pack(args.out, args.work, args.status):
            print(f"{path} ({path.stat().st_size:,} bytes)")
    elif args.command == "finalize":
        results = json.loads(args.results.read_text())
        if not finalize(results):
            raise SystemExit("scipy is not installed here: the certificates need it")
        results["certificates_computed"] = True
        _write_json(args.results, results)
        print(markdown(results))
    elif args.command == "unpack":
        print(json.dumps(unpack(args.folder, args.checkpoints, args.reports), indent=1))
    elif args.command == "wheels":
        print("\n".join(wheel_pins()))
    elif args.command == "travel-size":
        root = Path(__file__).resolve().parents[1]
        sizes = travel_size(root, args.carry)
        for key, value in sizes.items():
            print(f"{key:<6} {value / (1 << 20):7.1f} MiB")
        if sizes["total"] > sizes["limit"]:
            raise SystemExit("over the 64 MiB a device call may carry")


if __name__ == "__main__":
    main()
