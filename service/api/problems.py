"""RFC 9457 problem details: every error the API returns is ``application/problem+json``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, field_validator
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import Scope

from service.core.errors import NoDenoiserForSigma, NotConfigured, UnknownModel, VendorUnavailable
from service.observability import current_request_id

__all__ = [
    "MEDIA_TYPE",
    "PROBLEM_RESPONSES",
    "Problem",
    "ProblemError",
    "allowed_methods",
    "install_problem_handlers",
    "problem_body",
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


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {
        "description": description,
        "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    for status, description in {
        400: "Malformed request body",
        401: "Missing or wrong API key",
        404: "No such resource (a job of another key does not exist for you)",
        413: "Upload or image too large",
        415: "Not an accepted image format",
        422: "Invalid parameters or undecodable image",
        429: "Budget or rate limit exhausted",
        502: "A vendor refused the configured credentials, or a chunk failed on every worker",
        503: "Vote store, workers or vendor unavailable, or the vendor's model changed",
    }.items()
}
