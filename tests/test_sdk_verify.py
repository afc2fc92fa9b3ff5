"""Both SDKs expose the same offline check of a signed certificate (#18): on certificates
from the real service, and on tampered and forged copies of them, the Python SDK's
`verify_certificate`, the TypeScript SDK's `verifyCertificate` and the service's own
`dsmooth verify` give the same verdict, the SDKs the same reason codes, all three the same
messages."""

from __future__ import annotations

import base64
import copy
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from service.api.app import create_app
from service.core.noise import image_digest
from service.core.signing import Signer, new_private_key_pem
from service.core.signing import verify_certificate as service_verify
from service.examples import example_image
from service.imaging import decode_image
from service.testing.live_server import live_server
from tests.test_sdk_typescript import build_typescript, harness, png, signed_settings

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "clients/python-sdk/src"), str(ROOT / "clients/python")]

from dsmooth import REASON_CODES, verify_certificate  # noqa: E402

pytestmark = [pytest.mark.subprocess, pytest.mark.slow]

PHOTO = example_image("chelsea", size=32)
PARAMETERS = {
    "fixed": {"n": 500, "n0": 50, "sigma": 0.12},
    "sequential-betting": {
        "mode": "sequential",
        "target_radius": 0.1,
        "n": 300,
        "n0": 50,
        "sigma": 0.12,
    },
    "sequential-cp": {"mode": "sequential", "n": 300, "n0": 50, "sigma": 0.12},
    "abstained": {"n": 200, "n0": 0, "candidate": "clean", "sigma": 0.5},
}
FORGER = Signer.from_pem(new_private_key_pem())  # a key the reader (wrongly) trusts


@dataclass
class Served:
    certificates: dict[str, dict[str, Any]]
    keys: dict[str, Any]
    job_certificate: dict[str, Any]


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    image = base64.b64encode(png(PHOTO)).decode()
    with (
        live_server(create_app(signed_settings())) as url,
        httpx.Client(base_url=url, timeout=120) as http,
    ):
        certificates = {}
        for name, parameters in PARAMETERS.items():
            response = http.post("/v1/certify", json={"image": image, **parameters})
            assert response.status_code == 200, response.text
            certificates[name] = response.json()
        job = http.post("/v1/jobs", json={"image": image, "n": 300, "n0": 50, "sigma": 0.12})
        for _ in range(1200):
            finished = http.get(f"/v1/jobs/{job.json()['id']}").json()
            if finished["state"] not in ("queued", "running"):
                break
            time.sleep(0.1)
        assert finished["state"] == "succeeded", finished
        keys = http.get("/v1/signing-keys").json()
    yield Served(certificates, keys, finished["result"])


@dataclass
class Case:
    name: str
    certificate: dict[str, Any]
    keys: dict[str, Any]
    codes: list[str]  # what both SDKs must answer
    image_digest: str | None = None
    pixels: Image.Image | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _changed(
    document: dict[str, Any], change: Callable[[dict[str, Any]], object]
) -> dict[str, Any]:
    copied = copy.deepcopy(document)
    change(copied)
    return copied


def _forged(document: dict[str, Any], change: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    """Changed, then signed again by a key in the reader's JWKS: only the arithmetic can tell."""
    copied = _changed(document, change)
    copied["signature"] = FORGER.sign(copied)
    return copied


def _cases(served: Served) -> list[Case]:
    keys = served.keys
    trusting = {"keys": [*keys["keys"], FORGER.public]}
    stranger = Signer.from_pem(new_private_key_pem()).jwks()
    fixed = served.certificates["fixed"]
    betting = served.certificates["sequential-betting"]
    digest = image_digest(decode_image(png(PHOTO)))
    other = image_digest(decode_image(png(example_image("chelsea", size=16))))
    cases = [Case(name, cert, keys, []) for name, cert in served.certificates.items()]
    cases += [
        Case("job-result", served.job_certificate, keys, []),
        Case("with-the-image-digest", fixed, keys, [], image_digest=digest),
        Case("with-the-image-pixels", fixed, keys, [], pixels=PHOTO),
        Case("another-image", fixed, keys, ["image_mismatch"], image_digest=other),
        Case(
            "another-image-pixels",
            fixed,
            keys,
            ["image_mismatch"],
            pixels=example_image("chelsea", size=16),
        ),
        Case("one-jwk", fixed, keys["keys"][0], []),
        Case("label", _changed(fixed, lambda d: d.update(label="dog")), keys, ["bad_signature"]),
        Case(
            "radius",
            _changed(fixed, lambda d: d.update(radius=d["radius"] + 0.1)),
            keys,
            ["bad_signature", "radius_mismatch"],
        ),
        Case(
            "signature",
            _changed(
                fixed,
                lambda d: d["signature"].update(
                    value=d["signature"]["value"][:-4]
                    + ("AAAA" if d["signature"]["value"][-4:] != "AAAA" else "BBBB")
                ),
            ),
            keys,
            ["bad_signature"],
        ),
        Case("unknown-key", fixed, stranger, ["unknown_key"]),
        Case("unsigned", _changed(fixed, lambda d: d.pop("signature")), keys, ["unsigned"]),
        Case(
            "null-signature",
            _changed(fixed, lambda d: d.update(signature=None)),
            keys,
            ["unsigned"],
        ),
        Case(
            "count",
            _changed(fixed, lambda d: d["top_counts"][0].update(count=1)),
            keys,
            ["bad_signature", "counts_mismatch"],
        ),
        Case(
            "betting-radius",
            _changed(betting, lambda d: d.update(radius=0.5)),
            keys,
            ["bad_signature", "radius_mismatch"],
        ),
        # Signed by a trusted key, but the numbers do not add up.
        Case("forged-valid", _forged(fixed, lambda d: None), trusting, []),
        Case(
            "forged-radius",
            _forged(fixed, lambda d: d.update(radius=d["radius"] * 2)),
            trusting,
            ["radius_mismatch"],
        ),
        Case(
            "forged-p-lower",
            _forged(fixed, lambda d: d.update(p_lower=0.99)),
            trusting,
            ["p_lower_mismatch", "radius_mismatch"],
        ),
        Case(
            "forged-successes",
            _forged(fixed, lambda d: d["bound"].update(successes=d["bound"]["successes"] - 1)),
            trusting,
            ["p_lower_mismatch", "counts_mismatch"],
        ),
        Case(
            "forged-abstained",
            _forged(fixed, lambda d: d.update(abstained=True)),
            trusting,
            ["radius_mismatch"],
        ),
        Case(
            "forged-betting",
            _forged(betting, lambda d: d.update(p_lower=0.999)),
            trusting,
            ["betting_mismatch", "radius_mismatch"],
        ),
        Case(
            "forged-malformed",
            _forged(fixed, lambda d: d["bound"].update(alpha=1.5)),
            trusting,
            ["bound_malformed"],
        ),
        Case(
            "forged-kind",
            _forged(fixed, lambda d: d["bound"].update(kind="hoeffding")),
            trusting,
            ["unknown_bound"],
        ),
        Case("forged-no-bound", _forged(fixed, lambda d: d.pop("bound")), trusting, ["no_bound"]),
        Case("forged-no-sigma", _forged(fixed, lambda d: d.pop("sigma")), trusting, ["incomplete"]),
        Case(
            "forged-string-sigma",
            _forged(fixed, lambda d: d.update(sigma=str(d["sigma"]))),
            trusting,
            [],
        ),
    ]
    return cases


@pytest.fixture(scope="module")
def cases(served: Served) -> list[Case]:
    return _cases(served)


@pytest.fixture(scope="module")
def typescript_verdicts(cases: list[Case]) -> list[dict[str, Any]]:
    build_typescript()
    request = []
    for case in cases:
        entry: dict[str, Any] = {"certificate": case.certificate, "keys": case.keys}
        if case.image_digest is not None:
            entry["imageDigest"] = case.image_digest
        if case.pixels is not None:
            rgb = case.pixels.convert("RGB")
            entry["image"] = {
                "width": rgb.width,
                "height": rgb.height,
                "rgb": base64.b64encode(rgb.tobytes()).decode(),
            }
        request.append(entry)
    verdicts: list[dict[str, Any]] = harness({"op": "verify", "cases": request})
    return verdicts


def _python(case: Case) -> tuple[list[str], list[str]]:
    image = png(case.pixels) if case.pixels is not None else None
    verdict = verify_certificate(case.certificate, case.keys, image, image_digest=case.image_digest)
    assert verdict.valid == (not verdict.reasons)
    return verdict.codes, verdict.messages


def _service(case: Case) -> list[str]:
    digest = case.image_digest
    if case.pixels is not None:
        digest = image_digest(decode_image(png(case.pixels)))
    return service_verify(case.certificate, case.keys, digest)


def test_the_certificates_cover_every_kind_of_bound(served: Served) -> None:
    bounds = {name: (c["bound"]["kind"], c["abstained"]) for name, c in served.certificates.items()}
    assert bounds == {
        "fixed": ("clopper-pearson", False),
        "sequential-betting": ("betting", False),
        "sequential-cp": ("clopper-pearson", False),
        "abstained": ("clopper-pearson", True),
    }


def test_python_sdk_agrees_with_the_service(cases: list[Case]) -> None:
    for case in cases:
        codes, messages = _python(case)
        assert codes == case.codes, case.name
        assert messages == _service(case), case.name
        assert set(codes) <= set(REASON_CODES)


def test_typescript_sdk_agrees_with_the_python_sdk(
    cases: list[Case], typescript_verdicts: list[dict[str, Any]]
) -> None:
    assert len(typescript_verdicts) == len(cases)
    for case, verdict in zip(cases, typescript_verdicts, strict=True):
        codes, messages = _python(case)
        assert [r["code"] for r in verdict["reasons"]] == codes, case.name
        assert [r["message"] for r in verdict["reasons"]] == messages, case.name
        assert verdict["valid"] == (not codes), case.name


def test_dsmooth_verify_prints_the_same_reasons(cases: list[Case], tmp_path: Path) -> None:
    dsmooth = Path(sys.executable).parent / "dsmooth"
    for case in (c for c in cases if c.name in ("fixed", "radius")):
        certificate, keys = tmp_path / "certificate.json", tmp_path / "keys.json"
        certificate.write_text(json.dumps(case.certificate))
        keys.write_text(json.dumps(case.keys))
        result = subprocess.run(
            [str(dsmooth), "verify", str(certificate), "--key", str(keys)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        _, messages = _python(case)
        assert result.returncode == (1 if messages else 0), result.stderr
        printed = [
            line.removeprefix("invalid: ")
            for line in result.stderr.splitlines()
            if line.startswith("invalid: ")
        ]
        assert printed == messages, case.name
