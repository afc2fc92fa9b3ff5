"""Signed certificates: Ed25519 over the RFC 8785 canonical JSON, keys published as a JWKS, and
the offline check a reader runs with nothing but the certificate, the keys (and the image).

The signed payload is the certificate as a JSON object without its ``signature`` and without
null members, canonicalised by RFC 8785 (JCS: sorted keys, ECMAScript number forms), so any
language can rebuild the same bytes from the document it received.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from service.core import betting
from service.core.results import Certificate, Signature
from service.core.smoothing import lower_confidence_bound, radius_from_p_lower

__all__ = ["Signer", "jwk_public_key", "new_private_key_pem", "payload", "verify_certificate"]

ALGORITHM = "EdDSA"  # RFC 8037: Ed25519 in a JWS/JWK


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def payload(document: Mapping[str, Any]) -> bytes:
    """The bytes a signature covers: the document without ``signature`` and null members."""
    return rfc8785.dumps(_without_nulls({k: v for k, v in document.items() if k != "signature"}))


def _without_nulls(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _raw(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _thumbprint(x: str) -> str:
    """RFC 7638 JWK thumbprint of an Ed25519 public key: its key id."""
    members = {"crv": "Ed25519", "kty": "OKP", "x": x}
    return _b64url(hashlib.sha256(rfc8785.dumps(members)).digest())


def jwk_public_key(public: Ed25519PublicKey) -> dict[str, str]:
    x = _b64url(_raw(public))
    return {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": _thumbprint(x), "use": "sig",
            "alg": ALGORITHM}  # fmt: skip


class Signer:
    """The service's signing key, and the public keys it still publishes (rotation)."""

    def __init__(self, key: Ed25519PrivateKey, retired: Sequence[Mapping[str, str]] = ()) -> None:
        self._key = key
        self.public = jwk_public_key(key.public_key())
        self.kid = self.public["kid"]
        self.retired = [dict(k) for k in retired]

    @classmethod
    def from_pem(cls, pem: bytes, retired: Sequence[Mapping[str, str]] = ()) -> Signer:
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("the signing key must be an Ed25519 private key (PEM, PKCS#8)")
        return cls(key, retired)

    @classmethod
    def load_or_create(cls, path: Path) -> Signer:
        """Development: the key in ``path``, made there (owner-only) when absent."""
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600)
            path.write_bytes(new_private_key_pem())
        return cls.from_pem(path.read_bytes())

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        return {"keys": [self.public, *self.retired]}

    def sign(self, document: Mapping[str, Any]) -> dict[str, str]:
        """The signature member for ``document`` (which must not change afterwards)."""
        value = self._key.sign(payload(document))
        return {"alg": ALGORITHM, "kid": self.kid, "value": _b64url(value)}

    def signed(self, certificate: Certificate) -> Certificate:
        """The certificate stamped with its issue time and signed."""
        issued = dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        stamped = certificate.model_copy(update={"issued_at": issued, "signature": None})
        signature = Signature.model_validate(self.sign(stamped.model_dump(mode="json")))
        return stamped.model_copy(update={"signature": signature})


def new_private_key_pem() -> bytes:
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def verify_certificate(
    document: Mapping[str, Any], keys: Mapping[str, Any], image_digest: str | None = None
) -> list[str]:
    """Why ``document`` is not a valid certificate under ``keys`` (a JWKS or one JWK): an empty
    list when the signature, the image digest (when given) and the arithmetic all hold."""
    problems = _signature_problems(document, keys)
    if image_digest is not None and document.get("image_digest") != image_digest:
        problems.append("the image is not the certified one (its digest differs)")
    return problems + _arithmetic_problems(document)


def _signature_problems(document: Mapping[str, Any], keys: Mapping[str, Any]) -> list[str]:
    signature = document.get("signature")
    if not isinstance(signature, Mapping):
        return ["the certificate is not signed"]
    candidates = keys.get("keys", [keys]) if isinstance(keys, Mapping) else []
    key = next((k for k in candidates if k.get("kid") == signature.get("kid")), None)
    if key is None:
        return [f"no published key has the id {signature.get('kid')!r}"]
    try:
        public = Ed25519PublicKey.from_public_bytes(_unb64url(str(key["x"])))
        public.verify(_unb64url(str(signature["value"])), payload(document))
    except (InvalidSignature, KeyError, ValueError):
        return ["the signature does not match the certificate (it was changed, or not signed "
                "by this key)"]  # fmt: skip
    return []


def _arithmetic_problems(document: Mapping[str, Any]) -> list[str]:
    """Recompute p_lower from the recorded bound and the radius from p_lower."""
    bound = document.get("bound")
    try:
        sigma, p_lower = float(document["sigma"]), float(document["p_lower"])
        radius, abstained = float(document["radius"]), bool(document["abstained"])
    except (KeyError, TypeError, ValueError):
        return ["the certificate lacks sigma, p_lower, radius or abstained"]
    problems = []
    if isinstance(bound, Mapping):
        kind, level = bound.get("kind"), float(bound.get("alpha", 0))
        k, n = int(bound.get("successes", -1)), int(bound.get("trials", 0))
        counts = {c.get("key"): c.get("count") for c in document.get("top_counts", [])}
        label_key = document.get("label_key") or _candidate_key(document)
        if not 0 <= k <= n or not 0 < level < 1:
            problems.append("the recorded bound is malformed")
        elif kind == "clopper-pearson":
            if not math.isclose(lower_confidence_bound(k, n, level), p_lower, abs_tol=1e-9):
                problems.append("p_lower is not the Clopper-Pearson bound of the counts")
            if document.get("mode") == "fixed" and label_key in counts and counts[label_key] != k:
                problems.append("the counts do not match the bound's successes")
        elif kind == "betting":
            if not (p_lower <= betting.lower_bound(k, n, level) + 1e-12
                    or bool(betting.rejects(k, n, p_lower, level))):  # fmt: skip
                problems.append("p_lower is not excluded by the betting sequence at its counts")
        else:
            problems.append(f"unknown bound {kind!r}")
    else:
        problems.append("the certificate records no bound")
    expected = 0.0 if p_lower < 0.5 else radius_from_p_lower(p_lower, sigma)
    if abstained != (p_lower < 0.5) or not math.isclose(radius, expected, abs_tol=1e-9):
        problems.append(f"the radius should be {expected} for p_lower {p_lower}")
    return problems


def _candidate_key(document: Mapping[str, Any]) -> str | None:
    candidate = document.get("candidate")
    for count in document.get("top_counts", []):
        if count.get("label") == candidate:
            return str(count.get("key"))
    return None
