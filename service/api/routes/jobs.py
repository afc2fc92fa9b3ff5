"""Background jobs: POST /v1/jobs, GET /v1/jobs/{id}, its SSE events, DELETE to cancel."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request, Response
from sse_starlette import EventSourceResponse

from service.api.inputs import read_image_request
from service.api.jobs import JobRecord, JobView
from service.api.problems import problem_responses
from service.api.routes.deps import CallerDep, ServicesDep
from service.api.routes.openapi_bodies import JOB_PROBLEMS, NEW_JOB_PROBLEMS, image_body
from service.api.schemas import JobOptions, JobRequest
from service.api.services import problem_for

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
# Location names the new job; the same for every POST /v1/jobs.
CREATED: dict[int | str, dict[str, Any]] = {
    202: {
        "description": "Accepted: the job runs in the background",
        "headers": {
            "Location": {
                "description": "the job's URL, `/v1/jobs/{id}`",
                "schema": {"type": "string"},
                "example": "/v1/jobs/3f0c1a8e9b7d4c2a8e5f60718293a4b5",
            }
        },
    }
}

# One event of the stream (on the wire: `event: progress` and `data: {...}` lines).
SSE_EXAMPLE = {
    "event": "progress",
    "data": '{"id":"3f0c1a8e9b7d4c2a8e5f60718293a4b5","operation":"certify","state":"running",'
    '"progress":{"done":500,"planned":1100},"created_at":"2026-01-01T12:00:00Z"}',
}


@router.post(
    "",
    status_code=202,
    openapi_extra=image_body(JobRequest),
    responses={**CREATED, **problem_responses(*NEW_JOB_PROBLEMS)},
)
async def create_job(
    request: Request, response: Response, services: ServicesDep, caller: CallerDep
) -> JobView:
    """Start a certification (or prediction) in the background; answers at once with its id.

    JSON or `multipart/form-data` bodies, as for `POST /v1/certify`."""
    options, image = await read_image_request(
        request, JobOptions, services.settings.max_upload_bytes
    )
    # Everything checkable is checked now, so a bad request is a 4xx, not a failed job.
    prepared = await services.prepare(caller, options.request(), image)

    record = JobRecord(
        options=options.model_dump_json(), booking=prepared.booking_json(), image=image
    )
    try:
        job = await services.jobs.submit(
            caller, options.operation, prepared.planned,
            services.job_runner(options.operation, prepared), problem_for,
            on_done=lambda: services.finish(prepared),  # also when cancelled before it ran
            record=record,
        )  # fmt: skip
    except BaseException:
        await services.finish(prepared)
        raise
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return job.view()


@router.get("/{job_id}", responses=problem_responses(*JOB_PROBLEMS))
async def get_job(job_id: str, services: ServicesDep, caller: CallerDep) -> JobView:
    """The job's state, progress (samples done of planned) and, once finished, its result."""
    return await services.jobs.view(job_id, caller)


@router.get(
    "/{job_id}/events",
    response_class=EventSourceResponse,
    responses={
        **problem_responses(*JOB_PROBLEMS),
        200: {
            "description": "Server-Sent Events: `progress` after every chunk, then one `end` "
            "event carrying the finished job",
            "content": {
                "text/event-stream": {
                    "schema": {
                        "type": "object",
                        "required": ["event", "data"],
                        "properties": {
                            "event": {"type": "string", "enum": ["progress", "end"]},
                            "data": {
                                "type": "string",
                                "contentMediaType": "application/json",
                                "contentSchema": {"$ref": "#/components/schemas/JobView"},
                            },
                        },
                    },
                    "example": SSE_EXAMPLE,
                }
            },
        },
    },
)
async def stream_job_events(
    job_id: str, services: ServicesDep, caller: CallerDep
) -> EventSourceResponse:
    """Follow a job live: Server-Sent Events until it has finished."""
    await services.jobs.view(job_id, caller)  # 404 now, before the stream starts

    async def events() -> AsyncIterator[dict[str, str]]:
        async for view in services.jobs.changes(job_id, caller):
            name = "end" if view.state.finished else "progress"
            yield {"event": name, "data": view.model_dump_json(exclude_none=True)}

    return EventSourceResponse(events(), ping=15)


@router.delete("/{job_id}", responses=problem_responses(*JOB_PROBLEMS))
async def cancel_job(job_id: str, services: ServicesDep, caller: CallerDep) -> JobView:
    """Cancel a job: sampling stops at the next chunk. Finished jobs are left as they are."""
    return await services.jobs.cancel(job_id, caller)
