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
from service.auth import Authenticator, DailyBudgets, Principal, RateLimits
from service.catalog import Catalog
from service.imaging import ImageDecodeError, decode_image
from service.jobs import JobManager
from service.metrics import Metrics
from service.pipeline import Certifier, ModelVersionChanged, Progress
from service.problems import FieldError, Problem, ProblemError
from service.sampling import Chunk, Phase
from service.schemas import (
    Certificate,
    CertifyOptions,
    CertifyParams,
    Prediction,
    PredictOptions,
    PredictParams,
    Preview,
    PreviewOptions,
)
from service.settings import Settings
from service.stream import StreamClient, StreamError, workers_alive
from service.votes import InMemoryVoteStore, RedisVoteStore, VoteStore, connect_redis

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
        self.jobs = JobManager(settings.job_ttl_seconds, settings.max_jobs)
        self.metrics = Metrics()
        self.auth = Authenticator(settings.api_keys, settings.open_access)
        self.budgets = DailyBudgets()
        self.rate_limits = RateLimits(settings.requests_per_minute_per_key)

    async def start(self) -> None:
        await asyncio.to_thread(self.catalog.load_all)
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
        checks = {"models": self.catalog.loaded, "vote_store": await _answers(self.store.ping())}
        if self.catalog.stream is not None and self.redis is not None:
            checks["workers"] = await _answers(_any(workers_alive(self.redis)))
        return checks

    async def prepare(
        self, principal: Principal, options: CertifyOptions | PredictOptions, image_bytes: bytes
    ) -> Prepared:
        """Everything that can be refused before sampling: models, caps, budgets, the image."""
        denoiser = self.catalog.denoiser_for(options.denoiser, options.sigma)
        sampler = self.catalog.sampler(options.classifier, denoiser, options.label_map)
        params: CertifyParams | PredictParams
        if isinstance(options, CertifyOptions):
            fields = options.model_dump(include=set(CertifyParams.model_fields))
            if fields["candidate"] is None:  # one query instead of n0 where queries cost money
                paid = sampler.price_per_query > 0
                fields["candidate"] = "clean" if paid else "noisy"
            params = _validated(CertifyParams, fields)
            planned = params.n + (params.n0 if params.candidate == "noisy" else 1)
        else:
            fields = options.model_dump(include=set(PredictParams.model_fields))
            params = _validated(PredictParams, fields)
            planned = params.n
        cap = self.catalog.max_n(sampler.classifier_ref.name)
        if planned > cap:
            raise _invalid("n", f"n0 + n = {planned:,} exceeds this classifier's cap of {cap:,}")
        if options.budget is not None and planned > options.budget:
            raise _invalid(
                "budget", f"the request needs {planned:,} queries, over its budget of "
                f"{options.budget:,}; lower n or n0, or use candidate='clean'"
            )  # fmt: skip
        cost = planned * sampler.price_per_query
        if options.max_cost is not None and cost > options.max_cost:
            raise _invalid(
                "max_cost", f"the request may cost up to ${cost:.4f} ({planned:,} queries), "
                f"over its max_cost of ${options.max_cost:.4f}; lower n or use mode='sequential'"
            )  # fmt: skip
        self.budgets.check(principal, planned)
        image = await self._decode(image_bytes, self.settings.max_pixels)
        certifier = Certifier(sampler, self.settings.secret_bytes, self.store)
        return Prepared(certifier, image, params, planned)

    async def preview(self, options: PreviewOptions, image_bytes: bytes) -> Preview:
        """k noisy copies and their denoised versions, from fresh (not secret) noise."""
        worker = self.catalog.denoising(self.catalog.denoiser_for(options.denoiser, options.sigma))
        image = await self._decode(image_bytes, PREVIEW_MAX_PIXELS)
        chunk = Chunk(Phase.SELECTION, 0, options.k, seed=secrets.randbits(63))
        noisy = await worker.on_model_thread(worker.noisy, image, chunk, options.sigma)
        denoised = await worker.on_model_thread(worker.denoised, image, chunk, options.sigma)
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
                _DECODE_STATUS[exc.reason], f"image-{exc.reason.replace('_', '-')}",
                "Image not accepted", str(exc),
            ) from exc  # fmt: skip

    async def certify(
        self, principal: Principal, prepared: Prepared, progress: Progress | None = None
    ) -> Certificate:
        assert isinstance(prepared.params, CertifyParams)
        run = prepared.certifier.certify(prepared.image, prepared.params, progress)
        return await self._spend(principal, prepared.planned, run)

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
                502, "vendor-credentials-refused", "Vendor refused the credentials",
                f"{exc}; nothing was certified (the operator must fix the vendor credentials)",
            ) from exc  # fmt: skip
        except (RedisError, StreamError) as exc:
            raise ProblemError(
                503, "backend-unavailable", "Backend unavailable",
                f"the vote store or the workers failed: {exc}; retry shortly",
                {"Retry-After": "5"},
            ) from exc  # fmt: skip
        except ModelVersionChanged as exc:
            raise ProblemError(
                503, "vendor-model-changed", "Vendor model changed", str(exc),
                {"Retry-After": "10"},
            ) from exc  # fmt: skip
        finally:
            self.budgets.refund(principal, planned - spent)
        self.metrics.record(result)
        return result


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


P = TypeVar("P", CertifyParams, PredictParams)


def _validated(model: type[P], fields: dict[str, object]) -> P:
    """Parameters checked again once defaults are resolved (n0 = 0 with a noisy candidate)."""
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from exc


def _invalid(field: str, message: str) -> ProblemError:
    return ProblemError(
        422,
        "invalid-parameters",
        "Invalid parameters",
        f"{field}: {message}",
        errors=[FieldError(field=field, message=message)],
    )
