"""The Python SDK (#23 item 2): `dsmooth`, a hand-written layer over the generated
`dsmooth_client`: certify from a path or bytes, job events streamed as they happen, problems as
exceptions, the offline check of signed certificates; the README's examples are files that run
against a live server and type-check under mypy --strict (and a typo does not)."""

from __future__ import annotations

import asyncio
import io
import math
import os
import random
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
from PIL import Image

from service.api.app import create_app
from service.core import betting
from service.core.noise import image_digest as service_digest
from service.core.smoothing import lower_confidence_bound, radius_from_p_lower
from service.examples import example_image
from service.imaging import decode_image
from service.testing.live_server import live_server
from tests.test_sdk_typescript import every_byte_image, png, signed_settings

ROOT = Path(__file__).resolve().parents[1]
SDK = ROOT / "clients/python-sdk"
EXAMPLES = SDK / "examples"
PYTHONPATH = [str(SDK / "src"), str(ROOT / "clients/python")]
sys.path[:0] = PYTHONPATH

import dsmooth  # noqa: E402
from dsmooth import DsmoothClient, ProblemError, SignedCertificate, stats  # noqa: E402
from dsmooth.sse import parse  # noqa: E402
from dsmooth_client.models import (  # noqa: E402
    CertifyRequest,
    JobRequest,
    JobState,
    PredictRequest,
)

# --- without a server -------------------------------------------------------------------------


def test_the_arithmetic_is_the_services() -> None:
    rng = random.Random(18)
    cases = [
        (k, n, a)
        for n in (1, 2, 10, 1000, 10**6)
        for k in {0, 1, n // 2, n - 1, n}
        for a in (1e-3, 1e-9)
    ]
    for _ in range(100):
        n = int(10 ** rng.uniform(0, 6.5))
        cases.append((rng.randint(0, n), n, 10 ** rng.uniform(-12, -0.5)))
    for k, n, alpha in cases:
        assert math.isclose(
            stats.clopper_pearson_lower(k, n, alpha),
            lower_confidence_bound(k, n, alpha),
            rel_tol=0,
            abs_tol=1e-12,
        )
    for _ in range(2000):
        p, sigma = rng.uniform(0.5, 1), rng.choice((0.12, 0.25, 0.5, 1.0))
        assert stats.radius_from_p_lower(p, sigma) == radius_from_p_lower(p, sigma)
    for k, n, alpha in [(0, 32, 1e-3), (32, 32, 1e-3), (60, 64, 6e-4), (900, 1000, 1e-4)]:
        bound = stats.betting_lower_bound(k, n, alpha)
        assert bound == float(betting.lower_bound(k, n, alpha))
        if bound > 0:
            assert stats.betting_rejects(k, n, bound, alpha) and betting.rejects(k, n, bound, alpha)


def test_the_options_are_the_generated_requests_fields() -> None:
    """A typed keyword for every field of the request but the image, none more."""
    for options, request in (
        (dsmooth.CertifyOptions, CertifyRequest),
        (dsmooth.PredictOptions, PredictRequest),
        (dsmooth.JobOptions, JobRequest),
    ):
        fields = {f.name for f in attrs.fields(request)} - {"image", "additional_properties"}
        assert set(options.__annotations__) | _inherited(options) == fields, options.__name__


def _inherited(options: type) -> set[str]:
    return {k for base in options.__mro__[1:] for k in getattr(base, "__annotations__", {})}


def test_the_event_parser_follows_the_sse_rules() -> None:
    lines = [
        "event: progress",
        'data: {"a":',
        "data: 1}",
        "",
        ": ping - 2026-01-01",
        "",
        "data:no space",
        "id: 7",
        "",
        "event: end",
        "data: x",
        "",
    ]
    events = list(parse(lines))
    assert [(e.event, e.data, e.id) for e in events] == [
        ("progress", '{"a":\n1}', None),
        ("message", "no space", "7"),
        ("end", "x", "7"),
    ]


def test_image_digests_are_the_services() -> None:
    rgba = Image.new("RGBA", (5, 4), (10, 200, 30, 128))
    wide = Image.frombytes("I;16", (3, 2), bytes(range(12)))
    rotated = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # EXIF orientation: rotate 90 degrees
    example_image("chelsea", size=16).resize((16, 8)).save(rotated, "JPEG", exif=exif)
    files = [png(every_byte_image()), png(rgba), png(wide), rotated.getvalue()]
    for data in files:
        assert dsmooth.image_digest(data) == service_digest(decode_image(data))
    pixels = every_byte_image()
    assert dsmooth.pixels_digest(pixels.tobytes(), 16, 16) == service_digest(decode_image(files[0]))


# --- against a live server --------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with live_server(create_app(signed_settings())) as url:
        yield url


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("photo") / "cat.png"
    path.write_bytes(png(example_image("chelsea", size=32)))
    return path


@pytest.mark.subprocess
@pytest.mark.slow
def test_certify_a_path_or_bytes_and_verify_the_signed_certificate(
    server: str, photo: Path
) -> None:
    with DsmoothClient(server) as client:
        from_path = client.certify(photo, n=300, n0=50, sigma=0.12)
        from_bytes = client.certify(photo.read_bytes(), n=300, n0=50, sigma=0.12)
        assert isinstance(from_path, SignedCertificate)
        assert from_path.document["signature"]["kid"] == client.signing_keys()["keys"][0]["kid"]
        # The same request is the same certificate, only signed again.
        assert from_path.label == from_bytes.label and from_path.radius == from_bytes.radius
        assert client.verify(from_path).valid and client.verify(from_bytes, photo).valid
        assert client.verify(from_path, image_digest="0" * 64).codes == ["image_mismatch"]
        forged = dict(from_path.document, radius=from_path.radius + 0.01)
        assert client.verify(forged).codes == ["bad_signature", "radius_mismatch"]
        with pytest.raises(ProblemError) as problem:
            client.certify(b"not an image", n=100)
        assert problem.value.status == 415 and problem.value.problem.title == "Image not accepted"


@pytest.mark.subprocess
@pytest.mark.slow
def test_job_events_stream_while_the_job_runs(server: str, photo: Path) -> None:
    """Cancelled at its first event: only a stream delivers an event before the job ends."""
    with DsmoothClient(server) as client:
        job = client.create_job(photo, n=200_000, n0=100)
        events = []
        for event in client.events(job.id):
            events.append(event)
            if len(events) == 1:
                assert event.event == "progress" and event.job.state in (
                    JobState.QUEUED,
                    JobState.RUNNING,
                )
                client.cancel_job(job.id)
        assert events[-1].event == "end" and events[-1].job.state == JobState.CANCELLED
        assert events[-1].job.progress.done < events[-1].job.progress.planned == 200_100
        with pytest.raises(ProblemError) as missing:
            list(client.events("no-such-job"))
        assert missing.value.status == 404

        done = client.create_job(photo, n=300, n0=50, sigma=0.12)
        finished = client.wait_for_job(done.id, timeout=300)
        assert isinstance(finished.result, SignedCertificate)
        assert client.verify(finished.result).valid


@pytest.mark.subprocess
@pytest.mark.slow
def test_async_events_stream_too(server: str, photo: Path) -> None:
    async def follow() -> list[dsmooth.JobEvent]:
        client = DsmoothClient(server)
        job = client.create_job(photo, n=300, n0=50, sigma=0.12)
        try:
            return [event async for event in client.aevents(job.id)]
        finally:
            await client.aclose()
            client.close()

    events = asyncio.run(follow())
    assert events[-1].event == "end" and events[-1].job.state == JobState.SUCCEEDED
    assert [e.job.progress.done for e in events] == sorted(e.job.progress.done for e in events)
    result = events[-1].job.result
    assert isinstance(result, SignedCertificate) and result.n == 300


# --- the README's examples --------------------------------------------------------------------

README_EXAMPLES = [EXAMPLES / "certify.py", EXAMPLES / "generated_client.py"]


def test_the_readme_shows_the_example_files_verbatim() -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.DOTALL)
    for example in README_EXAMPLES:
        assert example.read_text() in blocks, f"README.md does not show {example.name} verbatim"


@pytest.mark.subprocess
@pytest.mark.slow
@pytest.mark.parametrize("example", README_EXAMPLES, ids=lambda p: p.name)
def test_the_readme_examples_run(server: str, photo: Path, tmp_path: Path, example: Path) -> None:
    (tmp_path / "cat.png").write_bytes(photo.read_bytes())
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(PYTHONPATH), "DSMOOTH_URL": server}
    result = subprocess.run(
        [sys.executable, str(example)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    label, radius = lines[0].rsplit(" ", 1)
    assert label and float(radius) >= 0
    if example.name == "certify.py":
        assert lines[1] == "valid"
        assert lines[2].startswith("progress ") and lines[-1] == "end 2100 / 2100"


def _mypy(tmp_path: Path, *targets: Path) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "mypy.ini"
    config.write_text(
        "[mypy]\npython_version = 3.11\nstrict = True\n"
        f"mypy_path = {os.pathsep.join(PYTHONPATH)}\n"
        f"cache_dir = {ROOT / 'build/mypy-sdk'}\n"
        # the generated client's own style is openapi-python-client's business
        "[mypy-dsmooth_client.*]\nignore_errors = True\n"
    )
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(config), *map(str, targets)],
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.subprocess
@pytest.mark.slow
def test_the_sdk_and_the_readme_examples_type_check_strictly(tmp_path: Path) -> None:
    result = _mypy(tmp_path, SDK / "src/dsmooth", *README_EXAMPLES)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.subprocess
@pytest.mark.slow
def test_a_typo_in_a_consumer_does_not_type_check(tmp_path: Path) -> None:
    consumer = tmp_path / "consumer.py"
    consumer.write_text(
        "from dsmooth import DsmoothClient\n"
        "from dsmooth_client import Client\n"
        "from dsmooth_client.api.certification import certify\n"
        "from dsmooth_client.models import CertifyRequest\n"
        "client = DsmoothClient('http://127.0.0.1:8000')\n"
        "print(client.certify('cat.png', sigmma=0.25).radius)\n"  # line 6: an option typo
        "print(client.certify('cat.png').radus)\n"  # line 7: a field typo
        "print(client.certify('cat.png', mode='fast').radius)\n"  # line 8: not a mode
        "with Client(base_url='http://127.0.0.1:8000') as plain:\n"  # the old README's example
        "    certify.sync(client=plain, body=CertifyRequest(image=''))\n"  # line 10
    )
    result = _mypy(tmp_path, consumer)
    wrong = {int(line) for line in re.findall(r"consumer\.py:(\d+): error", result.stdout)}
    assert wrong == {6, 7, 8, 10}, result.stdout
