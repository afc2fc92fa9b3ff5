"""The app factory: ``create_app(settings)`` builds the FastAPI gateway."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from importlib.metadata import version
from typing import Any

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic.json_schema import models_json_schema
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from service.api.access import AccessMiddleware
from service.api.inputs import BodySizeLimit
from service.api.metrics import MetricsMiddleware
from service.api.problems import (
    ProblemError,
    allowed_methods,
    install_problem_handlers,
    problem_response,
)
from service.api.routes import (
    catalog,
    certify,
    demo,
    estimate,
    health,
    jobs,
    keys,
    preview,
    problem_types,
    usage,
)
from service.api.routes.openapi_bodies import EXTRA_SCHEMAS, form_schemas
from service.api.services import Services
from service.config import Settings
from service.observability import REQUEST_ID_HEADER

__all__ = ["create_app"]

log = logging.getLogger("dsmooth")

DESCRIPTION = """\
Certified robustness for image classifiers you can only query, by denoised randomized smoothing.

Send an image; the service draws noisy copies, denoises them, asks the classifier about each, and
answers with the majority label and a **certified L2 radius** (in [0, 1] pixel units): no
perturbation smaller than the radius can change the smoothed label, with probability at least
1 - alpha over the service's own randomness. Errors are RFC 9457 `application/problem+json`.
"""


def _operation_id(route: APIRoute) -> str:
    """Operation ids are the route functions' names: they become SDK method names."""
    return route.name


class AnswerOptions:
    """``OPTIONS`` on a path the app has: 204 with ``Allow`` naming every method of the path
    (RFC 9110 9.3.7; ``Allow`` also lists HEAD and OPTIONS); on other paths the 404 as for any
    method. CORS preflights never get here: CORSMiddleware, outside, answers them."""

    def __init__(self, app: ASGIApp, routes: Sequence[BaseRoute]) -> None:
        self.app, self.routes = app, routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "OPTIONS":
            methods = allowed_methods(self.routes, scope)
            if methods:
                response = Response(status_code=204, headers={"Allow": ", ".join(methods)})
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _drop_validation_errors(schema: dict[str, Any]) -> None:
    """FastAPI documents a 422 ``HTTPValidationError`` on every operation with a parameter; this
    API's 422 is a problem document, documented where it can happen (a path parameter of type
    string cannot fail), so FastAPI's own goes."""
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses", {})
            content = responses.get("422", {}).get("content", {}).get("application/json", {})
            if content.get("schema", {}).get("$ref", "").endswith("/HTTPValidationError"):
                del responses["422"]
    schemas = schema.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    services = Services(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await services.start()
        yield
        await services.close()

    app = FastAPI(
        title="denoised-smoothing",
        version=version("denoised-smoothing"),
        description=DESCRIPTION,
        lifespan=lifespan,
        generate_unique_id_function=_operation_id,
        docs_url=None,  # served by the demo router from local files (no CDN)
        redoc_url=None,
    )
    app.state.services = services
    install_problem_handlers(app)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path, exc_info=exc)
        detail = "the server failed unexpectedly; the error was logged"
        problem = ProblemError(
            status=500, slug="internal-error", title="Internal error", detail=detail
        )
        return problem_response(request, problem)

    routers = (
        certify.router,
        estimate.router,
        preview.router,
        jobs.router,
        catalog.router,
        usage.router,
        keys.router,
        health.router,
    )
    for router in (*routers, problem_types.router, demo.router):
        app.include_router(router)
    app.add_middleware(AnswerOptions, routes=app.router.routes)
    # Base64 adds a third to the image; leave room for the other fields.
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_upload_bytes * 4 // 3 + 65_536)
    app.add_middleware(MetricsMiddleware, metrics=services.metrics)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", REQUEST_ID_HEADER],
            expose_headers=[REQUEST_ID_HEADER],
        )
    # Outermost: the request id and span cover everything below, CORS answers included.
    app.add_middleware(AccessMiddleware)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            _, defs = models_json_schema(
                [(model, "validation") for model in EXTRA_SCHEMAS],
                ref_template="#/components/schemas/{model}",
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(defs["$defs"])
            components.update(form_schemas(components))
            _drop_validation_errors(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
