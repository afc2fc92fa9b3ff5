"""The offline check of a signed certificate: the same verdict, reasons and messages as the
service's ``dsmooth verify`` (service/core/signing.py), without the service (no torch).

A certificate is valid when

1. its ``signature`` is an Ed25519 signature, by a key of the JWKS (``GET /v1/signing-keys``)
   with the signature's ``kid``, over the RFC 8785 canonical JSON of the certificate without
   its ``signature`` and without null members;
2. (with ``image`` or ``image_digest``) the image is the certified one: the SHA-256 of its
   pixels as the service decodes them (RGB, float32, [3, H, W], values / 255);
3. its arithmetic holds: ``p_lower`` is the bound (Clopper-Pearson or the betting confidence
   sequence) of the recorded counts at the recorded level, and the radius is
   sigma * Phi^-1(p_lower) rounded down to 6 decimals (0 and ``abstained`` below 0.5).

Every failure is a :class:`Reason`: a stable ``code`` (the same in the TypeScript SDK) and the
``message`` that ``dsmooth verify`` prints after ``invalid:``.
"""

from __future__ import annotations

import base64
import hashlib
import math
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from dsmooth import stats

__all__ = [
    "REASON_CODES",
    "Reason",
    "Verdict",
    "image_digest",
    "payload",
    "pixels_digest",
    "verify_certificate",
]

#: Every reason code, in the order the checks run.
REASON_CODES = (
    "unsigned",  # the certificate has no signature
    "unknown_key",  # no key of the JWKS has the signature's kid
    "bad_signature",  # the signature does not verify (changed, or another key)
    "image_mismatch",  # the image's digest is not the certified one
    "incomplete",  # sigma, p_lower, radius or abstained missing or not numbers
    "bound_malformed",  # the recorded bound's counts or level are impossible
    "p_lower_mismatch",  # p_lower is not the Clopper-Pearson bound of the counts
    "counts_mismatch",  # fixed mode: the candidate's count is not the bound's successes
    "betting_mismatch",  # p_lower is not excluded by the betting sequence at its counts
    "unknown_bound",  # a bound kind this SDK does not know
    "no_bound",  # the certificate records no bound
    "radius_mismatch",  # the radius (or abstained) is not what p_lower gives
)


@dataclass(frozen=True, slots=True)
class Reason:
    """Why a certificate is not valid: a code from :data:`REASON_CODES` and a sentence."""

    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of :func:`verify_certificate`: valid when there is no reason against it."""

    reasons: list[Reason] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.reasons

    @property
    def codes(self) -> list[str]:
        return [reason.code for reason in self.reasons]

    @property
    def messages(self) -> list[str]:
        return [reason.message for reason in self.reasons]

    def __bool__(self) -> bool:
        return self.valid


class _HasToDict(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _without_nulls(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def payload(document: Mapping[str, Any]) -> bytes:
    """The bytes a signature covers: RFC 8785 JSON of the document without ``signature`` and
    null members."""
    return rfc8785.dumps(_without_nulls({k: v for k, v in document.items() if k != "signature"}))


def pixels_digest(rgb: bytes, width: int, height: int) -> str:
    """The service's image digest of decoded 8-bit RGB pixels (row-major, 3 bytes a pixel):
    SHA-256 of ``repr((3, H, W))`` and the float32 [3, H, W] values / 255."""
    if len(rgb) != 3 * width * height:
        raise ValueError(f"{len(rgb)} bytes are not {width}x{height} RGB pixels")
    digest = hashlib.sha256(repr((3, height, width)).encode())
    for channel in range(3):
        digest.update(b"".join(_FLOAT32[v] for v in rgb[channel::3]))
    return digest.hexdigest()


# v / 255 as the service's float32 (little-endian), for every byte value v.
_FLOAT32 = [struct.pack("<f", v / 255) for v in range(256)]


def image_digest(image: bytes | str | os.PathLike[str]) -> str:
    """The digest of an image file (or its bytes) as the service decodes it: EXIF orientation
    applied, first frame, transparency composited onto white, 16-bit greyscale scaled to 8 bits.
    Needs Pillow and numpy (``pip install 'dsmooth[image]'``)."""
    try:
        import io

        import numpy as np
        from PIL import Image, ImageOps
    except ImportError as exc:  # pragma: no cover - depends on the extra
        raise ImportError(
            "image digests need Pillow and numpy: pip install 'dsmooth[image]'"
        ) from exc
    data = image if isinstance(image, bytes) else Path(image).read_bytes()
    with Image.open(io.BytesIO(data), formats=("PNG", "JPEG", "WEBP", "BMP", "GIF")) as opened:
        opened.seek(0)
        picture = ImageOps.exif_transpose(opened)
        if picture.mode in ("I", "I;16", "I;16L", "I;16B", "I;16N"):
            wide = np.asarray(picture, dtype=np.float64)
            picture = Image.fromarray(np.clip(wide / 257.0, 0, 255).round().astype(np.uint8), "L")
        if picture.mode in ("RGBA", "LA", "PA") or "transparency" in picture.info:
            rgba = picture.convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            picture = Image.alpha_composite(white, rgba).convert("RGB")
        else:
            picture = picture.convert("RGB")
        pixels = np.asarray(picture, dtype=np.uint8)
    table = np.frombuffer(b"".join(_FLOAT32), dtype="<f4")
    chw = np.ascontiguousarray(table[pixels.transpose(2, 0, 1)])
    digest = hashlib.sha256(repr(tuple(chw.shape)).encode())
    digest.update(chw.tobytes())
    return digest.hexdigest()


_file_digest = image_digest  # verify_certificate's keyword argument shadows the name


def verify_certificate(
    certificate: Mapping[str, Any] | _HasToDict,
    keys: Mapping[str, Any],
    image: bytes | os.PathLike[str] | None = None,
    *,
    image_digest: str | None = None,
) -> Verdict:
    """Check a certificate offline against the published keys (a JWKS or one JWK).

    ``certificate`` is the JSON object the service sent, as received, or a
    :class:`dsmooth.SignedCertificate` (which keeps that JSON); a bare generated model is
    re-serialised, which loses the members its SDK version does not know. With ``image`` (a
    file or its bytes; needs the ``image`` extra) or ``image_digest``, also check that the
    image is the certified one.
    """
    if isinstance(certificate, Mapping):
        document: Mapping[str, Any] = certificate
    else:  # a SignedCertificate keeps the JSON it came from; a bare model is re-serialised
        kept = getattr(certificate, "document", None)
        document = kept if isinstance(kept, Mapping) and kept else certificate.to_dict()
    reasons = _signature_reasons(document, keys)
    digest = image_digest
    if digest is None and image is not None:
        digest = _file_digest(image)
    if digest is not None and document.get("image_digest") != digest:
        reasons.append(
            Reason("image_mismatch", "the image is not the certified one (its digest differs)")
        )
    return Verdict(reasons + _arithmetic_reasons(document))


def _signature_reasons(document: Mapping[str, Any], keys: Mapping[str, Any]) -> list[Reason]:
    signature = document.get("signature")
    if not isinstance(signature, Mapping):
        return [Reason("unsigned", "the certificate is not signed")]
    candidates = keys.get("keys", [keys]) if isinstance(keys, Mapping) else []
    key = next(
        (k for k in candidates if isinstance(k, Mapping) and k.get("kid") == signature.get("kid")),
        None,
    )
    if key is None:
        return [Reason("unknown_key", f"no published key has the id {signature.get('kid')!r}")]
    try:
        public = Ed25519PublicKey.from_public_bytes(_unb64url(str(key["x"])))
        public.verify(_unb64url(str(signature["value"])), payload(document))
    except (InvalidSignature, KeyError, ValueError, TypeError):
        return [
            Reason(
                "bad_signature",
                "the signature does not match the certificate (it was "
                "changed, or not signed by this key)",
            )
        ]
    return []


def _isclose(a: float, b: float) -> bool:
    return math.isclose(a, b, abs_tol=1e-9)


def _arithmetic_reasons(document: Mapping[str, Any]) -> list[Reason]:
    """Recompute p_lower from the recorded bound and the radius from p_lower."""
    bound = document.get("bound")
    try:
        sigma, p_lower = float(document["sigma"]), float(document["p_lower"])
        radius, abstained = float(document["radius"]), bool(document["abstained"])
    except (KeyError, TypeError, ValueError):
        return [Reason("incomplete", "the certificate lacks sigma, p_lower, radius or abstained")]
    reasons = []
    if isinstance(bound, Mapping):
        kind = bound.get("kind")
        try:
            level = float(bound.get("alpha", 0))
            k, n = int(bound.get("successes", -1)), int(bound.get("trials", 0))
        except (TypeError, ValueError, OverflowError):
            level, k, n = math.nan, -1, 0
        top_counts = document.get("top_counts", [])
        counts = {c.get("key"): c.get("count") for c in top_counts if isinstance(c, Mapping)}
        label_key = document.get("label_key") or _candidate_key(document)
        if not 0 <= k <= n or not 0 < level < 1:
            reasons.append(Reason("bound_malformed", "the recorded bound is malformed"))
        elif kind == "clopper-pearson":
            bound_value = stats.clopper_pearson_lower(k, n, level) if n > 0 else 0.0
            if not _isclose(bound_value, p_lower):
                reasons.append(
                    Reason(
                        "p_lower_mismatch", "p_lower is not the Clopper-Pearson bound of the counts"
                    )
                )
            if document.get("mode") == "fixed" and label_key in counts and counts[label_key] != k:
                reasons.append(
                    Reason("counts_mismatch", "the counts do not match the bound's successes")
                )
        elif kind == "betting":
            if not (
                p_lower <= stats.betting_lower_bound(k, n, level) + 1e-12
                or (0 < p_lower <= 1 and stats.betting_rejects(k, n, p_lower, level))
            ):
                reasons.append(
                    Reason(
                        "betting_mismatch",
                        "p_lower is not excluded by the betting sequence at its counts",
                    )
                )
        else:
            reasons.append(Reason("unknown_bound", f"unknown bound {kind!r}"))
    else:
        reasons.append(Reason("no_bound", "the certificate records no bound"))
    expected = 0.0 if p_lower < 0.5 else stats.radius_from_p_lower(p_lower, sigma)
    if abstained != (p_lower < 0.5) or not _isclose(radius, expected):
        reasons.append(
            Reason("radius_mismatch", f"the radius should be {expected} for p_lower {p_lower}")
        )
    return reasons


def _candidate_key(document: Mapping[str, Any]) -> str | None:
    candidate = document.get("candidate")
    for count in document.get("top_counts", []):
        if isinstance(count, Mapping) and count.get("label") == candidate:
            return str(count.get("key"))
    return None
