"""Release-ready SDKs (#23 item 3): every package carries the service's version, `make clients`
stamps it, the CHANGELOG has the release, and the artifacts build: wheels and sdists by
`python -m build`, installable in a bare environment without the service (no torch)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest

from service.core.signing import Signer, new_private_key_pem
from service.core.smoothing import lower_confidence_bound, radius_from_p_lower

ROOT = Path(__file__).resolve().parents[1]
CLIENTS = ROOT / "clients"
sys.path.insert(0, str(CLIENTS))

from stamp_version import service_version, stamp  # noqa: E402

VERSION = service_version(ROOT)


def _toml(path: Path) -> dict:
    with path.open("rb") as file:
        return tomllib.load(file)


def _versions(clients: Path) -> dict[str, str]:
    sdk = _toml(clients / "python-sdk/pyproject.toml")["project"]
    lock = json.loads((clients / "typescript/package-lock.json").read_text())
    (pin,) = [d for d in sdk["dependencies"] if d.startswith("denoised-smoothing-client")]
    found = {
        "dsmooth": sdk["version"],
        "dsmooth's pin": pin.removeprefix("denoised-smoothing-client=="),
        "dsmooth.__version__": re.findall(
            r'"(.*)"', (clients / "python-sdk/src/dsmooth/_version.py").read_text()
        )[0],
        "package.json": json.loads((clients / "typescript/package.json").read_text())["version"],
        "package-lock.json": lock["version"],
        "package-lock.json root": lock["packages"][""]["version"],
        "version.ts": re.findall(r'"(.*)"', (clients / "typescript/src/version.ts").read_text())[0],
    }
    if (clients / "python/pyproject.toml").exists():
        found["denoised-smoothing-client"] = _toml(clients / "python/pyproject.toml")["tool"][
            "poetry"
        ]["version"]
        found["openapi.json"] = json.loads((clients / "openapi.json").read_text())["info"][
            "version"
        ]
    return found


def test_every_package_carries_the_services_version() -> None:
    versions = _versions(CLIENTS)
    assert set(versions.values()) == {VERSION}, versions


def test_make_clients_stamps_a_new_version_everywhere(tmp_path: Path) -> None:
    copy = tmp_path / "clients"
    for part in (
        "python-sdk/pyproject.toml",
        "python-sdk/src/dsmooth/_version.py",
        "typescript/package.json",
        "typescript/package-lock.json",
        "typescript/src/version.ts",
    ):
        (copy / part).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(CLIENTS / part, copy / part)
    stamp("9.8.7", copy)
    assert set(_versions(copy).values()) == {"9.8.7"}
    stamp(VERSION, copy)  # and back: byte for byte what is committed
    for path in copy.rglob("*"):
        if path.is_file():
            assert path.read_bytes() == (CLIENTS / path.relative_to(copy)).read_bytes(), path


def test_the_changelog_and_the_readme_describe_the_release() -> None:
    changelog = (CLIENTS / "CHANGELOG.md").read_text()
    assert f"\n## {VERSION}\n" in changelog
    readme = (ROOT / "README.md").read_text()
    for install in (
        "pip install dsmooth",
        "npm install denoised-smoothing-client",
        "make clients-dist",
    ):
        assert install in readme, install
    makefile = (ROOT / "Makefile").read_text()
    assert "clients/stamp_version.py" in makefile and "npm pack" in makefile


@pytest.mark.subprocess
@pytest.mark.slow
def test_the_python_packages_build_and_install_without_the_service(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    for project in ("python", "python-sdk"):
        built = subprocess.run(
            [sys.executable, "-m", "build", "--outdir", str(dist), str(CLIENTS / project)],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    names = sorted(p.name for p in dist.iterdir())
    assert names == sorted(
        [
            f"denoised_smoothing_client-{VERSION}-py3-none-any.whl",
            f"denoised_smoothing_client-{VERSION}.tar.gz",
            f"dsmooth-{VERSION}-py3-none-any.whl",
            f"dsmooth-{VERSION}.tar.gz",
        ]
    ), names
    with zipfile.ZipFile(dist / f"dsmooth-{VERSION}-py3-none-any.whl") as wheel:
        files = set(wheel.namelist())
        metadata = wheel.read(f"dsmooth-{VERSION}.dist-info/METADATA").decode()
    for module in ("__init__", "client", "verify", "stats", "sse", "_version"):
        assert f"dsmooth/{module}.py" in files, module
    assert "dsmooth/py.typed" in files
    assert f"Requires-Dist: denoised-smoothing-client=={VERSION}" in metadata
    # Nothing the build wrote may linger in the tree (`make clients-check` would see it).
    status = subprocess.run(
        ["git", "status", "--porcelain", "--", "clients"], cwd=ROOT, capture_output=True, text=True
    ).stdout
    assert "egg-info" not in status and "build/" not in status, status

    # A bare environment: the two wheels and their dependencies, no service, no torch.
    environment = tmp_path / "env"
    venv.create(environment, with_pip=True)
    python = environment / "bin/python"
    installed = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--find-links",
            str(dist),
            f"dsmooth=={VERSION}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    signer = Signer.from_pem(new_private_key_pem())
    document = {
        "label": "cat",
        "abstained": False,
        "sigma": 0.25,
        "p_lower": 0.9,
        "radius": 0.320387,
        "bound": {"kind": "clopper-pearson", "alpha": 0.001, "successes": 950, "trials": 1000},
    }
    document["p_lower"] = lower_confidence_bound(950, 1000, 0.001)
    document["radius"] = radius_from_p_lower(document["p_lower"], 0.25)
    document["signature"] = signer.sign(document)
    script = (
        "import json, sys, dsmooth\n"
        "assert 'torch' not in sys.modules and 'numpy' not in sys.modules\n"
        "document, keys = json.loads(sys.argv[1]), json.loads(sys.argv[2])\n"
        "print(dsmooth.__version__, dsmooth.verify_certificate(document, keys).codes,\n"
        "      dsmooth.verify_certificate(dict(document, label='dog'), keys).codes)\n"
    )
    result = subprocess.run(
        [str(python), "-c", script, json.dumps(document), json.dumps(signer.jwks())],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [VERSION, "[]", "['bad_signature']"]
