"""What one API request goes through: decode, check limits and budgets, certify, account.

:class:`Services` holds the process-wide parts (catalog, vote store, jobs, metrics, auth) and is
created by the app factory; routes call :meth:`Services.certify` / :meth:`Services.predict`.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar

import torch
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from redis.exceptions import RedisError

from service.adapters.base import CredentialsError
from service.adapters.prepare import encode_copies
from service.api.auth import Authenticator, DailyBudgets, Principal, RateLimits
from service.api.catalog import Catalog
from service.api.jobs import JobManager
from service.api.metrics import Metrics
from service.api.problems import FieldError, Problem, ProblemError, domain_problem
from service.api.schemas import CertifyOptions, PredictOptions, Preview, PreviewOptions
from service.config import Settings
from service.core.certifier import Certifier, ModelVersionChanged, Progress
from service.core.ledger import InMemoryLedger, Ledger
from service.core.noise import Chunk, Phase
from service.core.results import Certificate, CertifyParams, Prediction, PredictParams
from service.core.signing import Signer
from service.core.votes import InMemoryVoteStore, VoteStore
from service.distributed.client import StreamClient, workers_alive
from service.distributed.protocol import StreamError
from service.distributed.redis_ledger import RedisLedger
from service.distributed.redis_store import RedisVoteStore, connect_redis
from service.imaging import ImageDecodeError, decode_image

__all__ = ["Prepared", "Services", "problem_for"]

log = logging.getLogger("dsmooth")

R = TypeVar("R", Certificate, Prediction)

PREVIEW_MAX_PIXELS = 512 * 512
_DECODE_STATUS = {"empty": 422, "unsupported": 415, "too_large": 413, "corrupt": 422}


@dataclass(frozen=True, slots=True)
class Prepared:
    """A request that passed every check, ready to sample."""

    certifier: Certifier
    image: torch.Tensor
    params: CertifyParams | PredictParams
    planned: int


class Services:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.redis = connect_redis(settings.redis_url) if settings.redis_url else None
        stream = None
        if self.redis is not None and settings.execution == "stream":
            stream = StreamClient(self.redis, timeout_s=settings.stream_timeout_s)
        self.catalog = Catalog(settings, stream)
        self.store: VoteStore = (
            RedisVoteStore(self.redis, settings.vote_ttl_seconds)
            if self.redis is not None
            else InMemoryVoteStore()
        )
        self.ledger: Ledger = (
            RedisLedger(self.redis) if self.redis is not None else InMemoryLedger()
        )
        self.signer = signer_for(settings)
        self.jobs = JobManager(settings.job_ttl_seconds, settings.max_jobs)
        self.metrics = Metrics()
        self.auth = Authenticator(settings.api_keys, settings.open_access)
        self.budgets = DailyBudgets()
        self.rate_limits = RateLimits(settings.requests_per_minute_per_key)

    async def start(self) -> None:
        # Models load on first use; warming them all runs in the background (readiness says
        # when it is done), so start-up does not wait for every checkpoint.
        self._warming = asyncio.create_task(asyncio.to_thread(self.catalog.pool.warm_up))
        self._warming.add_done_callback(_log_failure)
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
        self, principal: Principal, options: CertifyOptions | PredictOptions, image_bytes: bytes
    ) -> Prepared:
        """Everything that can be refused before sampling: models, caps, budgets, the image."""
        denoiser = self.catalog.denoiser_for(options.denoiser, options.sigma)
        sampler = self.catalog.sampler(options.classifier, denoiser, options.label_map)
        try:
            params = options.params(paid=sampler.price_per_query > 0)
        except ValidationError as exc:  # checked again once defaults are resolved
            raise RequestValidationError(exc.errors()) from exc
        planned = params.n
        if isinstance(params, CertifyParams):
            planned += params.n0 if params.candidate == "noisy" else 1
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
        self.budgets.check(principal, planned)
        image = await self._decode(image_bytes, self.settings.max_pixels)
        certifier = Certifier(sampler, self.settings.secret_bytes, self.store, self.ledger)
        return Prepared(certifier, image, params, planned)

    async def preview(self, options: PreviewOptions, image_bytes: bytes) -> Preview:
        """k noisy copies and their denoised versions, from fresh (not secret) noise."""
        worker = self.catalog.pool.local_denoiser(
            self.catalog.denoiser_for(options.denoiser, options.sigma)
        )
        image = await self._decode(image_bytes, PREVIEW_MAX_PIXELS)
        chunk = Chunk(
            phase=Phase.SELECTION,
            index=0,
            size=options.k,
            seed=secrets.randbits(63),
            sigma=options.sigma,
            digest="preview",
        )
        noisy = await worker.on_model_thread(worker.noisy, image, chunk)
        denoised = await worker.on_model_thread(worker.denoised, image, chunk)
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

    async def certify(
        self, principal: Principal, prepared: Prepared, progress: Progress | None = None
    ) -> Certificate:
        assert isinstance(prepared.params, CertifyParams)
        run = prepared.certifier.certify(prepared.image, prepared.params, progress)
        return self.signer.signed(await self._spend(principal, prepared.planned, run))

    async def predict(
        self, principal: Principal, prepared: Prepared, progress: Progress | None = None
    ) -> Prediction:
        run = prepared.certifier.predict(prepared.image, prepared.params, progress)
        return await self._spend(principal, prepared.planned, run)

    async def _spend(self, principal: Principal, planned: int, run: Awaitable[R]) -> R:
        """Reserve the planned queries on the key's daily budget, run, give back the unspent."""
        self.budgets.reserve(principal, planned)
        spent = 0
        try:
            result = await run
            spent = result.queries.total - result.queries.cached
        except CredentialsError as exc:
            raise ProblemError(
                status=502,
                slug="vendor-credentials-refused",
                title="Vendor refused the credentials",
                detail=f"{exc}; nothing was certified (the operator must fix the vendor "
                "credentials)",
            ) from exc
        except (RedisError, StreamError) as exc:
            raise ProblemError(
                status=503,
                slug="backend-unavailable",
                title="Backend unavailable",
                detail=f"the vote store or the workers failed: {exc}; retry shortly",
                headers={"Retry-After": "5"},
            ) from exc
        except ModelVersionChanged as exc:
            raise ProblemError(
                status=503,
                slug="vendor-model-changed",
                title="Vendor model changed",
                detail=str(exc),
                headers={"Retry-After": "10"},
            ) from exc
        finally:
            self.budgets.refund(principal, planned - spent)
        self.metrics.record(result)
        return result


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


def _invalid(field: str, message: str) -> ProblemError:
    return ProblemError(
        status=422,
        slug="invalid-parameters",
        title="Invalid parameters",
        detail=f"{field}: {message}",
        errors=[FieldError(field=field, message=message)],
    )
