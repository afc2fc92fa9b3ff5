"""What the server offers: named classifiers and denoisers, loaded once, and samplers for pairs.

API clients name models only from this catalog, never by file path: a server must not load
whatever file a request names. Local entries are the shipped checkpoints, the default models of
the settings and the operator's extra ``{name: spec}`` entries; remote entries are the vendor
adapters, configured through their ``DSMOOTH_<VENDOR>_*`` settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import httpx
import torch
from pydantic import BaseModel, Field

from denoisers.checkpoints import read_metadata
from denoisers.registry import LoadedModel, load_model, shipped_checkpoints, shipped_denoiser_for
from service.adapters.base import Adapter
from service.adapters.fanout import FanOut, FanOutPolicy
from service.adapters.registry import AdapterUnavailable, adapter_class, adapters
from service.pipeline import Sampler
from service.problems import ProblemError
from service.remote import RemoteSampler
from service.settings import Settings
from service.stream import StreamClient, StreamCopies, StreamSampler
from service.worker import DenoisingWorker, LocalWorker, configure_cpu_threads, resolve_device

__all__ = ["Catalog", "ClassifierInfo", "DenoiserInfo"]


class ClassifierInfo(BaseModel):
    name: str
    version: str
    kind: str = Field(description="'local' (served here) or 'remote' (a vendor API)")
    architecture: str
    classes: int | None = Field(description="number of classes; null: open vocabulary")
    input_size: int | None = Field(description="side the copies are resized to; null: any")
    max_n: int = Field(description="cap on n0 + n per request")
    price_per_query: float = Field(description="USD per query")
    credentials_configured: bool = Field(description="whether the classifier can be queried")
    default: bool


class DenoiserInfo(BaseModel):
    name: str
    version: str
    architecture: str
    sigma: float | None = Field(description="noise level it was trained for; null: any")
    objective: str | None
    default: bool


class Catalog:
    """Loads every local model at start-up; builds vendor adapters on first use."""

    def __init__(self, settings: Settings, stream: StreamClient | None = None) -> None:
        self.settings, self.stream = settings, stream
        self.device = resolve_device(settings.device)
        configure_cpu_threads(settings.cpu_threads)
        specs: dict[str, dict[str, str]] = {"classifier": {}, "denoiser": {"none": "none"}}
        for name, path in shipped_checkpoints().items():
            kind = read_metadata(path).get("kind")
            if kind in specs:
                specs[kind][name] = name
        for kind, default in (("classifier", settings.classifier), ("denoiser", settings.denoiser)):
            specs[kind][default.partition(":")[0]] = default
        specs["classifier"].update(settings.extra_classifiers)
        specs["denoiser"].update(settings.extra_denoisers)
        self._specs = specs
        self.default_classifier = settings.classifier.partition(":")[0]
        self.default_denoiser = settings.denoiser.partition(":")[0]
        self._models: dict[tuple[str, str], LoadedModel] = {}
        self._workers: dict[tuple[str, str], LocalWorker] = {}
        self._denoising: dict[str, DenoisingWorker] = {}
        self._remote: dict[str, type[Adapter]] = {}
        self._fanouts: dict[str, FanOut] = {}
        # One model thread for the whole process: requests queue for the device.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dsmooth-model")
        self.loaded = False

    def load_all(self) -> None:
        """Load every local model now (start-up), so that requests never wait for a load."""
        for kind, entries in self._specs.items():
            for name, spec in entries.items():
                model = load_model(spec, "classifier" if kind == "classifier" else "denoiser")
                # Known by its catalog name everywhere (certificates, stream tasks).
                self._models[(kind, name)] = replace(model, name=name)
        for name in adapters():
            if name == "local" or (("classifier", name) in self._models):
                continue
            try:
                self._remote[name] = adapter_class(name)
            except AdapterUnavailable:
                continue  # an optional dependency is missing: not offered
        self.loaded = True

    def classifiers(self) -> list[ClassifierInfo]:
        local = [
            ClassifierInfo(
                name=name,
                version=model.version,
                kind="local",
                architecture=model.architecture,
                classes=len(model.classes),
                input_size=model.input_size,
                max_n=self.settings.max_n_local,
                price_per_query=0.0,
                credentials_configured=True,
                default=name == self.default_classifier,
            )
            for (kind, name), model in self._models.items()
            if kind == "classifier"
        ]
        remote = [
            ClassifierInfo(
                name=name,
                version=self._adapter(name).pinned_version or "as reported",
                kind="remote",
                architecture=cls.__name__,
                classes=None,
                input_size=None,
                max_n=self.settings.max_n_remote,
                price_per_query=cls.price_per_image,
                credentials_configured=self._adapter(name).configured,
                default=False,
            )
            for name, cls in self._remote.items()
        ]
        return local + remote

    def denoisers(self) -> list[DenoiserInfo]:
        return [
            DenoiserInfo(
                name=name,
                version=model.version,
                architecture=model.architecture,
                sigma=model.sigma,
                objective=model.metadata.get("objective"),
                default=name == self.default_denoiser,
            )
            for (kind, name), model in self._models.items()
            if kind == "denoiser"
        ]

    def is_remote(self, classifier: str) -> bool:
        return classifier in self._remote and ("classifier", classifier) not in self._models

    def denoiser_for(self, denoiser: str | None, sigma: float) -> str:
        """The requested denoiser; by default the default denoiser's shipped sibling trained for
        ``sigma`` where one is served (any denoiser gives a valid certificate, but one trained
        for another noise level removes this one worse), else the default denoiser."""
        if denoiser is not None:
            return denoiser
        sibling = shipped_denoiser_for(sigma, like=self.default_denoiser)
        return sibling if sibling in self._specs["denoiser"] else self.default_denoiser

    def max_n(self, classifier: str) -> int:
        return (
            self.settings.max_n_remote if self.is_remote(classifier) else self.settings.max_n_local
        )

    def sampler(
        self,
        classifier: str | None,
        denoiser: str | None,
        label_map: Mapping[str, str] | None = None,
    ) -> Sampler:
        """The sampler for a pair, by catalog name (defaults when None); 422 for unknown names."""
        classifier = classifier or self.default_classifier
        denoiser = denoiser or self.default_denoiser
        if self.is_remote(classifier):
            return self._remote_sampler(classifier, denoiser, label_map)
        worker = self.local_worker(classifier, denoiser)
        if self.stream is not None:
            return StreamSampler(worker, self.stream, self.settings.stream_noise_rng)
        return worker

    def local_worker(self, classifier: str, denoiser: str) -> LocalWorker:
        """The in-process worker of a local pair (built once)."""
        pair = (classifier, denoiser)
        worker = self._workers.get(pair)
        if worker is None:
            worker = LocalWorker(
                self._model("denoiser", denoiser),
                self._model("classifier", classifier),
                device=self.device,
                batch_size=self.settings.batch_size,
                executor=self._executor,
                precision=self.settings.precision,
                compile=self.settings.compile,
            )
            self._workers[pair] = worker
        return worker

    def denoising(self, denoiser: str) -> DenoisingWorker:
        """The in-process denoising worker of a denoiser (built once)."""
        worker = self._denoising.get(denoiser)
        if worker is None:
            worker = DenoisingWorker(
                self._model("denoiser", denoiser),
                device=self.device,
                batch_size=self.settings.batch_size,
                executor=self._executor,
                precision=self.settings.precision,
                compile=self.settings.compile,
            )
            self._denoising[denoiser] = worker
        return worker

    def _remote_sampler(
        self, classifier: str, denoiser: str, label_map: Mapping[str, str] | None
    ) -> RemoteSampler:
        adapter = self._adapter(classifier)
        if not adapter.configured:
            prefix = f"DSMOOTH_{classifier.upper()}_"
            raise ProblemError(
                422, "classifier-not-configured", "Classifier not configured",
                f"{classifier!r} has no credentials here; the operator sets them with "
                f"{prefix}* variables",
            )  # fmt: skip
        fanout = self._fanouts[classifier]
        if fanout.breaker.open:
            raise ProblemError(
                503, "vendor-unavailable", "Vendor unavailable",
                f"{classifier!r} failed repeatedly; calls are paused for "
                f"{fanout.policy.breaker_reset_s:.0f} s", {"Retry-After": "30"},
            )  # fmt: skip
        denoising = self.denoising(denoiser)
        copies = None
        if self.stream is not None:
            copies = StreamCopies(self.stream, denoiser, self.settings.stream_noise_rng)
        return RemoteSampler(classifier, denoising, fanout, label_map, copies)

    def _adapter(self, name: str) -> Adapter:
        """The adapter of a vendor, with its own connection pool and rate limiter (built once)."""
        fanout = self._fanouts.get(name)
        if fanout is None:
            client = httpx.AsyncClient(
                timeout=httpx.Timeout(self.settings.vendor_timeout_s, connect=5.0),
                limits=httpx.Limits(max_connections=self.settings.vendor_concurrency),
            )
            adapter = self._remote[name](client)
            policy = FanOutPolicy(
                concurrency=self.settings.vendor_concurrency,
                requests_per_second=adapter.requests_per_second,
                deadline_s=self.settings.vendor_deadline_s,
            )
            fanout = self._fanouts[name] = FanOut(adapter, policy)
        return fanout.adapter

    def _model(self, kind: str, name: str) -> LoadedModel:
        model = self._models.get((kind, name))
        if model is None:
            known = [n for k, n in self._models if k == kind]
            if kind == "classifier":
                known += list(self._remote)
            raise ProblemError(
                422,
                f"unknown-{kind}",
                f"Unknown {kind}",
                f"no {kind} named {name!r} here; choose one of: {', '.join(sorted(known))} "
                f"(GET /v1/{kind}s lists them)",
            )
        return model

    async def close(self) -> None:
        for fanout in self._fanouts.values():
            await fanout.adapter.client.aclose()
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
