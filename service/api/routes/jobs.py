"""Background jobs: POST /v1/jobs, GET /v1/jobs/{id}, its SSE events, DELETE to cancel."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter, Request, Response
from sse_starlette import EventSourceResponse

from service.api.inputs import read_image_request
from service.api.jobs import JobRecord, JobView
from service.api.problems import PROBLEM_RESPONSES
from service.api.routes.deps import CallerDep, ServicesDep
from service.api.routes.openapi_bodies import image_body
from service.api.schemas import JobOptions, JobRequest
from service.api.services import problem_for

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=PROBLEM_RESPONSES)


@router.post("", status_code=202, openapi_extra=image_body(JobRequest))
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


@router.get("/{job_id}")
async def get_job(job_id: str, services: ServicesDep, caller: CallerDep) -> JobView:
    """The job's state, progress (samples done of planned) and, once finished, its result."""
    return await services.jobs.view(job_id, caller)


@router.get(
    "/{job_id}/events",
    response_class=EventSourceResponse,
    responses={
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
                    }
                }
            },
        }
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


@router.delete("/{job_id}")
async def cancel_job(job_id: str, services: ServicesDep, caller: CallerDep) -> JobView:
    """Cancel a job: sampling stops at the next chunk. Finished jobs are left as they are."""
    return await services.jobs.cancel(job_id, caller)
