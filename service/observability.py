"""Request ids, structured logs and tracing: following one certification through the gateway,
its chunks (here or on a worker) and its vendor calls.

- Request ids: ``X-Request-ID`` accepted (a token of at most 128 safe characters) or generated,
  echoed on the response (``service.api.access``), and read here from a context variable by
  logs, problem documents, certificates and stream tasks.
- Logs: ``DSMOOTH_LOG_FORMAT=json`` writes one JSON object per line (python-json-logger) with
  the request id; the gateway logs one access line per request (route, status, latency, key
  name — never the key — and queries).
- Tracing: OpenTelemetry spans for each request, chunk and vendor call. Only the API is a
  dependency, and without an SDK its spans cost nothing; ``pip install
  'denoised-smoothing[otel]'`` and ``DSMOOTH_OTEL=true`` export them (OTLP over HTTP, configured
  by the standard ``OTEL_*`` variables). A chunk sent to a worker carries its ``traceparent``, so
  the worker's span joins the request's trace across the Redis stream.

No torch, no web framework here: every layer may import it.
"""

from __future__ import annotations

import logging
import re
import sys
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from opentelemetry import context, propagate, trace

__all__ = [
    "REQUEST_ID_HEADER",
    "configure_logging",
    "current_request_id",
    "new_request_id",
    "request_id_var",
    "span",
    "start_tracing",
    "trace_carrier",
    "valid_request_id",
    "with_trace_parent",
]

REQUEST_ID_HEADER = "X-Request-ID"
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

_tracer = trace.get_tracer("dsmooth")
request_id_var: ContextVar[str | None] = ContextVar("dsmooth_request_id", default=None)


def valid_request_id(value: str) -> bool:
    """A client's id is kept when it is a short token; anything else is replaced by ours."""
    return bool(_SAFE_ID.match(value))


def new_request_id() -> str:
    return uuid.uuid4().hex


def current_request_id() -> str | None:
    """The id of the request being served (None outside a request)."""
    return request_id_var.get()


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id() or "-"
        return True


def configure_logging(fmt: str = "text", level: str = "INFO") -> None:
    """One handler on the root logger: plain text, or one JSON object per line."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_RequestIdFilter())
    if fmt == "json":
        from pythonjsonlogger.json import JsonFormatter

        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
        )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())


def start_tracing(service_name: str) -> bool:
    """Export spans over OTLP (the ``otel`` extra); False (spans stay no-ops) without it."""
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        logging.getLogger("dsmooth").warning(
            "DSMOOTH_OTEL is set but the otel extra is not installed "
            "(pip install 'denoised-smoothing[otel]'): no spans are exported"
        )
        return False
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return True


@contextmanager
def span(name: str, **attributes: Any) -> Iterator[trace.Span]:
    """A span under the current one, with the request id among its attributes."""
    request_id = current_request_id()
    if request_id is not None:
        attributes.setdefault("dsmooth.request_id", request_id)
    with _tracer.start_as_current_span(name, attributes=attributes) as current:
        yield current


def trace_carrier() -> dict[str, str]:
    """The current trace context as W3C headers (``traceparent``), to travel with a task."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


@contextmanager
def with_trace_parent(carrier: Mapping[str, str], request_id: str | None) -> Iterator[None]:
    """Run a block (a worker's chunk) inside the trace and request of the task it came from."""
    token = context.attach(propagate.extract(dict(carrier)))
    reset = request_id_var.set(request_id)
    try:
        yield
    finally:
        request_id_var.reset(reset)
        context.detach(token)
