"""The TypeScript SDK as a consumer gets it (#23 item 1): the packed tarball carries its
declarations, so a consumer's `tsc` type-checks against them (a field typo fails); job events
stream as an async iterator; its arithmetic, digests and Python-style messages agree with the
Python SDK and the service. The helpers here also serve tests/test_sdk_verify.py."""

from __future__ import annotations

import base64
import io
import json
import math
import random
import re
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from service.api.app import create_app
from service.config import Settings
from service.core.noise import image_digest
from service.core.signing import new_private_key_pem
from service.examples import example_image
from service.imaging import decode_image
from service.testing.live_server import live_server

ROOT = Path(__file__).resolve().parents[1]
TYPESCRIPT = ROOT / "clients/typescript"
HARNESS = TYPESCRIPT / "dist/test/harness.js"
sys.path[:0] = [str(ROOT / "clients/python-sdk/src"), str(ROOT / "clients/python")]

from dsmooth import stats  # noqa: E402

pytestmark = [pytest.mark.subprocess, pytest.mark.slow]


# --- helpers (also used by tests/test_sdk_verify.py) ------------------------------------------


def npm(
    *args: str, cwd: Path = TYPESCRIPT, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    executable = shutil.which("npm")
    if executable is None:
        pytest.skip("npm is not installed")
    return subprocess.run(
        [executable, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def build_typescript() -> Path:
    """`npm ci` (once) and `tsc`: dist/src (the package), dist/test/harness.js."""
    if not (TYPESCRIPT / "node_modules").exists():
        installed = npm("ci", "--no-audit", "--no-fund")
        assert installed.returncode == 0, installed.stderr
    built = npm("run", "-s", "build")
    assert built.returncode == 0, built.stdout + built.stderr
    return HARNESS


def harness(request: dict[str, Any], timeout: float = 300) -> Any:
    """One request to the TypeScript SDK (test/harness.ts), its JSON answer."""
    node = shutil.which("node")
    assert node is not None
    result = subprocess.run(
        [node, str(HARNESS)],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def signed_settings(**fields: Any) -> Settings:
    return Settings(
        denoiser="none", device="cpu", signing_key=new_private_key_pem().decode(), **fields
    )


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def every_byte_image() -> Image.Image:
    """16 x 16 RGB pixels holding every byte value in every channel."""
    values = bytes(range(256))
    rgb = bytes(b for i in range(256) for b in (values[i], values[255 - i], values[(i * 7) % 256]))
    return Image.frombytes("RGB", (16, 16), rgb)


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def typescript() -> Path:
    return build_typescript()


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with live_server(create_app(signed_settings())) as url:
        yield url


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("photo") / "cat.png"
    path.write_bytes(png(example_image("chelsea", size=32)))
    return path


# --- the package a consumer installs ----------------------------------------------------------

CONSUMER_OK = """
import {
  DsmoothClient, ProblemError, verifyCertificate,
  type Certificate, type JobEvent, type Verdict,
} from "denoised-smoothing-client";

export async function run(image: Uint8Array): Promise<number> {
  const client = new DsmoothClient({ baseUrl: "http://127.0.0.1:8000" });
  try {
    const certificate: Certificate = await client.certify(image, { n: 1000, sigma: 0.25 });
    const verdict: Verdict = await verifyCertificate(certificate, await client.signingKeys());
    const codes: string[] = verdict.reasons.map((reason) => reason.code);
    const job = await client.createJob(image, { n: 2000, mode: "sequential" });
    for await (const ev of client.events(job.id)) {
      const event: JobEvent = ev;
      if (event.event === "end") return event.job.progress.done + codes.length;
    }
    return certificate.radius + (certificate.bound?.successes ?? 0);
  } catch (error) {
    if (error instanceof ProblemError) return error.status;
    throw error;
  }
}
"""

# Each line must fail: a field typo on a result, an option typo, a wrong option type.
CONSUMER_TYPOS = {
    "certificate.radus": "const r: number = (await client.certify(image)).radus;",
    "option nn": "await client.certify(image, { nn: 1000 });",
    "mode": 'await client.certify(image, { mode: "fast" });',
}


def _consumer(root: Path, tarball: Path, *, node_types: bool) -> Path:
    """A scratch project that installs the tarball, as a consumer does."""
    root.mkdir()
    (root / "package.json").write_text(
        json.dumps({"name": "consumer", "private": True, "type": "module"})
    )
    packages = [str(tarball)] + (["@types/node@20.19.43"] if node_types else [])
    installed = npm(
        "install",
        "--prefer-offline",
        "--no-audit",
        "--no-fund",
        "--ignore-scripts",
        *packages,
        cwd=root,
    )
    assert installed.returncode == 0, installed.stderr
    options = (
        {"module": "NodeNext", "moduleResolution": "NodeNext", "types": ["node"]}
        if node_types
        # a bundler project for the browser: no Node types at all
        else {
            "module": "ESNext",
            "moduleResolution": "Bundler",
            "types": [],
            "lib": ["ES2022", "DOM", "DOM.Iterable"],
        }
    )
    # The Node project skips library checks (the usual setting, under which the missing
    # declarations went unnoticed); the browser one checks the package's declarations too.
    tsconfig = {
        "compilerOptions": {
            "target": "ES2022",
            "strict": True,
            "noEmit": True,
            "skipLibCheck": node_types,
            **options,
        }
    }
    (root / "tsconfig.json").write_text(json.dumps(tsconfig))
    return root


def _tsc(project: Path, source: str) -> subprocess.CompletedProcess[str]:
    (project / "consumer.ts").write_text(source)
    tsconfig = json.loads((project / "tsconfig.json").read_text())
    tsconfig["files"] = ["consumer.ts"]
    (project / "tsconfig.json").write_text(json.dumps(tsconfig))
    tsc = TYPESCRIPT / "node_modules/typescript/bin/tsc"
    node = shutil.which("node")
    assert node is not None
    return subprocess.run(
        [node, str(tsc), "-p", str(project)], capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def tarball(typescript: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pack")
    # `npm pack` alone builds too (prepack); the fixture has just built, so skip the scripts.
    packed = npm("pack", "--ignore-scripts", "--pack-destination", str(out))
    assert packed.returncode == 0, packed.stderr
    (path,) = out.glob("denoised-smoothing-client-*.tgz")
    return path


def test_the_tarball_carries_the_declarations_and_nothing_else(tarball: Path) -> None:
    version = json.loads((TYPESCRIPT / "package.json").read_text())["version"]
    assert tarball.name == f"denoised-smoothing-client-{version}.tgz"
    with tarfile.open(tarball) as archive:
        names = set(archive.getnames())
        manifest = json.load(archive.extractfile("package/package.json"))  # type: ignore[arg-type]
    for module in ("index", "schema", "verify", "stats", "sse", "python", "version"):
        assert f"package/dist/src/{module}.d.ts" in names, module
        assert f"package/dist/src/{module}.js" in names, module
    assert "package/README.md" in names
    assert not [
        n
        for n in names
        if "/test/" in n or "/examples/" in n or (n.endswith(".ts") and not n.endswith(".d.ts"))
    ]
    assert manifest["exports"]["."]["types"] == "./dist/src/index.d.ts"


@pytest.mark.parametrize("node_types", [True, False], ids=["node", "browser-bundler"])
def test_a_consumer_type_checks_against_the_installed_package(
    tarball: Path, tmp_path: Path, node_types: bool
) -> None:
    project = _consumer(tmp_path / "consumer", tarball, node_types=node_types)
    ok = _tsc(project, CONSUMER_OK)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    # Every typo must be an error of its own line (before the fix the package's types did not
    # resolve: TS2307, or with skipLibCheck `any`, and typos type-checked).
    lines = "".join(f"    {line}\n" for line in CONSUMER_TYPOS.values())
    source = CONSUMER_OK.replace("    const verdict", lines + "    const verdict")
    failed = _tsc(project, source)
    assert failed.returncode != 0 and "TS2307" not in failed.stdout, failed.stdout
    first = source.splitlines().index(f"    {next(iter(CONSUMER_TYPOS.values()))}") + 1
    wrong = {int(m) for m in re.findall(r"consumer\.ts\((\d+),\d+\): error TS", failed.stdout)}
    assert wrong == set(range(first, first + len(CONSUMER_TYPOS))), failed.stdout
    if node_types:  # the README's example, as a Node consumer writes it
        readme = (ROOT / "README.md").read_text()
        (example,) = [
            block
            for block in re.findall(r"```ts\n(.*?)```", readme, flags=re.DOTALL)
            if "npm install denoised-smoothing-client" in block
        ]
        checked = _tsc(project, example)
        assert checked.returncode == 0, checked.stdout + checked.stderr


# --- the same arithmetic, digests and messages as the Python SDK ------------------------------


def test_the_arithmetic_matches_the_python_sdk(typescript: Path) -> None:
    rng = random.Random(23)
    cp = [
        (k, n, a)
        for n in (1, 2, 10, 500, 10**5, 10**7)
        for k in {0, 1, n // 2, n - 1, n}
        for a in (1e-3, 6.1e-4, 1e-9)
    ]
    for _ in range(150):
        n = int(10 ** rng.uniform(0, 7))
        cp.append((rng.randint(0, n), n, 10 ** rng.uniform(-12, -0.5)))
    ppf = [rng.uniform(0, 1) for _ in range(300)] + [1e-300, 1e-20, 0.5, 1 - 1e-16, 0.975]
    betting = [
        (k, n, a)
        for n in (32, 64, 1000, 10**5)
        for k in (0, n // 3, n - 2, n)
        for a in (1e-3, 1.5e-4)
    ]
    radius = [(rng.uniform(0.4, 1), rng.choice((0.12, 0.25, 0.5, 1.0))) for _ in range(2000)]
    answer = harness({"op": "stats", "cp": cp, "ppf": ppf, "betting": betting, "radius": radius})
    for (k, n, a), value in zip(cp, answer["cp"], strict=True):
        assert math.isclose(
            value, stats.clopper_pearson_lower(k, n, a), rel_tol=1e-12, abs_tol=1e-15
        ), (k, n, a)
    for p, value in zip(ppf, answer["ppf"], strict=True):
        expected = stats.norm_ppf(p)
        assert value == expected or math.isclose(value, expected, rel_tol=1e-14), p
    for (k, n, a), (bound, rejected) in zip(betting, answer["betting"], strict=True):
        assert abs(bound - stats.betting_lower_bound(k, n, a)) <= 2**-40, (k, n, a)
        assert rejected in (None, True)
    mismatches = [
        pair
        for pair, value in zip(radius, answer["radius"], strict=True)
        if value != stats.radius_from_p_lower(*pair)
    ]
    assert not mismatches


def test_python_style_messages_format_as_python_does(typescript: Path) -> None:
    rng = random.Random(5)
    floats = [
        0.0,
        -0.0,
        1.0,
        0.1,
        1e-4,
        1e-5,
        1.5e-7,
        1e15,
        1e16,
        123456789012345678.0,
        5e-324,
        1.7976931348623157e308,
        0.198386,
        0.9508571372515131,
        2.5,
        -3.25e-12,
    ]
    floats += [rng.uniform(-1, 1) * 10 ** rng.randint(-30, 30) for _ in range(500)]
    values = [
        "kid-1",
        "it's",
        'say "hi"',
        "both ' and \"",
        "tab\there",
        "back\\slash",
        None,
        True,
        3,
        [1, "a"],
        {"k": None},
    ]
    answer = harness({"op": "format", "floats": floats, "values": values})
    assert answer["floats"] == [repr(f) for f in floats]
    assert answer["values"] == [repr(v) for v in values]


def test_the_pixels_digest_is_the_services(typescript: Path) -> None:
    images = [every_byte_image(), example_image("chelsea", size=32)]
    expected = [image_digest(decode_image(png(image))) for image in images]
    encoded = [
        {
            "width": im.width,
            "height": im.height,
            "rgb": base64.b64encode(im.convert("RGB").tobytes()).decode(),
        }
        for im in images
    ]
    assert harness({"op": "digest", "images": encoded}) == expected
    assert (
        harness({"op": "version"})
        == json.loads((TYPESCRIPT / "package.json").read_text())["version"]
    )


# --- against a live server --------------------------------------------------------------------


def test_job_events_arrive_as_an_async_iterator_while_the_job_runs(
    typescript: Path, server: str, photo: Path
) -> None:
    # The harness cancels the job at its first progress event: a client that got the events
    # only once the job had ended could not cancel it any more.
    answer = harness({"op": "events", "baseUrl": server, "image": str(photo), "n": 200_000})
    events = answer["events"]
    assert answer["missing"].startswith("404 "), answer["missing"]
    assert [e["event"] for e in events[:1]] == ["progress"] and events[-1]["event"] == "end"
    assert all(e["event"] == "progress" for e in events[:-1])
    last = events[-1]["job"]
    assert last["state"] == "cancelled", last
    assert last["progress"]["done"] < last["progress"]["planned"] == 200_100


def test_the_typescript_client_certifies_and_verifies(
    typescript: Path, server: str, photo: Path
) -> None:
    answer = harness({"op": "certify-and-verify", "baseUrl": server, "image": str(photo), "n": 300})
    assert (
        answer["certificate"]["n"] == 300 and answer["certificate"]["signature"]["alg"] == "EdDSA"
    )
    assert answer["verdict"] == {"valid": True, "reasons": []}
