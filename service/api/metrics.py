"""Prometheus metrics of one app instance (its own registry, so test apps never collide)."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.core.results import Certificate, Prediction

__all__ = ["Metrics", "MetricsMiddleware"]

# The *_created series only double the exposition; rate() needs none of them.
disable_created_metrics()


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "dsmooth_http_requests_total",
            "HTTP requests by route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "dsmooth_http_request_duration_seconds",
            "HTTP request latency by route",
            ["method", "route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=self.registry,
        )
        self.samples = Counter(
            "dsmooth_samples_total",
            "noisy samples drawn and classified (rate() gives samples/s)",
            ["classifier", "denoiser"],
            registry=self.registry,
        )
        self.queries = Counter(
            "dsmooth_classifier_queries_total",
            "classifier queries by outcome: answered, cached (vote-store hit), failed",
            ["classifier", "outcome"],
            registry=self.registry,
        )
        self.jobs = Gauge(
            "dsmooth_jobs", "jobs in memory by state", ["state"], registry=self.registry
        )
        self.admitted = Gauge(
            "dsmooth_admitted_requests",
            "certifications, predictions, jobs and previews admitted: sampling or waiting",
            ["state"],
            registry=self.registry,
        )

    def watch(
        self, gauge: Gauge, states: Iterable[str], read: Callable[[], Mapping[str, int]]
    ) -> None:
        """Make ``gauge`` report ``read()[state]`` for each state, read when scraped."""
        for state in states:
            gauge.labels(state).set_function(functools.partial(_count, read, state))

    def record(self, result: Certificate | Prediction) -> None:
        queries = result.queries
        classifier = result.classifier.name
        self.samples.labels(classifier, result.denoiser.name).inc(queries.total - queries.cached)
        answered = queries.total - queries.cached - queries.failed
        self.queries.labels(classifier, "answered").inc(answered)
        self.queries.labels(classifier, "cached").inc(queries.cached)
        self.queries.labels(classifier, "failed").inc(queries.failed)


def _count(read: Callable[[], Mapping[str, int]], state: str) -> float:
    return read().get(state, 0)


class MetricsMiddleware:
    """Counts requests and their latency by route template (never by raw path)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            method = scope["method"]
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(time.perf_counter() - start)
