"""RFC 9457 problem details: every error the API returns is ``application/problem+json``."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

__all__ = [
    "MEDIA_TYPE",
    "PROBLEM_RESPONSES",
    "Problem",
    "ProblemError",
    "install_problem_handlers",
    "problem_body",
]

MEDIA_TYPE = "application/problem+json"


class FieldError(BaseModel):
    field: str = Field(description="the parameter at fault, dotted")
    message: str


class Problem(BaseModel):
    """An RFC 9457 problem: what went wrong and what to change."""

    type: str = Field("about:blank", description="URI reference naming the problem type")
    title: str = Field(description="short summary of the problem type")
    status: int = Field(description="HTTP status code")
    detail: str = Field(description="what went wrong in this request and how to fix it")
    instance: str | None = Field(None, description="the request path")
    errors: list[FieldError] | None = Field(None, description="per-parameter errors")


class ProblemError(Exception):
    """Raise anywhere in a request to answer with a problem document."""

    def __init__(
        self,
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


def problem_body(
    status: int,
    slug: str,
    title: str,
    detail: str,
    instance: str | None,
    errors: list[FieldError] | None = None,
) -> dict[str, Any]:
    problem = Problem(
        type=f"/problems/{slug}" if slug else "about:blank",
        title=title,
        status=status,
        detail=detail,
        instance=instance,
        errors=errors,
    )
    return problem.model_dump(exclude_none=True)


def problem_response(
    request: Request,
    status: int,
    slug: str,
    title: str,
    detail: str,
    headers: dict[str, str] | None = None,
    errors: list[FieldError] | None = None,
) -> JSONResponse:
    body = problem_body(status, slug, title, detail, request.url.path, errors)
    return JSONResponse(body, status, headers=headers, media_type=MEDIA_TYPE)


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "form")]
    return ".".join(parts) or "body"


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError) -> JSONResponse:
        return problem_response(
            request, exc.status, exc.slug, exc.title, exc.detail, exc.headers, exc.errors
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [FieldError(field=_field(e["loc"]), message=e["msg"]) for e in exc.errors()]
        detail = "; ".join(f"{e.field}: {e.message}" for e in errors)
        return problem_response(
            request, 422, "invalid-parameters", "Invalid parameters", detail, errors=errors
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        title = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, "HTTP error")
        return problem_response(
            request, exc.status_code, "", title, str(exc.detail), dict(exc.headers or {}) or None
        )


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
        502: "A vendor refused the configured credentials",
        503: "Vote store, workers or vendor unavailable, or the vendor's model changed",
    }.items()
}
