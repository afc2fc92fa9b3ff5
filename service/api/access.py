"""One middleware per request: its id, its span, its access log line.

The id comes from the client's ``X-Request-ID`` when that is a short token, else a new one; it is
echoed on the response and set in :data:`service.observability.request_id_var` for the logs,
problem documents, certificates and stream tasks made while serving the request. The access line
names the route template (never the raw path), status, latency, the key's *name* and the
classifier queries the request sent."""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.observability import (
    REQUEST_ID_HEADER,
    new_request_id,
    request_id_var,
    span,
    valid_request_id,
)

__all__ = ["AccessMiddleware"]

log = logging.getLogger("dsmooth.access")
_HEADER = REQUEST_ID_HEADER.lower().encode()


class AccessMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = dict(scope["headers"]).get(_HEADER, b"").decode("latin-1")
        request_id = sent if valid_request_id(sent) else new_request_id()
        token = request_id_var.set(request_id)
        scope.setdefault("state", {})
        start, status = time.perf_counter(), 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != _HEADER]
                message["headers"] = [*headers, (_HEADER, request_id.encode())]
            await send(message)

        method = scope["method"]
        try:
            with span(f"{method} {scope['path']}", **{"http.request.method": method}) as current:
                await self.app(scope, receive, send_with_id)
                route = getattr(scope.get("route"), "path", "unmatched")
                current.update_name(f"{method} {route}")
                current.set_attribute("http.route", route)
                current.set_attribute("http.response.status_code", status)
        finally:
            state = scope["state"]
            log.info(
                "%s %s %s",
                method,
                getattr(scope.get("route"), "path", "unmatched"),
                status,
                extra={
                    "route": getattr(scope.get("route"), "path", "unmatched"),
                    "method": method,
                    "status": status,
                    "latency_ms": round(1000 * (time.perf_counter() - start), 1),
                    "key": state.get("key_name"),
                    "queries": state.get("queries"),
                },
            )
            request_id_var.reset(token)
