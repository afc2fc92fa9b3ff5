"""``dsmooth bench NAME [ARGS...]``: every benchmark, one subcommand each.

``certify`` and ``denoisers`` are click commands here; the others are the argparse scripts in
``benchmarks/`` (also runnable as ``python -m benchmarks.<module>``), imported only when run and
handed the remaining arguments, so ``dsmooth bench NAME --help`` is the script's own help.
Each prints a table and writes JSON, with its provenance, under ``build/benchmarks/``.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from benchmarks.evaluation import (
    METHODS,
    SIGMAS,
    CertifySettings,
    default_data,
    default_target,
    denoiser_table,
    format_certified_accuracy,
    format_denoiser_table,
    run_certified_accuracy,
)
from service.core.results import SIGMA_MAX

__all__ = ["bench"]

_DATA_HELP = "lossless test set (.npz); default: $DSMOOTH_SHARED_DIR/data/cifar10/... (../shared)"
_TARGET_HELP = "classifier spec NAME[:WEIGHTS]; default: the third-party ResNet-56 in ../shared"
_SIGMAS_HELP = f"repeatable, in (0, 1]; default {' '.join(f'{sigma:g}' for sigma in SIGMAS)}"
_SIGMA = click.FloatRange(0, SIGMA_MAX, min_open=True)


def _write(report: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    click.echo(f"wrote {out}")


def _data(data: Path | None) -> Path:
    path = data or default_data()
    if not path.is_file():
        raise click.BadParameter(
            f"{path} not found (the lossless CIFAR-10 test set)", param_hint="--data"
        )
    return path


@click.group()
def bench() -> None:
    """Every benchmark: each prints a table and writes JSON under build/benchmarks/.

    `dsmooth bench NAME --help` shows a benchmark's options.
    """


# The scripts parse their own arguments: click passes everything after NAME through, --help too.
_SCRIPT: dict[str, Any] = {
    "context_settings": {
        "ignore_unknown_options": True,
        "allow_extra_args": True,
        "help_option_names": [],
    },
}


# name -> (module in benchmarks/, the one line `dsmooth bench --help` shows)
_SCRIPTS = {
    "throughput": ("throughput", "Pipeline samples/s against the reference loop."),
    "workers": ("workers", "Redis: stored-request latency, 1 and 2 workers."),
    "adapters": ("adapters", "Vendor adapters against their fakes: rate, 429s."),
    "confidence-sequences": (
        "confidence_sequences",
        "Sequential bounds: Clopper-Pearson against betting.",
    ),
    "attack": ("attack", "Soundness audit: L2 PGD inside certified radii."),
    "load": ("load", "Load test of a live server: latency, memory."),
    "fairness": ("fairness", "Small requests' latency beside a 10^6-sample job."),
    "queries": ("query_efficiency", "Queries to certify a radius: fixed n or sequential."),
    "photos": ("photos", "ImageNet photos: MobileNetV2 local and via Google, per denoiser."),
}


def _script_command(module: str) -> Callable[[], None]:
    @click.pass_context
    def run(ctx: click.Context) -> None:
        # Imported only now: the scripts' heavy imports are paid by the one that runs.
        importlib.import_module(f"benchmarks.{module}").main(list(ctx.args))

    return run


for _name, (_module, _help) in _SCRIPTS.items():
    bench.command(_name, help=_help, **_SCRIPT)(_script_command(_module))


@bench.command("certify")
@click.option("--classifier", help=_TARGET_HELP)
@click.option(
    "--row",
    "rows",
    multiple=True,
    help=f"repeatable: {', '.join(METHODS)} (the shipped U-Net of each sigma) or a denoiser spec; "
    "default: all four",
)
@click.option("--sigma", "sigmas", type=_SIGMA, multiple=True, help=_SIGMAS_HELP)
@click.option("--data", type=click.Path(dir_okay=False, path_type=Path), help=_DATA_HELP)
@click.option(
    "--images",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="the first IMAGES test images",
)
@click.option("--n0", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--n", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option(
    "--alpha",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.001,
    show_default=True,
)
@click.option("--batch-size", type=click.IntRange(min=1), default=500, show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option(
    "--precision", type=click.Choice(["auto", "fp32", "bf16"]), default="auto", show_default=True
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("build/benchmarks/certified_accuracy.json"),
    show_default=True,
)
def certify_command(
    classifier: str | None,
    rows: tuple[str, ...],
    sigmas: tuple[float, ...],
    data: Path | None,
    images: int,
    n0: int,
    n: int,
    alpha: float,
    batch_size: int,
    device: str,
    precision: str,
    out: Path,
) -> None:
    """Certified accuracy at r = 0, 0.25, 0.5, 0.75, 1 beside the published rows; JSON + PNG."""
    from benchmarks.report import render_report

    settings = CertifySettings(images, n0, n, alpha, batch_size, device, precision)  # type: ignore[arg-type]
    report = run_certified_accuracy(
        classifier or default_target(),
        rows or tuple(METHODS),
        sigmas or SIGMAS,
        _data(data),
        settings,
    )
    click.echo("\n" + format_certified_accuracy(report) + "\n")
    _write(report, out)
    if report["rows"]:
        png, markdown = render_report(out)
        click.echo(f"wrote {png} and {markdown}")


@bench.command("denoisers")
@click.option("--classifier", help=_TARGET_HELP)
@click.option(
    "--denoiser",
    "denoisers",
    multiple=True,
    help="repeatable denoiser spec; default: every shipped CIFAR-10 denoiser",
)
@click.option("--sigma", "sigmas", type=_SIGMA, multiple=True, help=_SIGMAS_HELP)
@click.option("--data", type=click.Path(dir_okay=False, path_type=Path), help=_DATA_HELP)
@click.option("--images", type=click.IntRange(min=1), default=500, show_default=True)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("build/benchmarks/denoisers.json"),
    show_default=True,
)
def denoisers_command(
    classifier: str | None,
    denoisers: tuple[str, ...],
    sigmas: tuple[float, ...],
    data: Path | None,
    images: int,
    out: Path,
) -> None:
    """PSNR and accuracy on denoised noisy copies per denoiser and sigma, with each one's cost."""
    from denoisers.registry import shipped_checkpoints

    specs = denoisers or ("none", *(n for n in shipped_checkpoints() if "-cifar10-s" in n))
    report = denoiser_table(
        classifier or default_target(), specs, sigmas or SIGMAS, _data(data), images
    )
    click.echo("\n" + format_denoiser_table(report) + "\n")
    _write(report, out)
