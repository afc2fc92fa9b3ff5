"""Signed certificates: anyone holding the published keys checks them offline."""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path

import pytest
import torch

from service.core.certifier import Certifier
from service.core.ledger import InMemoryLedger
from service.core.noise import image_digest
from service.core.results import Certificate, CertifyParams
from service.core.signing import Signer, new_private_key_pem, verify_certificate
from service.execution.local import LocalSampler
from tests.models import no_denoiser, threshold_classifier

SIGNER = Signer.from_pem(new_private_key_pem())
IMAGE = torch.full((3, 1, 1), 0.5)


def _certificate(**params: object) -> dict:
    sampler = LocalSampler(no_denoiser(), threshold_classifier(0.9, 0.5, 0.25), device="cpu")
    certifier = Certifier(sampler, b"test-secret", ledger=InMemoryLedger())
    fields: dict[str, object] = {"sigma": 0.25, "n0": 50, "n": 500, **params}
    result: Certificate = asyncio.run(certifier.certify(IMAGE, CertifyParams(**fields)))
    # What a reader holds: the JSON the service sent.
    return json.loads(SIGNER.signed(result).model_dump_json())


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"mode": "sequential", "target_radius": 0.2, "candidate": "clean", "n0": 0},
        {"mode": "sequential", "candidate": "clean", "n0": 0},
    ],
    ids=["fixed", "sequential-betting", "sequential-cp-spending"],
)
def test_a_signed_certificate_verifies_with_the_published_keys(params: dict) -> None:
    document = _certificate(**params)
    assert not document["abstained"]
    assert document["signature"]["kid"] == SIGNER.kid == SIGNER.jwks()["keys"][0]["kid"]
    assert verify_certificate(document, SIGNER.jwks(), image_digest(IMAGE)) == []


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (lambda d: d.update(radius=d["radius"] + 0.1), "signature does not match"),
        (lambda d: d.update(label="dog"), "signature does not match"),
        (lambda d: d["top_counts"][0].update(count=d["top_counts"][0]["count"] + 1),
         "signature does not match"),
        (lambda d: d.update(p_lower=0.99), "not the Clopper-Pearson bound"),
        (lambda d: d.update(radius=d["radius"] + 0.1), "the radius should be"),
        (lambda d: d.pop("signature"), "not signed"),
    ],
    ids=["radius", "label", "count", "p_lower", "radius-arithmetic", "unsigned"],
)  # fmt: skip
def test_a_tampered_certificate_fails_with_a_clear_reason(tamper, reason: str) -> None:
    document = _certificate()
    changed = copy.deepcopy(document)
    tamper(changed)
    problems = verify_certificate(changed, SIGNER.jwks())
    assert any(reason in p for p in problems), problems


def test_another_image_or_another_key_fails() -> None:
    document = _certificate()
    other = torch.full((3, 1, 1), 0.4)
    assert any("not the certified one" in p for p in verify_certificate(
        document, SIGNER.jwks(), image_digest(other)
    ))  # fmt: skip
    stranger = Signer.from_pem(new_private_key_pem())
    assert any("no published key" in p for p in verify_certificate(document, stranger.jwks()))
    # A rotated key stays published and keeps its certificates valid.
    rotated = Signer.from_pem(new_private_key_pem(), retired=[SIGNER.public])
    assert verify_certificate(document, rotated.jwks()) == []


def test_a_development_key_is_made_once_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "signing-key.pem"
    first = Signer.load_or_create(path)
    again = Signer.load_or_create(path)
    assert first.kid == again.kid and path.stat().st_mode & 0o077 == 0
