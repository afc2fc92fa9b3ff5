"""GET /v1/signing-keys: the public keys that verify the service's certificates (a JWKS)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from service.api.routes.deps import ServicesDep

router = APIRouter(prefix="/v1", tags=["certification"])


# The shape of a JWK Set of Ed25519 keys (RFC 8037), a made-up key.
JWKS_EXAMPLE = {
    "keys": [
        {
            "kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA",
            "kid": "yh_RHMdDr4d1mmlyelAW7vJUvpcX7UN71udyqkcWfZQ",
            "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
        }
    ]
}  # fmt: skip


@router.get(
    "/signing-keys",
    responses={200: {"content": {"application/json": {"example": JWKS_EXAMPLE}}}},
)
async def signing_keys(services: ServicesDep) -> dict[str, list[dict[str, Any]]]:
    """The Ed25519 public keys (JWK Set, RFC 7517/8037) of the certificates' signatures: the
    current key first, then retired ones still published. Keep a copy to verify offline
    (`dsmooth verify CERT.json --key KEYS.json`)."""
    return services.signer.jwks()
