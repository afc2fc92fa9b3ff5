"""RFC 9457 problem details: every error the API returns is ``application/problem+json``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import Scope

from service.core.errors import NoDenoiserForSigma, NotConfigured, UnknownModel, VendorUnavailable
from service.observability import current_request_id

__all__ = [
    "MEDIA_TYPE",
    "PROBLEM_TYPES",
    "Problem",
    "ProblemError",
    "ProblemType",
    "allowed_methods",
    "install_problem_handlers",
    "problem_body",
    "problem_responses",
    "shorten",
]

MEDIA_TYPE = "application/problem+json"
# A problem document never echoes a long value whole: a 5 MB field comes back as its first
# characters and an ellipsis, and at most MAX_ERRORS per-field errors are listed.
MAX_VALUE_CHARS = 200
MAX_DETAIL_CHARS = 1_000
MAX_ERRORS = 20
DETAIL_ERRORS = 2


def shorten(text: str, limit: int = MAX_VALUE_CHARS) -> str:
    """``text`` itself up to ``limit`` characters, else its start and an ellipsis (``limit`` in
    all)."""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


class FieldError(BaseModel):
    field: str = Field(description="the parameter at fault, dotted")
    message: str

    @field_validator("field", "message")
    @classmethod
    def _short(cls, value: str) -> str:
        return shorten(value)


class Problem(BaseModel):
    """An RFC 9457 problem: what went wrong and what to change."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": "/problems/invalid-parameters", "title": "Invalid parameters",
                    "status": 422, "detail": "n: Input should be greater than or equal to 1",
                    "instance": "/v1/certify",
                    "errors": [
                        {"field": "n", "message": "Input should be greater than or equal to 1"}
                    ],
                    "request_id": "4bf92f3577b34da6a3ce929d0e0e4736",
                }
            ]
        }
    )  # fmt: skip

    type: str = Field("about:blank", description="URI reference naming the problem type")
    title: str = Field(description="short summary of the problem type")
    status: int = Field(description="HTTP status code")
    detail: str = Field(description="what went wrong in this request and how to fix it")
    instance: str | None = Field(None, description="the request path")
    errors: list[FieldError] | None = Field(None, description="per-parameter errors")
    request_id: str | None = Field(
        None, description="the request's X-Request-ID: quote it when reporting a problem"
    )

    @field_validator("detail")
    @classmethod
    def _short_detail(cls, value: str) -> str:
        return shorten(value, MAX_DETAIL_CHARS)

    @field_validator("instance")
    @classmethod
    def _short_instance(cls, value: str | None) -> str | None:
        return None if value is None else shorten(value)

    @field_validator("errors")
    @classmethod
    def _few_errors(cls, value: list[FieldError] | None) -> list[FieldError] | None:
        return None if value is None else value[:MAX_ERRORS]


class ProblemError(Exception):
    """Raise anywhere in a request to answer with a problem document."""

    def __init__(
        self,
        *,
        status: int,
        slug: str,
        title: str,
        detail: str,
        headers: dict[str, str] | None = None,
        errors: list[FieldError] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status, self.slug, self.title, self.detail = status, slug, title, detail
        self.headers, self.errors = headers, errors


def problem_body(problem: ProblemError, instance: str | None) -> dict[str, Any]:
    document = Problem(
        type=f"/problems/{problem.slug}" if problem.slug else "about:blank",
        title=problem.title,
        status=problem.status,
        detail=problem.detail,
        instance=instance,
        errors=problem.errors,
        request_id=current_request_id(),
    )
    return document.model_dump(exclude_none=True)


def problem_response(request: Request, problem: ProblemError) -> JSONResponse:
    body = problem_body(problem, request.url.path)
    return JSONResponse(body, problem.status, headers=problem.headers, media_type=MEDIA_TYPE)


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "form")]
    return ".".join(parts) or "body"


def domain_problem(exc: Exception) -> ProblemError | None:
    """The problem document of a domain error raised below the API; None for any other."""
    if isinstance(exc, UnknownModel):  # the name is the caller's: never echo it whole
        known = ", ".join(exc.known)
        return ProblemError(
            status=422,
            slug=f"unknown-{exc.kind}",
            title=f"Unknown {exc.kind}",
            detail=f"no {exc.kind} named {shorten(exc.name)!r} here; choose one of: {known} "
            f"(GET /v1/{exc.kind}s lists them)",
        )
    if isinstance(exc, NoDenoiserForSigma):
        return ProblemError(
            status=422,
            slug="no-denoiser-for-sigma",
            title="No denoiser trained for this sigma",
            detail=f"{exc} (GET /v1/denoisers lists them; 'none' is plain randomized smoothing)",
            errors=[
                FieldError(
                    field="sigma",
                    message="trained sigmas: " + ", ".join(f"{t:g}" for t in exc.trained),
                )
            ],
        )
    if isinstance(exc, NotConfigured):
        return ProblemError(
            status=422,
            slug="classifier-not-configured",
            title="Classifier not configured",
            detail=str(exc),
        )
    if isinstance(exc, VendorUnavailable):
        return ProblemError(
            status=503,
            slug="vendor-unavailable",
            title="Vendor unavailable",
            detail=str(exc),
            headers={"Retry-After": str(max(1, round(exc.retry_after_s)))},
        )
    return None


_METHODS = ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT")


def allowed_methods(routes: Sequence[BaseRoute], scope: Scope) -> list[str]:
    """Every method ``routes`` answer on the path of ``scope``, and OPTIONS; none where no
    route has the path. The routes are asked per method (the public ``BaseRoute.matches``,
    whatever FastAPI's nesting of included routers): Starlette's own 405 names only the first
    matching route's methods, so GET on ``/v1/jobs/{id}`` hid DELETE."""
    methods = [
        method
        for method in _METHODS
        if any(route.matches({**scope, "method": method})[0] is Match.FULL for route in routes)
    ]
    return [*methods, "OPTIONS"] if methods else []


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError) -> JSONResponse:
        return problem_response(request, exc)

    @app.exception_handler(UnknownModel)
    @app.exception_handler(NoDenoiserForSigma)
    @app.exception_handler(NotConfigured)
    @app.exception_handler(VendorUnavailable)
    async def _domain(request: Request, exc: Exception) -> JSONResponse:
        problem = domain_problem(exc)
        assert problem is not None
        return problem_response(request, problem)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # Only the field and pydantic's message, never the ``input`` (the caller's own value).
        found = exc.errors()
        errors = [FieldError(field=_field(e["loc"]), message=e["msg"]) for e in found[:MAX_ERRORS]]
        # The detail names the first few (it fits MAX_DETAIL_CHARS), `errors` up to MAX_ERRORS.
        detail = "; ".join(f"{e.field}: {e.message}" for e in errors[:DETAIL_ERRORS])
        if len(found) > DETAIL_ERRORS:
            detail += f"; and {len(found) - DETAIL_ERRORS} more"
        problem = ProblemError(
            status=422, slug="invalid-parameters", title="Invalid parameters", detail=detail,
            errors=errors,
        )  # fmt: skip
        return problem_response(request, problem)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        titles = {400: "Bad request", 404: "Not found", 405: "Method not allowed"}
        title = titles.get(exc.status_code, "HTTP error")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # RFC 9110: a 405 lists every method of the resource
            headers["Allow"] = ", ".join(allowed_methods(request.app.router.routes, request.scope))
        problem = ProblemError(
            status=exc.status_code, slug="", title=title, detail=str(exc.detail),
            headers=headers or None,
        )  # fmt: skip
        return problem_response(request, problem)


@dataclass(frozen=True, slots=True)
class ProblemType:
    """A kind of problem: its ``type`` URI is ``/problems/<slug>``, a page the app serves."""

    slug: str
    status: int
    title: str
    description: str
    remedy: str

    @property
    def uri(self) -> str:
        return f"/problems/{self.slug}"


_TYPES = (
    ProblemType("malformed-json", 400, "Malformed JSON",
        "The request body is not a JSON object (or not UTF-8).",
        "Send a JSON object, or a multipart/form-data upload, with Content-Type set."),
    ProblemType("unauthorised", 401, "Missing or wrong API key",
        "The request carried no API key, or one this server does not know.",
        "Send the key as `Authorization: Bearer <key>` or `X-API-Key: <key>`."),
    ProblemType("job-not-found", 404, "Job not found",
        "No job has this id for your key: it never existed, belongs to another key, or expired "
        "(jobs are kept for job_ttl_seconds after they finish).",
        "Check the id returned by POST /v1/jobs; submit the job again if it expired."),
    ProblemType("upload-too-large", 413, "Upload too large",
        "The image (or the whole body) is over the server's upload limit.",
        "Send a smaller or more compressed image."),
    ProblemType("image-too-large", 413, "Image not accepted",
        "The decoded image has more pixels than this operation accepts.",
        "Downscale the image (the detail names the limit)."),
    ProblemType("image-too-large-for-models", 413, "Image too large for the models",
        "One noisy copy of the image would not fit the memory of the models' forward pass.",
        "Send the image at most the size the detail names on its longer side."),
    ProblemType("image-too-large-for-classifier", 413, "Image too large for the classifier",
        "A noisy copy of the image, as a PNG, could be larger than the vendor accepts per image: "
        "every copy would fail and vote against the candidate.",
        "Send the image at most the size the detail names on its longer side."),
    ProblemType("unsupported-content-type", 415, "Unsupported content type",
        "The body is neither application/json nor multipart/form-data.",
        "Send JSON with a base64 `image`, or a multipart upload with a file field `image`."),
    ProblemType("image-unsupported", 415, "Image not accepted",
        "The image is in a format the server does not decode.",
        "Send PNG, JPEG, WebP, BMP or GIF."),
    ProblemType("invalid-parameters", 422, "Invalid parameters",
        "A parameter is missing, of the wrong type or out of range; `errors` names each.",
        "Fix the fields listed in `errors` (the OpenAPI document gives every range)."),
    ProblemType("image-empty", 422, "Image not accepted",
        "The image field or file is empty.",
        "Send the image's bytes (base64-encoded in JSON)."),
    ProblemType("image-corrupt", 422, "Image not accepted",
        "The image could not be decoded: truncated, corrupt or not an image.",
        "Send the file as it is on disk; in JSON, check the base64 encoding."),
    ProblemType("unknown-classifier", 422, "Unknown classifier",
        "No classifier of this name is served here.",
        "Choose one of GET /v1/classifiers."),
    ProblemType("unknown-denoiser", 422, "Unknown denoiser",
        "No denoiser of this name is served here.",
        "Choose one of GET /v1/denoisers, or 'none' for plain randomized smoothing."),
    ProblemType("no-denoiser-for-sigma", 422, "No denoiser trained for this sigma",
        "The denoiser was trained for another noise level than the requested sigma.",
        "Use a sigma the denoiser lists (GET /v1/denoisers), another denoiser, or 'none'."),
    ProblemType("classifier-not-configured", 422, "Classifier not configured",
        "The classifier is in the catalog but this server has no credentials or endpoint for it.",
        "Choose a classifier whose `available` is true in GET /v1/classifiers, or ask the "
        "operator to configure it."),
    ProblemType("work-too-large", 422, "Request too large",
        "The request needs more compute than this server allows one request (max_work_tflop).",
        "Lower n, or send a smaller image (the detail says how small)."),
    ProblemType("rate-limited", 429, "Too many requests",
        "The key sent more requests per minute than it may.",
        "Wait for the seconds in Retry-After, then slow down."),
    ProblemType("daily-budget-exhausted", 429, "Daily query budget exhausted",
        "The request needs more classifier queries than the key has left today.",
        "Lower n or n0, or wait until 00:00 UTC."),
    ProblemType("monthly-spend-exhausted", 429, "Monthly spend limit reached",
        "The request could cost more (at its worst case: n0 + n queries at the classifier's "
        "price) than the key has left of its monthly spend limit (`monthly_usd`). Requests are "
        "booked at their worst case when accepted and settled at what they paid when they end.",
        "Lower n or n0, use candidate='clean', wait for running requests to settle, or wait "
        "until the 1st of the month, 00:00 UTC. POST /v1/certify/estimate prices a request; "
        "GET /v1/usage shows the month's spend."),
    ProblemType("too-many-concurrent-requests", 429, "Too many concurrent requests",
        "The key has as many certifications, predictions or jobs running or waiting as it may.",
        "Wait for one to finish (or cancel a job), then retry after Retry-After."),
    ProblemType("too-many-jobs", 429, "Too many jobs",
        "The server's job queue is full.",
        "Retry later."),
    ProblemType("internal-error", 500, "Internal error",
        "The server failed unexpectedly; the error was logged with the request id.",
        "Retry; if it persists, report it with the request_id."),
    ProblemType("vendor-credentials-refused", 502, "Vendor refused the credentials",
        "The classifier's vendor refused the credentials this server is configured with; "
        "nothing was certified or charged.",
        "Ask the operator to fix the vendor credentials; meanwhile use another classifier."),
    ProblemType("chunk-dead-lettered", 502, "Chunk failed on every worker",
        "A chunk of noisy copies failed on every stream worker and was set aside; the same "
        "request is refused for an hour.",
        "Report it with the request_id; the operator must look at the dead-letter stream."),
    ProblemType("backend-unavailable", 503, "Backend unavailable",
        "The vote store (Redis) or the stream workers failed.",
        "Retry after the seconds in Retry-After."),
    ProblemType("no-workers", 503, "No stream workers",
        "No `dsmooth worker` is consuming the sampling stream.",
        "Retry after Retry-After; the operator must start workers."),
    ProblemType("workers-run-other-models", 503, "Workers run other models",
        "A stream worker runs another checkpoint version or precision than the gateway's "
        "certificate would name (a rollout in progress, or DSMOOTH_PRECISION set differently).",
        "Retry after Retry-After; the operator must give gateways and workers the same models."),
    ProblemType("server-busy", 503, "Server busy",
        "As many requests are sampling and waiting as this server queues.",
        "Retry after the seconds in Retry-After."),
    ProblemType("vendor-unavailable", 503, "Vendor unavailable",
        "The classifier's vendor is failing (its circuit breaker is open).",
        "Retry after the seconds in Retry-After, or use another classifier."),
    ProblemType("vendor-model-changed", 503, "Vendor model changed",
        "The vendor's model version changed during the certification: its votes would mix two "
        "classifiers.",
        "Retry: the new version is certified from scratch."),
    ProblemType("server-shutdown", 503, "Server shut down",
        "A job's error: the server shut down before the job finished.",
        "Submit the job again (the votes drawn so far are kept and reused)."),
    ProblemType("job-lost", 503, "Job lost",
        "A job's error: the gateway running it stopped and its request was not kept.",
        "Submit the job again (the votes drawn so far are reused)."),
    ProblemType("job-invalid", 422, "Job no longer valid",
        "A job's error: the gateway running it stopped, and the one taking it over (a newer "
        "version) refuses its stored request.",
        "Submit the job again with options this version accepts."),
    ProblemType("client-closed-request", 499, "Client closed request",
        "The client disconnected before the answer; nobody reads this document, logs and "
        "metrics do.",
        "Nothing: keep the connection open until the answer comes (or use POST /v1/jobs)."),
)  # fmt: skip
PROBLEM_TYPES: dict[str, ProblemType] = {problem.slug: problem for problem in _TYPES}
"""Every problem type the API answers with, by slug (``type`` is ``/problems/<slug>``)."""


_STATUS_DESCRIPTIONS = {
    400: "Malformed request body",
    401: "Missing or wrong API key",
    404: "No such job (a job of another key does not exist for you)",
    413: "Upload or image too large",
    415: "Not an accepted content type or image format",
    422: "Invalid parameters, unknown model or undecodable image",
    429: "Rate limit, budget or concurrency limit reached",
    502: "A vendor refused the configured credentials, or a chunk failed on every worker",
    503: "Vote store, workers or vendor unavailable, the server busy, or the vendor's model "
    "changed",
}


def problem_responses(*kinds: int | str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` of an operation that can answer with these problems: a status
    stands for every registered type of it, a slug for that type alone. Each status is
    documented with its problem types (linked to their pages) and an example document."""
    chosen: dict[int, list[ProblemType]] = {}
    for kind in kinds:
        types = [PROBLEM_TYPES[kind]] if isinstance(kind, str) else _of_status(kind)
        for problem in types:
            listed = chosen.setdefault(problem.status, [])
            if problem not in listed:
                listed.append(problem)
    responses: dict[int | str, dict[str, Any]] = {}
    for status in sorted(chosen):
        types = chosen[status]
        links = ", ".join(f"[`{t.slug}`]({t.uri})" for t in types)
        first = types[0]
        example = {
            "type": first.uri, "title": first.title, "status": status,
            "detail": first.description, "instance": "/v1/...",
            "request_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        }  # fmt: skip
        responses[status] = {
            "description": f"{_STATUS_DESCRIPTIONS[status]}. Problem types: {links}",
            "content": {
                MEDIA_TYPE: {
                    "schema": {"$ref": "#/components/schemas/Problem"},
                    "example": example,
                }
            },
        }
    return responses


def _of_status(status: int) -> list[ProblemType]:
    types = [problem for problem in _TYPES if problem.status == status]
    if not types:
        raise ValueError(f"no problem type of status {status} is registered")
    return types
