"""GET /v1/usage: the calling key's queries today and spend this month, beside its limits."""

from __future__ import annotations

from fastapi import APIRouter

from service.api.problems import problem_responses
from service.api.routes.deps import CallerDep, ServicesDep
from service.api.routes.openapi_bodies import USAGE_PROBLEMS
from service.api.schemas import Usage

router = APIRouter(prefix="/v1", tags=["usage"], responses=problem_responses(*USAGE_PROBLEMS))


@router.get("/usage")
async def get_usage(services: ServicesDep, caller: CallerDep) -> Usage:
    """The calling key's classifier queries booked today and USD booked this month (UTC), with
    its daily query budget and monthly spend limit (null: none). Requests still running count
    at their worst case until they settle."""
    return await services.usage(caller)
