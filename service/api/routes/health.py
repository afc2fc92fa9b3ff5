"""Liveness, readiness and Prometheus metrics (no API key: for orchestrators and scrapers)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict

from service.api.routes.deps import ServicesDep

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"status": "ready", "checks": {"models": True, "vote_store": True}}]
        }
    )

    status: str
    checks: dict[str, bool] = {}


@router.get("/healthz")
async def healthz() -> Health:
    """The process is up."""
    return Health(status="ok")


@router.get("/readyz", responses={503: {"model": Health, "description": "Not ready"}})
async def readyz(services: ServicesDep) -> Health:
    """Ready to certify: models loaded, the vote store reachable, stream workers alive."""
    checks = await services.readiness()
    health = Health(status="ready" if all(checks.values()) else "not ready", checks=checks)
    if not all(checks.values()):
        return JSONResponse(health.model_dump(), status_code=503)  # type: ignore[return-value]
    return health


@router.get("/metrics", response_class=Response)
async def metrics(services: ServicesDep) -> Response:
    """Prometheus metrics in the text exposition format."""
    return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)
