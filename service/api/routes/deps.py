"""Route dependencies as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from service.api.auth import Principal
from service.api.services import Services

__all__ = ["CallerDep", "ServicesDep"]

_bearer = HTTPBearer(auto_error=False, description="API key as a bearer token")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key header")


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(_services)]


async def _caller(
    request: Request,
    services: ServicesDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key)],
) -> Principal:
    # An Authorization header decides alone: a bad one is refused even beside a good X-API-Key.
    if "authorization" in request.headers:
        principal = services.auth.identify(bearer.credentials if bearer is not None else "")
    else:
        principal = services.auth.identify(api_key)
    request.state.key_name = principal.name  # for the access log (the name, never the key)
    await services.admit_rate(principal)
    return principal


CallerDep = Annotated[Principal, Depends(_caller)]
