"""A convenience layer over the generated client (``dsmooth_client``): images as paths or
bytes, typed options, problems raised as :class:`ProblemError`, job events streamed as they
happen, and the offline check of signed certificates."""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self, TypedDict, TypeVar, Unpack

import httpx
from attrs import define, field
from dsmooth_client import AuthenticatedClient
from dsmooth_client.api.catalog import list_classifiers, list_denoisers
from dsmooth_client.api.certification import certify, estimate_certify, predict, signing_keys
from dsmooth_client.api.jobs import cancel_job, create_job, get_job
from dsmooth_client.api.usage import get_usage
from dsmooth_client.models import (
    Certificate,
    CertifyEstimateRequest,
    CertifyRequest,
    ClassifierInfo,
    CostEstimate,
    DenoiserInfo,
    JobRequest,
    JobState,
    JobView,
    Prediction,
    PredictRequest,
    Problem,
    Usage,
)
from dsmooth_client.types import Response

from dsmooth.sse import ServerSentEvent, aparse, parse
from dsmooth.verify import Verdict, verify_certificate

__all__ = [
    "CertifyOptions",
    "DsmoothClient",
    "ImageInput",
    "JobEvent",
    "JobOptions",
    "PredictOptions",
    "ProblemError",
    "SignedCertificate",
]

#: An image: a path, or the file's bytes (PNG, JPEG, WebP, BMP, GIF).
ImageInput = bytes | str | os.PathLike[str]

_FINISHED = (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)
T = TypeVar("T")


class PredictOptions(TypedDict, total=False):
    """The fields of ``POST /v1/predict`` besides the image (tests keep them in step with the
    generated ``PredictRequest``)."""

    alpha: float
    budget: int | None
    classifier: str | None
    denoiser: str | None
    label_map: dict[str, str] | None
    max_cost: float | None
    n: int
    sigma: float


class CertifyOptions(PredictOptions, total=False):
    """The fields of ``POST /v1/certify`` besides the image."""

    candidate: Literal["noisy", "clean"] | None
    first_look: int | None
    futility: float
    look_every: int | None
    mode: Literal["fixed", "sequential"]
    n0: int
    target_radius: float | None
    tolerance: float


class JobOptions(CertifyOptions, total=False):
    """The fields of ``POST /v1/jobs`` besides the image."""

    operation: Literal["certify", "predict"]


class ProblemError(Exception):
    """An RFC 9457 problem answered by the API (any 4xx or 5xx)."""

    def __init__(self, status: int, problem: Problem) -> None:
        super().__init__(f"{status} {problem.title}: {problem.detail}")
        self.status = status
        self.problem = problem


@define
class SignedCertificate(Certificate):
    """A certificate as the generated model, with ``document``: the JSON object exactly as the
    service sent it. The signature covers that JSON, so it is what to store and to verify (a
    model drops the members its SDK version does not know)."""

    document: dict[str, Any] = field(factory=dict, eq=False, repr=False, kw_only=True)

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> SignedCertificate:
        certificate = cls.from_dict(document)
        certificate.document = dict(document)
        return certificate


@dataclass(frozen=True, slots=True)
class JobEvent:
    """One Server-Sent Event of a job: ``progress`` after every chunk, ``end`` once finished."""

    event: str
    job: JobView


def _encoded(image: ImageInput) -> str:
    data = image if isinstance(image, bytes) else Path(image).read_bytes()
    return base64.b64encode(data).decode()


def _problem(status: int, content: bytes) -> ProblemError:
    try:
        return ProblemError(status, Problem.from_dict(json.loads(content)))
    except (ValueError, KeyError, TypeError):
        detail = content.decode(errors="replace")[:500]
        return ProblemError(
            status, Problem(type_="about:blank", title="HTTP error", status=status, detail=detail)
        )


def _parsed(response: Response[T | Problem]) -> T:
    if isinstance(response.parsed, Problem) or response.parsed is None:
        raise _problem(int(response.status_code), response.content)
    return response.parsed


def _job(document: Mapping[str, Any]) -> JobView:
    """The job, its certificate (if it has one) as a :class:`SignedCertificate`."""
    job = JobView.from_dict(document)
    result = document.get("result")
    if isinstance(job.result, Certificate) and isinstance(result, Mapping):
        job.result = SignedCertificate.from_json(result)
    return job


def _json(response: Response[Any]) -> Any:
    if isinstance(response.parsed, Problem) or response.parsed is None:
        raise _problem(int(response.status_code), response.content)
    return json.loads(response.content)


def _job_event(event: ServerSentEvent) -> JobEvent:
    return JobEvent(event.event, _job(json.loads(event.data)))


class DsmoothClient:
    """The denoised-smoothing API: ``DsmoothClient("http://127.0.0.1:8000", api_key=KEY)``.

    ``raw`` is the generated ``AuthenticatedClient``, for anything this layer does not wrap
    (``dsmooth_client.api.*`` functions take it as ``client=``).
    """

    def __init__(
        self, base_url: str, api_key: str | None = None, *, timeout: float = 120.0
    ) -> None:
        # Without a key (a development server) nothing identifies the caller: an empty
        # X-API-Key header, which an open server ignores and a keyed one answers with a 401.
        self.raw = AuthenticatedClient(
            base_url=base_url,
            token=api_key or "",
            prefix="Bearer" if api_key else "",
            auth_header_name="Authorization" if api_key else "X-API-Key",
            timeout=httpx.Timeout(timeout),
            raise_on_unexpected_status=True,
        )
        self._keys: dict[str, Any] | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self.raw.get_httpx_client().close()

    async def aclose(self) -> None:
        await self.raw.get_async_httpx_client().aclose()

    # --- requests ----------------------------------------------------------------------------

    def certify(self, image: ImageInput, **options: Unpack[CertifyOptions]) -> SignedCertificate:
        """CERTIFY: the smoothed label and its certified L2 radius, signed."""
        body = CertifyRequest.from_dict({**options, "image": _encoded(image)})
        return SignedCertificate.from_json(_json(certify.sync_detailed(client=self.raw, body=body)))

    def estimate(
        self, image: ImageInput | None = None, **options: Unpack[CertifyOptions]
    ) -> CostEstimate:
        """What :meth:`certify` with these options would cost, worst case and expected, before
        anything runs (free: no query, nothing booked). The image is optional."""
        fields: dict[str, Any] = dict(options)
        if image is not None:
            fields["image"] = _encoded(image)
        body = CertifyEstimateRequest.from_dict(fields)
        return _parsed(estimate_certify.sync_detailed(client=self.raw, body=body))

    def usage(self) -> Usage:
        """This key's queries today and spend this month, beside its limits."""
        return _parsed(get_usage.sync_detailed(client=self.raw))

    def predict(self, image: ImageInput, **options: Unpack[PredictOptions]) -> Prediction:
        """PREDICT with abstention."""
        body = PredictRequest.from_dict({**options, "image": _encoded(image)})
        return _parsed(predict.sync_detailed(client=self.raw, body=body))

    def create_job(self, image: ImageInput, **options: Unpack[JobOptions]) -> JobView:
        """Start a certification (or prediction) in the background; follow it with
        :meth:`events` or :meth:`wait_for_job`."""
        body = JobRequest.from_dict({**options, "image": _encoded(image)})
        return _job(_json(create_job.sync_detailed(client=self.raw, body=body)))

    def get_job(self, job_id: str) -> JobView:
        """The job; once it has succeeded, ``result`` is a :class:`SignedCertificate` (or a
        prediction)."""
        return _job(_json(get_job.sync_detailed(job_id, client=self.raw)))

    def cancel_job(self, job_id: str) -> JobView:
        return _job(_json(cancel_job.sync_detailed(job_id, client=self.raw)))

    def wait_for_job(
        self, job_id: str, *, poll_interval: float = 0.25, timeout: float | None = None
    ) -> JobView:
        """Poll until the job has finished; returns the finished job."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while (job := self.get_job(job_id)).state not in _FINISHED:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} is still {job.state.value}")
            time.sleep(poll_interval)
        return job

    def events(self, job_id: str) -> Iterator[JobEvent]:
        """The job's events as they happen (Server-Sent Events over a streamed response): a
        ``progress`` event after every chunk, and a last ``end`` event with the finished job.

        >>> for event in client.events(job.id):
        ...     print(event.event, event.job.progress.done, event.job.progress.planned)
        """
        http = self.raw.get_httpx_client()
        with http.stream(
            "GET", f"/v1/jobs/{job_id}/events", headers={"Accept": "text/event-stream"}
        ) as response:
            if response.status_code != 200:
                raise _problem(response.status_code, response.read())
            for event in parse(response.iter_lines()):
                job_event = _job_event(event)
                yield job_event
                if job_event.event == "end":
                    return

    async def aevents(self, job_id: str) -> AsyncIterator[JobEvent]:
        """:meth:`events` for asyncio (``async for event in client.aevents(job.id)``)."""
        http = self.raw.get_async_httpx_client()
        async with http.stream(
            "GET", f"/v1/jobs/{job_id}/events", headers={"Accept": "text/event-stream"}
        ) as response:
            if response.status_code != 200:
                raise _problem(response.status_code, await response.aread())
            async for event in aparse(response.aiter_lines()):
                job_event = _job_event(event)
                yield job_event
                if job_event.event == "end":
                    return

    def classifiers(self) -> list[ClassifierInfo]:
        return _parsed(list_classifiers.sync_detailed(client=self.raw))

    def denoisers(self) -> list[DenoiserInfo]:
        return _parsed(list_denoisers.sync_detailed(client=self.raw))

    # --- signed certificates -----------------------------------------------------------------

    def signing_keys(self, *, refresh: bool = False) -> dict[str, Any]:
        """The service's public keys (a JWKS), fetched once."""
        if self._keys is None or refresh:
            response = signing_keys.sync_detailed(client=self.raw)
            if response.status_code != 200:
                raise _problem(int(response.status_code), response.content)
            self._keys = json.loads(response.content)
        return self._keys

    def verify(
        self,
        certificate: Certificate | Mapping[str, Any],
        image: bytes | os.PathLike[str] | None = None,
        *,
        image_digest: str | None = None,
    ) -> Verdict:
        """:func:`dsmooth.verify_certificate` with this service's published keys."""
        return verify_certificate(
            certificate, self.signing_keys(), image, image_digest=image_digest
        )
