"""GET /v1/classifiers and GET /v1/denoisers: what this server can certify with."""

from __future__ import annotations

from fastapi import APIRouter

from service.api.catalog import ClassifierInfo, DenoiserInfo
from service.api.problems import problem_responses
from service.api.routes.deps import CallerDep, ServicesDep
from service.api.routes.openapi_bodies import CATALOG_PROBLEMS

router = APIRouter(prefix="/v1", tags=["catalog"], responses=problem_responses(*CATALOG_PROBLEMS))


@router.get("/classifiers")
async def list_classifiers(services: ServicesDep, caller: CallerDep) -> list[ClassifierInfo]:
    """Classifiers with their versions, caps, prices and whether they can be queried."""
    return services.catalog.classifiers()


@router.get("/denoisers")
async def list_denoisers(services: ServicesDep, caller: CallerDep) -> list[DenoiserInfo]:
    """Denoisers with their versions and the sigma each was trained for."""
    return services.catalog.denoisers()
