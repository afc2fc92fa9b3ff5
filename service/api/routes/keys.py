"""GET /v1/signing-keys: the public keys that verify the service's certificates (a JWKS)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from service.api.routes.deps import ServicesDep

router = APIRouter(prefix="/v1", tags=["certification"])


@router.get("/signing-keys")
async def signing_keys(services: ServicesDep) -> dict[str, list[dict[str, Any]]]:
    """The Ed25519 public keys (JWK Set, RFC 7517/8037) of the certificates' signatures: the
    current key first, then retired ones still published. Keep a copy to verify offline
    (`dsmooth verify CERT.json --key KEYS.json`)."""
    return services.signer.jwks()
