"""What one API request goes through: decode, check limits and budgets, certify, account.

:class:`Services` holds the process-wide parts (catalog, vote store, jobs, metrics, auth) and is
created by the app factory; routes call :meth:`Services.certify` / :meth:`Services.predict`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from redis.exceptions import RedisError

from service.adapters.base import CredentialsError
from service.adapters.prepare import encode_copies
from service.api.admission import Admission, Ticket
from service.api.auth import (
    Authenticator,
    Booking,
    DailyBudgets,
    MemoryQuotas,
    Principal,
    Quotas,
    RateLimits,
)
from service.api.catalog import Catalog
from service.api.jobs import Cleanup, JobManager, JobState, Runner
from service.api.metrics import Metrics
from service.api.problems import FieldError, Problem, ProblemError, domain_problem
from service.api.schemas import (
    CertifyOptions,
    CostEstimate,
    JobOptions,
    PredictOptions,
    Preview,
    PreviewOptions,
    Usage,
)
from service.config import Settings
from service.core.certifier import Certifier, ModelVersionChanged, Progress, Sampler
from service.core.ledger import InMemoryLedger, Ledger
from service.core.noise import Chunk, Phase
from service.core.query_estimate import estimate_queries, worst_case_queries
from service.core.results import Certificate, CertifyParams, Prediction, PredictParams
from service.core.signing import Signer
from service.core.votes import InMemoryVoteStore, VoteStore
from service.distributed.client import StreamClient, workers_alive
from service.distributed.protocol import DeadLettered, ModelsDiffer, NoWorkers, StreamError
from service.distributed.redis_jobs import RedisJobRecords
from service.distributed.redis_ledger import RedisLedger
from service.distributed.redis_quotas import RedisQuotas
from service.distributed.redis_store import RedisVoteStore, connect_redis
from service.imaging import ImageDecodeError, decode_image, decoding_notes

__all__ = ["Prepared", "Services", "problem_for"]

log = logging.getLogger("dsmooth")

R = TypeVar("R", Certificate, Prediction)

PREVIEW_MAX_PIXELS = 512 * 512
_DECODE_STATUS = {"empty": 422, "unsupported": 415, "too_large": 413, "corrupt": 422}


@dataclass(slots=True)
class Prepared:
    """A request that passed every check, ready to sample: it holds an admission ticket and
    its planned queries booked on the key's budget until :meth:`Services.finish` settles them."""

    principal: Principal
    certifier: Certifier
    image: torch.Tensor
    params: CertifyParams | PredictParams
    planned: int
    ticket: Ticket
    booking: Booking | None = None
    settled: bool = False
    job: bool = False  # runs as a background job (which another replica may take over)
    resumed: bool = False  # a job taken over from a gateway that stopped

    def booking_json(self) -> str:
        """The booking, for a job record (another replica settles it if it takes over)."""
        assert self.booking is not None, "prepare() books every request"
        return self.booking.to_json()


class Services:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.redis = connect_redis(settings.redis_url) if settings.redis_url else None
        stream = None
        if self.redis is not None and settings.execution == "stream":
            stream = StreamClient(
                self.redis,
                timeout_s=settings.stream_timeout_s,
                heartbeat_timeout_s=settings.stream_heartbeat_timeout_s,
                cold_start_s=settings.stream_cold_start_s,
            )
        quotas: Quotas = RedisQuotas(self.redis) if self.redis is not None else MemoryQuotas()
        pacers = quotas.pacer if isinstance(quotas, RedisQuotas) else None
        self.catalog = Catalog(settings, stream, pacers)
        self.store: VoteStore = (
            RedisVoteStore(self.redis, settings.vote_ttl_seconds)
            if self.redis is not None
            else InMemoryVoteStore()
        )
        self.ledger: Ledger = (
            RedisLedger(self.redis) if self.redis is not None else InMemoryLedger()
        )
        self.signer = signer_for(settings)
        records = RedisJobRecords(self.redis) if self.redis is not None else None
        self.jobs = JobManager(settings.job_ttl_seconds, settings.max_jobs, records)
        self.metrics = Metrics()
        self.auth = Authenticator(settings.api_keys, settings.open_access)
        # One count for every replica when they share a Redis.
        self.budgets = DailyBudgets(quotas)
        self.rate_limits = RateLimits(settings.requests_per_minute_per_key, quotas)
        self.admission = Admission(settings.max_running, settings.max_queued, settings.max_per_key)
        self.metrics.watch(
            self.metrics.admitted, ("running", "waiting"), lambda: self.admission.load
        )
        self.metrics.watch(self.metrics.jobs, [s.value for s in JobState], self.jobs.counts)

    async def start(self) -> None:
        # Models load on first use; warming them all runs in the background (readiness says
        # when it is done), so start-up does not wait for every checkpoint.
        self._warming = asyncio.create_task(asyncio.to_thread(self.catalog.pool.warm_up))
        self._warming.add_done_callback(_log_failure)
        self.jobs.start_takeovers(self._resume_job, problem_for)
        if self.auth.open_access:
            log.warning(
                "open access: no API keys are configured (development only); set "
                "DSMOOTH_API_KEYS and DSMOOTH_ENVIRONMENT=production to require keys"
            )
        else:
            log.info("API keys required: %d configured", len(self.settings.api_keys))

    async def close(self) -> None:
        await self.jobs.shutdown()
        await self.catalog.close()
        if self.redis is not None:
            await self.redis.aclose()

    async def readiness(self) -> dict[str, bool]:
        """What /readyz reports: models loaded, vote store reachable, workers alive (stream)."""
        checks = {"models": self.catalog.pool.warm, "vote_store": await _answers(self.store.ping())}
        if self.catalog.stream is not None and self.redis is not None:
            checks["workers"] = await _answers(_any(workers_alive(self.redis)))
        return checks

    async def prepare(
        self,
        principal: Principal,
        options: CertifyOptions | PredictOptions,
        image_bytes: bytes,
        booking: Booking | None = None,
    ) -> Prepared:
        """Everything that can be refused before sampling — models, caps, the image, the work it
        costs, admission, the key's budget — in that order; the caller must hand the result to
        :meth:`certify`, :meth:`predict` or :meth:`finish`."""
        denoiser, sampler, params, planned = self._plan(options)
        image = await self._decode(image_bytes, self.settings.max_pixels)
        await self._check_work(
            sampler.classifier_ref.name, denoiser, image, planned, self._work_limit(principal)
        )
        self._check_copy_size(sampler.classifier_ref.name, image)
        warnings = self.catalog.warnings(
            sampler.classifier_ref.name, denoiser, params.sigma, tuple(image.shape)
        ) + await asyncio.to_thread(decoding_notes, image_bytes)
        ticket = self.admission.admit(principal)
        prepared = Prepared(
            principal,
            Certifier(sampler, self.settings.secret_bytes, self.store, self.ledger, warnings),
            image,
            params,
            planned,
            ticket,
        )
        try:
            with redis_failures():  # a job taken over keeps the booking it was accepted with
                prepared.booking = booking or await self.budgets.reserve(
                    principal, planned, sampler.price_per_query
                )
        except BaseException:
            ticket.release()
            raise
        return prepared

    def _plan(
        self, options: CertifyOptions | PredictOptions
    ) -> tuple[str, Sampler, CertifyParams | PredictParams, int]:
        """The request's models, parameters and worst-case queries, checked against the
        classifier's cap, its ``budget`` and its ``max_cost``: (denoiser, sampler, params,
        planned queries). Nothing is decoded, booked or sampled."""
        denoiser = self.catalog.denoiser_for(options.denoiser, options.sigma, options.classifier)
        sampler = self.catalog.sampler(options.classifier, denoiser, options.label_map)
        if options.label_map and not sampler.label_map:  # never silently certify without it
            raise _invalid(
                "label_map",
                "applies to the vendors' classifiers only (GET /v1/classifiers: "
                "kind remote); a local model's classes are its own",
            )
        try:
            params = options.params(paid=sampler.price_per_query > 0)
        except ValidationError as exc:  # checked again once defaults are resolved
            raise RequestValidationError(exc.errors()) from exc
        planned = params.n
        if isinstance(params, CertifyParams):
            planned = worst_case_queries(params)
        cap = self.catalog.max_n(sampler.classifier_ref.name)
        if planned > cap:
            raise _invalid("n", f"n0 + n = {planned:,} exceeds this classifier's cap of {cap:,}")
        if options.budget is not None and planned > options.budget:
            raise _invalid(
                "budget",
                f"the request needs {planned:,} queries, over its budget of "
                f"{options.budget:,}; lower n or n0, or use candidate='clean'",
            )
        cost = planned * sampler.price_per_query
        if options.max_cost is not None and cost > options.max_cost:
            raise _invalid(
                "max_cost",
                f"the request may cost up to ${cost:.4f} ({planned:,} queries), "
                f"over its max_cost of ${options.max_cost:.4f}; lower n or use mode='sequential'",
            )
        return denoiser, sampler, params, planned

    def _work_limit(self, principal: Principal) -> float:
        return min(self.settings.max_work_tflop, principal.max_work_tflop or float("inf"))

    async def estimate(
        self, principal: Principal, options: CertifyOptions, image_bytes: bytes | None
    ) -> CostEstimate:
        """What certifying with ``options`` would cost, worst case and expected, refused for
        the same reasons as :meth:`prepare` up to the work check; the image, where given, is
        decoded and checked like an upload to certify (and sets the chunk size the sequential
        plan depends on) but never sent anywhere. Books nothing, draws nothing."""
        denoiser, sampler, params, _ = self._plan(options)
        assert isinstance(params, CertifyParams)
        shape = None
        if image_bytes is not None:
            image = await self._decode(image_bytes, self.settings.max_pixels)
            await self._check_work(
                sampler.classifier_ref.name,
                denoiser,
                image,
                worst_case_queries(params),
                self._work_limit(principal),
            )
            shape = tuple(image.shape)
        found = await asyncio.to_thread(estimate_queries, params, sampler.price_per_query, shape)
        return CostEstimate.of(found, params, sampler.classifier_ref, image=shape is not None)

    async def usage(self, principal: Principal) -> Usage:
        """The key's queries today and spend this month, with its limits."""
        with redis_failures():
            return Usage.of(await self.budgets.usage(principal))

    async def admit_rate(self, principal: Principal) -> None:
        """The key's request rate (429 when over), counted across replicas with Redis."""
        with redis_failures():
            await self.rate_limits.admit(principal)

    def _check_copy_size(self, classifier: str, image: torch.Tensor) -> None:
        """Refuse, before anything is booked, an image whose noisy copies the vendor may refuse
        as too large: every copy would fail and vote against the candidate, all of them paid
        for. Noise does not compress, so a copy is counted at its largest."""
        _, height, width = image.shape
        found = self.catalog.copy_size(classifier, width, height)
        if found is None or found[0] <= found[1]:
            return
        largest, limit = found
        side = _fitting_side(tuple(image.shape), limit / largest)
        raise ProblemError(
            status=413,
            slug="image-too-large-for-classifier",
            title="Image too large for the classifier",
            detail=f"a noisy copy of this {width}x{height} image takes up to "
            f"{largest / 2**20:.1f} MiB in a call (noise does not compress), over the "
            f"{limit / 2**20:.1f} MiB {classifier} takes per image; send the image at most "
            f"about {side} px on its longer side",
        )

    async def _check_work(
        self, classifier: str, denoiser: str, image: torch.Tensor, copies: int, limit_tflop: float
    ) -> None:
        """Refuse, before anything is sampled, what would exhaust the device's memory (one copy
        too large for a forward pass) or hold it too long (over ``limit_tflop``: the server's
        work limit, or the key's share of it)."""
        shape = tuple(image.shape)
        work = await asyncio.to_thread(self.catalog.work, classifier, denoiser, shape)
        size = f"{shape[2]}x{shape[1]}"
        memory = self.catalog.memory_per_pass()
        if work.peak_bytes > memory:
            side = _fitting_side(shape, memory / work.peak_bytes)
            raise ProblemError(
                status=413,
                slug="image-too-large-for-models",
                title="Image too large for the models",
                detail=f"one noisy copy of this {size} image needs {work.peak_bytes / 2**30:.1f} "
                f"GiB in the models' forward pass, over the {memory / 2**30:.1f} GiB this server "
                f"gives one pass; send the image at most about {side} px on its longer side",
            )
        limit = limit_tflop * 1e12
        total = work.flops * copies
        if total > limit:
            side = _fitting_side(shape, limit / total)
            raise ProblemError(
                status=422,
                slug="work-too-large",
                title="Request too large",
                detail=f"the request needs {total / 1e12:,.1f} TFLOP ({copies:,} noisy copies of a "
                f"{size} image at {work.flops / 1e9:,.2f} GFLOP each), over the limit of "
                f"{limit_tflop:,.4g} TFLOP for this key; lower n, or send the image at "
                f"most about {side} px on its longer side",
                errors=[FieldError(field="n", message="over the server's work limit")],
            )

    async def preview(
        self, principal: Principal, options: PreviewOptions, image_bytes: bytes
    ) -> Preview:
        """k noisy copies and their denoised versions, from fresh (not secret) noise; the k
        copies count on the key's budget and the preview waits its turn like a request."""
        denoiser = self.catalog.denoiser_for(options.denoiser, options.sigma)
        worker = self.catalog.pool.local_denoiser(denoiser)
        image = await self._decode(image_bytes, PREVIEW_MAX_PIXELS)
        chunk = Chunk(
            phase=Phase.SELECTION,
            index=0,
            size=options.k,
            seed=secrets.randbits(63),
            sigma=options.sigma,
            digest="preview",
        )
        booking = await self.budgets.reserve(principal, options.k)
        try:
            async with self.admission.admit(principal):
                noisy = await worker.on_model_thread(worker.noisy, image, chunk)
                denoised = await worker.on_model_thread(worker.denoised, image, chunk)
        except BaseException:
            await self.budgets.settle(booking, 0)
            raise
        return Preview(
            noisy=await asyncio.to_thread(_data_urls, noisy.float().cpu()),
            denoised=await asyncio.to_thread(_data_urls, denoised),
            sigma=options.sigma,
            denoiser=worker.denoiser_ref,
        )

    async def _decode(self, image_bytes: bytes, max_pixels: int) -> torch.Tensor:
        try:
            return await asyncio.to_thread(decode_image, image_bytes, max_pixels)
        except ImageDecodeError as exc:
            raise ProblemError(
                status=_DECODE_STATUS[exc.reason],
                slug=f"image-{exc.reason.replace('_', '-')}",
                title="Image not accepted",
                detail=str(exc),
            ) from exc

    async def certify(self, prepared: Prepared, progress: Progress | None = None) -> Certificate:
        assert isinstance(prepared.params, CertifyParams)
        run = prepared.certifier.certify
        return self.signer.signed(await self._run(prepared, run, progress))

    async def predict(self, prepared: Prepared, progress: Progress | None = None) -> Prediction:
        return await self._run(prepared, prepared.certifier.predict, progress)

    def job_runner(self, operation: str, prepared: Prepared) -> Runner:
        """What a job of ``operation`` runs."""

        prepared.job = True

        async def run(progress: Progress) -> Certificate | Prediction:
            if operation == "predict":
                return await self.predict(prepared, progress)
            return await self.certify(prepared, progress)

        return run

    async def _resume_job(self, record: dict[str, str], image: bytes) -> tuple[Runner, Cleanup]:
        """Run again a job whose gateway stopped, from its stored request (jobs takeover)."""
        options = JobOptions.model_validate_json(record["options"])
        principal = Principal(record["owner"], None)  # its budget was booked when accepted
        booking = Booking.from_json(record["booking"])
        prepared = await self.prepare(principal, options.request(), image, booking)
        prepared.resumed = True
        return self.job_runner(options.operation, prepared), lambda: self.finish(prepared)

    async def finish(
        self, prepared: Prepared, spent: int | None = 0, paid: int | None = None
    ) -> None:
        """Release the request's admission ticket and settle its booking (idempotent): what it
        did not spend goes back to the key's budget, and what it did not pay for (``paid``
        queries billed, default ``spent``) to its monthly spend. ``spent`` None: a job handed
        over, whose booking the replica taking it over settles."""
        if prepared.settled:
            return
        prepared.settled = True
        prepared.ticket.release()
        if prepared.booking is not None and spent is not None:
            try:
                await self.budgets.settle(prepared.booking, spent, paid, job=prepared.job)
            except RedisError:  # the booking stays charged: the key loses, nobody gains
                log.warning("could not settle a budget booking", exc_info=True)

    async def _run(
        self,
        prepared: Prepared,
        method: Callable[[torch.Tensor, Any, Progress | None], Awaitable[R]],
        progress: Progress | None,
    ) -> R:
        """Wait for a running slot, sample, and settle: a request that ends normally pays for
        the queries it sent (not those from the store), a cancelled one for every copy it drew
        (its votes are stored and a repeat reuses them), a failed one for none."""
        done = 0

        def track(samples: int, planned: int) -> None:
            nonlocal done
            done = samples
            if progress is not None:
                progress(samples, planned)

        spent: int | None = 0
        paid: int | None = None
        try:
            async with prepared.ticket:
                track(0, prepared.planned)  # holds a running slot now: no longer queued
                result = await method(prepared.image, prepared.params, track)
            # A job taken over pays for every query: the votes its first gateway drew come
            # from the store now, but they were drawn for it.
            spent = result.queries.total - (0 if prepared.resumed else result.queries.cached)
            paid = spent - result.queries.failed  # failed for good: not billed (``cost``)
        except asyncio.CancelledError:
            # A job handed over at shutdown is not settled here: the replica that takes it
            # over settles its booking once it has finished.
            spent = None if prepared.job and self.jobs.handing_over else done
            raise
        except CredentialsError as exc:
            raise ProblemError(
                status=502,
                slug="vendor-credentials-refused",
                title="Vendor refused the credentials",
                detail=f"{exc}; nothing was certified (the operator must fix the vendor "
                "account: its credentials or its quota)",
            ) from exc
        except NoWorkers as exc:
            raise ProblemError(
                status=503,
                slug="no-workers",
                title="No stream workers",
                detail=f"{exc}; nothing was certified",
                headers={"Retry-After": "10"},
            ) from exc
        except ModelsDiffer as exc:
            log.error("stream workers run other models: %s", exc)
            raise ProblemError(  # never a certificate that names models which did not run
                status=503,
                slug="workers-run-other-models",
                title="Workers run other models",
                detail=f"{exc}; nothing was certified",
                headers={"Retry-After": "30"},
            ) from exc
        except DeadLettered as exc:
            log.error("chunk dead-lettered: %s", exc)
            raise ProblemError(  # a dependency (the workers) failed: 502, never a 500
                status=502,
                slug="chunk-dead-lettered",
                title="Chunk failed on every worker",
                detail=f"{exc}; nothing was certified (the operator must look at the "
                "dead-letter stream; the same request is refused for an hour)",
            ) from exc
        except (RedisError, StreamError) as exc:
            raise backend_unavailable(exc) from exc
        except ModelVersionChanged as exc:
            raise ProblemError(
                status=503,
                slug="vendor-model-changed",
                title="Vendor model changed",
                detail=str(exc),
                headers={"Retry-After": "10"},
            ) from exc
        finally:
            await asyncio.shield(self.finish(prepared, spent, paid))
        self.metrics.record(result)
        return result


def backend_unavailable(exc: Exception) -> ProblemError:
    """The 503 of a failing Redis or worker pool. The exception names internal addresses: it
    goes to the log, never into the body."""
    log.warning("vote store or workers failed", exc_info=exc)
    return ProblemError(
        status=503,
        slug="backend-unavailable",
        title="Backend unavailable",
        detail="the vote store or the workers failed; retry shortly",
        headers={"Retry-After": "5"},
    )


@contextlib.contextmanager
def redis_failures() -> Iterator[None]:
    try:
        yield
    except RedisError as exc:
        raise backend_unavailable(exc) from exc


def signer_for(settings: Settings) -> Signer:
    """The signing key of the settings; in development without one, a key made once and kept
    in ``signing_key_file`` (so that its certificates keep verifying across restarts)."""
    retired = settings.retired_signing_keys
    if settings.signing_key is not None:
        return Signer.from_pem(settings.signing_key.get_secret_value().encode(), retired)
    if settings.environment != "development":  # only what signs needs the key (not workers)
        raise ValueError(
            "DSMOOTH_SIGNING_KEY must hold the Ed25519 private key (PEM) that signs "
            "certificates outside development; `dsmooth new-signing-key` makes one"
        )
    return Signer.load_or_create(settings.signing_key_file)


def _log_failure(task: asyncio.Task[None]) -> None:
    """A model that cannot be loaded keeps /readyz at 503; the reason goes to the log."""
    if not task.cancelled() and task.exception() is not None:
        log.error("loading the models failed", exc_info=task.exception())


def _data_urls(images: torch.Tensor) -> list[str]:
    return [
        "data:image/png;base64," + base64.b64encode(png).decode() for png in encode_copies(images)
    ]


async def _any(names: Awaitable[list[str]]) -> bool:
    return bool(await names)


async def _answers(check: Awaitable[bool]) -> bool:
    try:
        return await check
    except Exception:
        return False


def problem_for(exc: Exception) -> Problem:
    """The problem document of a failure inside a background job."""
    exc = domain_problem(exc) or exc
    if isinstance(exc, ProblemError):
        return Problem(
            type=f"/problems/{exc.slug}", title=exc.title, status=exc.status, detail=exc.detail
        )
    log.exception("job failed", exc_info=exc)
    return Problem(
        type="/problems/internal-error",
        title="Internal error",
        status=500,
        detail="the certification failed unexpectedly; the error was logged",
    )


def _fitting_side(shape: tuple[int, ...], fraction: float) -> int:
    """The longer side of ``shape`` scaled so that its pixel count is ``fraction`` of today's."""
    return max(1, int(max(shape[1:]) * min(1.0, fraction) ** 0.5))


def _invalid(field: str, message: str) -> ProblemError:
    return ProblemError(
        status=422,
        slug="invalid-parameters",
        title="Invalid parameters",
        detail=f"{field}: {message}",
        errors=[FieldError(field=field, message=message)],
    )
