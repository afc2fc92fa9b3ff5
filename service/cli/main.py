"""``dsmooth``: certify or predict images from the command line.

Usage errors, unreadable images, unknown models and out-of-range parameters end with exit code 2
and one line on stderr.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError
from tqdm import tqdm

from denoisers.registry import (
    FORMATS,
    ModelLoadError,
    UnknownModelError,
    architectures,
    shipped_checkpoints,
)
from service.api.auth import hash_api_key, new_api_key
from service.api.services import signer_for
from service.cli.bench import bench
from service.cli.train import train_classifier_command, train_denoiser_command
from service.config import ApiKey, Settings
from service.core.certifier import Certifier, Progress
from service.core.domain import image_warnings
from service.core.errors import NoDenoiserForSigma, UnknownModel
from service.core.noise import image_digest
from service.core.results import Certificate, CertifyParams, Prediction, PredictParams
from service.core.signing import new_private_key_pem, verify_certificate
from service.examples import EXAMPLES, write_example
from service.execution.pool import ModelPool
from service.imaging import ImageDecodeError, load_image

__all__ = ["cli", "main"]

USAGE_ERROR = 2
_USER_ERRORS = (
    ImageDecodeError,
    UnknownModel,
    UnknownModelError,
    ModelLoadError,
    NoDenoiserForSigma,
    ValidationError,
    ValueError,
)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the click group, turning user errors into one stderr line."""
    try:
        cli.main(args=argv, prog_name="dsmooth", standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as exc:
        _fail(exc.format_message())
    except _USER_ERRORS as exc:
        _fail(_one_line(exc))


def _fail(message: str) -> None:
    click.echo(f"dsmooth: error: {message}", err=True)
    sys.exit(USAGE_ERROR)


def _one_line(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'parameters'}: {err['msg']}"
            for err in exc.errors()
        )
    return " ".join(str(exc).split())


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Certified robustness for image classifiers by denoised randomized smoothing."""


cli.add_command(train_classifier_command)
cli.add_command(train_denoiser_command)
cli.add_command(bench)


def _sampling_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by ``certify`` and ``predict``; unset ones take the schema defaults."""
    options = [
        click.argument("image", type=click.Path(path_type=Path)),
        click.option(
            "--classifier",
            help="classifier spec NAME[:WEIGHTS], or a model file onnx:PATH, torchscript:PATH, "
            "tflite:PATH (its card beside it or inline: PATH?input_size=224&...) "
            "(default: settings)",
        ),
        click.option(
            "--denoiser",
            help="denoiser spec NAME[:WEIGHTS] (default: the default denoiser's sibling trained "
            "for --sigma; for an ImageNet classifier, the photo denoiser's)",
        ),
        click.option("--sigma", type=float, help="noise level in (0, 1] pixel units [0.25]"),
        click.option("--n", "n", type=int, help="estimation samples [10000]"),
        click.option("--alpha", type=float, help="failure probability [0.001]"),
        click.option("--device", help="auto, cpu, cuda, cuda:N (default: settings)"),
        click.option("--batch-size", type=int, help="noisy copies per forward pass"),
        click.option("--json", "as_json", is_flag=True, help="print the result as JSON"),
        click.option("--progress/--no-progress", default=None, help="progress bar on stderr"),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _given(**values: Any) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def _certifier(
    classifier: str | None,
    denoiser: str | None,
    device: str | None,
    batch_size: int | None,
    sigma: float,
    shape: tuple[int, ...],
) -> Certifier:
    # The models given on the command line (names or NAME:WEIGHTS) become the pool's defaults;
    # the denoiser, as in the gateway, defaults to the default's sibling trained for sigma (and
    # with none trained for it, NoDenoiserForSigma lists the sigmas there are).
    overrides = _given(
        classifier=classifier, denoiser=denoiser, device=device, batch_size=batch_size
    )
    settings = Settings(**overrides)
    pool = ModelPool(settings)
    name = pool.default_classifier
    chosen = pool.denoiser_for(pool.default_denoiser if denoiser else None, sigma, name)
    sampler = pool.local_sampler(name, chosen)
    warnings = image_warnings(name, pool.domain(name), shape) + pool.sigma_warnings(chosen, sigma)
    return Certifier(sampler, settings.secret_bytes, warnings=warnings)


class _Bar:
    """A tqdm bar fed by the pipeline's (done, planned) progress callbacks."""

    def __init__(self, enabled: bool | None) -> None:
        # enabled=None lets tqdm decide: shown on a terminal, hidden in pipes and logs.
        self.bar = tqdm(total=0, unit="sample", disable=None if enabled is None else not enabled)

    def __call__(self, done: int, planned: int) -> None:
        self.bar.total = planned
        self.bar.update(done - self.bar.n)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.close()


@cli.command()
@_sampling_options
@click.option("--n0", type=int, help="selection samples [100]")
@click.option(
    "--candidate",
    type=click.Choice(["noisy", "clean"]),
    help="candidate class from n0 noisy samples or from the clean image [noisy]",
)
def certify(
    image: Path,
    classifier: str | None,
    denoiser: str | None,
    sigma: float | None,
    n: int | None,
    alpha: float | None,
    device: str | None,
    batch_size: int | None,
    as_json: bool,
    progress: bool | None,
    n0: int | None,
    candidate: str | None,
) -> None:
    """Certify IMAGE: the smoothed label and the L2 radius within which it cannot change."""
    params = CertifyParams(**_given(sigma=sigma, n=n, alpha=alpha, n0=n0, candidate=candidate))
    pixels = load_image(image)
    certifier = _certifier(
        classifier, denoiser, device, batch_size, params.sigma, tuple(pixels.shape)
    )
    with _Bar(progress) as bar:
        result = asyncio.run(certifier.certify(pixels, params, bar))
    _print(signer_for(Settings()).signed(result), as_json)


@cli.command()
@_sampling_options
def predict(
    image: Path,
    classifier: str | None,
    denoiser: str | None,
    sigma: float | None,
    n: int | None,
    alpha: float | None,
    device: str | None,
    batch_size: int | None,
    as_json: bool,
    progress: bool | None,
) -> None:
    """Predict IMAGE's smoothed label, abstaining when the vote is not significant at alpha."""
    params = PredictParams(**_given(sigma=sigma, n=n, alpha=alpha))
    pixels = load_image(image)
    certifier = _certifier(
        classifier, denoiser, device, batch_size, params.sigma, tuple(pixels.shape)
    )
    with _Bar(progress) as bar:
        result = asyncio.run(certifier.predict(pixels, params, bar))
    _print(result, as_json)


@cli.command()
@click.option("--out", type=click.Path(path_type=Path), default=Path("example.png"))
@click.option("--name", type=click.Choice(EXAMPLES), default="chelsea")
@click.option("--size", type=click.IntRange(min=8), default=32, help="side in pixels")
def example(out: Path, name: str, size: int) -> None:
    """Write an example photo (from scikit-image) as a square PNG."""
    click.echo(write_example(out, name, size))


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--example", type=click.Path(path_type=Path), help="image for the curl example")
@click.option("--log-level", default="info", show_default=True)
def serve(host: str, port: int, example: Path | None, log_level: str) -> None:
    """Run the REST gateway (settings from DSMOOTH_* variables and .env)."""
    import uvicorn

    from service.api.app import create_app

    settings = Settings()
    _observe(settings, log_level, "dsmooth-gateway")
    app = create_app(settings)
    image = example or Path("example.png")
    click.echo(
        f"serving on http://{host}:{port} (API docs: http://{host}:{port}/docs). Try:\n"
        f"  curl -s -F image=@{image} -F n=1000 -F sigma=0.25 http://{host}:{port}/v1/certify\n",
        err=True,
    )
    # SIGTERM: stop accepting, give in-flight requests shutdown_timeout_s, then cancel them
    # (sampling stops at the next chunk); unfinished jobs are marked failed by the shutdown.
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        log_config=None,  # uvicorn's lines go through our handler (text or JSON)
        access_log=False,  # ours has the request id, key name and queries
        timeout_graceful_shutdown=int(settings.shutdown_timeout_s),
    )


def _observe(settings: Settings, level: str, service: str) -> None:
    """Logs as DSMOOTH_LOG_FORMAT says; spans exported where DSMOOTH_OTEL asks for them."""
    from service.observability import configure_logging, start_tracing

    configure_logging(settings.log_format, level)
    if settings.otel:
        start_tracing(service)


@cli.command()
@click.option("--name", default=socket.gethostname(), show_default=True,
              help="consumer name in the group (unique per worker)")  # fmt: skip
@click.option("--batch", type=click.IntRange(min=1), default=8, show_default=True,
              help="chunk tasks taken at once (run in shared forward passes)")  # fmt: skip
@click.option("--reclaim-idle-ms", type=click.IntRange(min=100), default=30_000, show_default=True,
              help="take over tasks a dead worker left unacknowledged this long")  # fmt: skip
def worker(name: str | None, batch: int, reclaim_idle_ms: int) -> None:
    """Run chunk tasks from the Redis Stream (DSMOOTH_REDIS_URL) until SIGTERM or Ctrl-C.

    Redis outages are waited out (reconnecting with backoff); a task that crashed workers
    DSMOOTH_STREAM_MAX_DELIVERIES times goes to the dead-letter stream."""
    from service.distributed.consumer import StreamConsumer
    from service.distributed.redis_store import connect_redis
    from service.execution.pool import ModelPool

    settings = Settings()
    if not settings.redis_url:
        raise click.UsageError("a worker needs DSMOOTH_REDIS_URL")
    _observe(settings, "info", "dsmooth-worker")

    async def main() -> None:
        redis = connect_redis(settings.redis_url or "")
        pool = ModelPool(settings)
        await asyncio.to_thread(pool.warm_up)
        consumer = StreamConsumer(
            redis, pool, name, batch, reclaim_idle_ms, settings.vote_ttl_seconds,
            max_deliveries=settings.stream_max_deliveries,
        )  # fmt: skip
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)  # finish the tasks in hand, then exit
        click.echo(f"worker {consumer.name} on {pool.device}, waiting for chunks", err=True)
        try:
            await consumer.run(stop)
        finally:
            pool.close()
            await redis.aclose()
        click.echo(
            f"worker {consumer.name} stopped after {consumer.done} chunks "
            f"({consumer.dead} dead-lettered)",
            err=True,
        )

    asyncio.run(main())


@cli.command("worker-health")
@click.option("--name", default=socket.gethostname(), show_default=True)
@click.option("--within", type=float, default=30.0, show_default=True, help="seconds")
def worker_health(name: str, within: float) -> None:
    """Exit 0 when worker NAME sent a heartbeat within the last WITHIN seconds (healthchecks)."""
    from service.distributed.client import workers_alive
    from service.distributed.redis_store import connect_redis

    settings = Settings()
    if not settings.redis_url:
        raise click.UsageError("needs DSMOOTH_REDIS_URL")

    async def alive() -> bool:
        redis = connect_redis(settings.redis_url or "")
        try:
            return name in await workers_alive(redis, within)
        finally:
            await redis.aclose()

    if not asyncio.run(alive()):
        click.echo(f"worker {name}: no heartbeat within {within:g} s", err=True)
        sys.exit(1)
    click.echo(f"worker {name}: alive")


@cli.command("new-api-key")
@click.option("--name", required=True, help="who gets the key")
@click.option("--daily-queries", type=click.IntRange(min=0), help="daily query budget")
@click.option(
    "--monthly-usd",
    type=click.FloatRange(min=0, max=1e12),
    help="monthly spend limit on paid classifiers",
)
def new_api_key_command(name: str, daily_queries: int | None, monthly_usd: float | None) -> None:
    """Make an API key: give the key to its holder, put the JSON entry in DSMOOTH_API_KEYS."""
    key = new_api_key()
    entry = ApiKey(
        name=name, sha256=hash_api_key(key), daily_queries=daily_queries, monthly_usd=monthly_usd
    )
    click.echo(f"key (shown once): {key}")
    click.echo(f"DSMOOTH_API_KEYS entry: {entry.model_dump_json()}")


@cli.command("new-signing-key")
def new_signing_key_command() -> None:
    """Make an Ed25519 signing key (PEM) for DSMOOTH_SIGNING_KEY."""
    click.echo(new_private_key_pem().decode(), nl=False)


@cli.command("signing-keys")
def signing_keys_command() -> None:
    """Print the public keys (JWKS) that verify this configuration's certificates, as
    GET /v1/signing-keys serves them."""
    click.echo(json.dumps(signer_for(Settings()).jwks(), indent=2))


@cli.command()
@click.argument("certificate", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--key", "keys", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              required=True, help="the JWKS from GET /v1/signing-keys (or one JWK)")  # fmt: skip
@click.option("--image", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="also check that this is the certified image")  # fmt: skip
def verify(certificate: Path, keys: Path, image: Path | None) -> None:
    """Check a certificate offline: its signature, its arithmetic (the bound recomputed from
    the counts, the radius from the bound) and, with --image, the image. Exit 1 if invalid."""
    try:
        document = json.loads(certificate.read_text())
        key_set = json.loads(keys.read_text())
    except (OSError, ValueError) as exc:
        raise click.UsageError(f"cannot read the certificate or the keys: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(key_set, dict):
        raise click.UsageError("the certificate and the keys must be JSON objects")
    digest = image_digest(load_image(image)) if image is not None else None
    problems = verify_certificate(document, key_set, digest)
    if problems:
        for problem in problems:
            click.echo(f"invalid: {problem}", err=True)
        sys.exit(1)
    checked = "signature, arithmetic" + (", image" if image is not None else "")
    kid = document["signature"]["kid"]
    click.echo(f"valid ({checked}; key {kid}): {document.get('label')} at radius "
               f"{document.get('radius')}")  # fmt: skip


@cli.command()
@click.argument(
    "benches", nargs=-1, required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
)  # fmt: skip
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", help="file stem of the outputs (default: the JSON's, or 'merged')")
def report(benches: tuple[Path, ...], out_dir: Path | None, name: str | None) -> None:
    """Render certified-accuracy benchmark JSONs as a PNG plot and a markdown table.

    Several JSONs of one setting (rows measured in separate runs) are merged, and the merged
    report is written beside the plot."""
    from benchmarks.report import render_report

    try:
        png, markdown = render_report(benches, out_dir, name)
    except (json.JSONDecodeError, KeyError) as exc:
        raise click.ClickException(f"not a benchmark JSON ({exc})") from exc
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    click.echo(f"wrote {png} and {markdown}")


@cli.command()
def models() -> None:
    """List the model architectures, the model file formats and the shipped checkpoints.

    "ready" means it loads here without a file: no download, nothing to give."""
    for arch in sorted(architectures().values(), key=lambda a: (a.kind, a.name)):
        missing = None if arch.needs_weights else arch.unavailable()
        weights = "needs :WEIGHTS" if arch.needs_weights or missing else "ready"
        note = f" [{missing}]" if missing else ""
        click.echo(f"{arch.kind:<10} {arch.name:<16} {weights:<14} {arch.description}{note}")
    for fmt, description in FORMATS.items():
        click.echo(f"{'classifier':<10} {fmt:<16} {'needs :PATH':<14} {description}")
    for name in shipped_checkpoints():
        click.echo(f"{'shipped':<10} {name}")


def _print(result: Certificate | Prediction, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(result.model_dump(mode="json"), indent=2))
        return
    top = ", ".join(f"{c.label} {c.count}" for c in result.top_counts)
    if isinstance(result, Certificate):
        verdict = (
            f"abstain (candidate {result.candidate}, p_lower {result.p_lower:.4f} < 0.5)"
            if result.abstained
            else f"{result.label}, certified radius {result.radius:.4f} "
            f"(p_lower {result.p_lower:.4f})"
        )
        samples = f"n0 {result.n0} ({result.candidate_source}), n {result.n}"
    else:
        verdict = (
            f"abstain (p = {result.p_value:.3g} > alpha)"
            if result.abstained
            else f"{result.label} (p = {result.p_value:.3g})"
        )
        samples = f"n {result.n}"
    lines = [
        f"result      {verdict}",
        f"votes       {top}",
        f"sampling    sigma {result.sigma}, {samples}, alpha {result.alpha}",
        f"models      classifier {result.classifier.name} ({result.classifier.version}), "
        f"denoiser {result.denoiser.name} ({result.denoiser.version})",
        f"ran on      {result.device}, {result.precision}, {result.timings.total_s:.2f} s",
        *(f"warning     {warning}" for warning in result.warnings),
    ]
    click.echo("\n".join(lines))
