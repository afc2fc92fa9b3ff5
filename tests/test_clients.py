"""The generated SDKs against a live server: Python (openapi-python-client), TypeScript."""

from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.api.app import create_app
from service.config import Settings
from service.examples import example_image
from service.testing.live_server import live_server

ROOT = Path(__file__).resolve().parents[1]
TYPESCRIPT = ROOT / "clients/typescript"
sys.path.insert(0, str(ROOT / "clients/python"))

from dsmooth_client import Client  # noqa: E402
from dsmooth_client.api.certification import certify  # noqa: E402
from dsmooth_client.api.jobs import create_job, get_job  # noqa: E402
from dsmooth_client.models import (  # noqa: E402
    Certificate,
    CertifyForm,
    CertifyRequest,
    JobRequest,
    JobState,
    JobView,
    Problem,
)
from dsmooth_client.types import File  # noqa: E402

pytestmark = [pytest.mark.subprocess, pytest.mark.slow]


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with live_server(create_app(Settings(denoiser="none", device="cpu"))) as url:
        yield url


@pytest.fixture(scope="module")
def photo() -> bytes:
    buffer = io.BytesIO()
    example_image("chelsea", size=32).save(buffer, format="PNG")
    return buffer.getvalue()


def test_python_sdk_certifies_an_image(server: str, photo: bytes) -> None:
    body = CertifyRequest(image=base64.b64encode(photo).decode(), n=500, n0=50, sigma=0.12)
    with Client(base_url=server, timeout=120) as client:
        certificate = certify.sync(client=client, body=body)
    assert isinstance(certificate, Certificate)
    assert certificate.n == 500 and certificate.classifier.name == "cifar10-resnet20"
    assert certificate.queries.total == 550


def test_python_sdk_uploads_an_image_as_a_multipart_form(server: str, photo: bytes) -> None:
    """The document describes the multipart body beside JSON; the SDK sends either."""
    image = File(payload=io.BytesIO(photo), file_name="chelsea.png", mime_type="image/png")
    body = CertifyForm(image=image, n=500, n0=50, sigma=0.12)
    with Client(base_url=server, timeout=120) as client:
        response = certify.sync_detailed(client=client, body=body)
    assert response.status_code == 200 and isinstance(response.parsed, Certificate)
    assert response.parsed.n == 500 and response.parsed.queries.total == 550


def test_python_sdk_follows_a_job_to_completion(server: str, photo: bytes) -> None:
    body = JobRequest(image=base64.b64encode(photo).decode(), n=3000, n0=100)
    with Client(base_url=server, timeout=120) as client:
        job = create_job.sync(client=client, body=body)
        assert isinstance(job, JobView) and job.progress.planned == 3100
        for _ in range(1200):
            job = get_job.sync(job.id, client=client)
            assert isinstance(job, JobView)
            if job.state in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED):
                break
            time.sleep(0.1)
    assert job.state == JobState.SUCCEEDED
    assert job.progress.done == 3100 and job.result is not None


def test_python_sdk_surfaces_a_problem_as_a_typed_error(server: str, photo: bytes) -> None:
    body = CertifyRequest(image=base64.b64encode(photo).decode(), n=10**9)
    with Client(base_url=server, timeout=60) as client:
        response = certify.sync_detailed(client=client, body=body)
    assert response.status_code == 422 and isinstance(response.parsed, Problem)
    assert response.parsed.title == "Invalid parameters" and "n:" in response.parsed.detail


def test_python_sdk_is_pip_installable(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path),
         str(ROOT / "clients/python")], capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert list(tmp_path.glob("denoised_smoothing_client-*.whl"))


def _npm(*args: str) -> subprocess.CompletedProcess[str]:
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed")
    return subprocess.run([npm, *args], cwd=TYPESCRIPT, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def typescript_built() -> Path:
    if not (TYPESCRIPT / "node_modules").exists():
        assert _npm("ci", "--no-audit", "--no-fund").returncode == 0
    typecheck = _npm("run", "-s", "typecheck")  # tsc --noEmit
    assert typecheck.returncode == 0, typecheck.stdout + typecheck.stderr
    build = _npm("run", "-s", "build")
    assert build.returncode == 0, build.stdout + build.stderr
    return TYPESCRIPT / "dist/examples/certify.js"


def test_typescript_sdk_certifies_an_image(
    typescript_built: Path, server: str, photo: bytes, tmp_path: Path
) -> None:
    image = tmp_path / "cat.png"
    image.write_bytes(photo)
    node = shutil.which("node")
    assert node is not None
    result = subprocess.run(
        [node, str(typescript_built), server, str(image), "400"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    certificate = json.loads(result.stdout)
    assert certificate["n"] == 400 and certificate["classifier"]["name"] == "cifar10-resnet20"


def test_typescript_sdk_reports_problems(
    typescript_built: Path, server: str, tmp_path: Path
) -> None:
    image = tmp_path / "notes.png"
    image.write_bytes(b"not an image at all")
    result = subprocess.run(
        ["node", str(typescript_built), server, str(image)], capture_output=True, text=True
    )
    assert result.returncode == 1
    assert result.stderr.startswith("problem: 415 Image not accepted")
