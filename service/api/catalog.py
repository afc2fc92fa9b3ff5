"""What the server offers: the local models of the pool and the vendor adapters, listed for
``/v1/classifiers`` and ``/v1/denoisers``, and the sampler of each (classifier, denoiser) pair.

API clients name models only from this catalog, never by file path: a server must not load
whatever file a request names. Remote entries are the vendor adapters, configured through their
``DSMOOTH_<VENDOR>_*`` settings.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import httpx
from pydantic import BaseModel, ConfigDict, Field

from service.adapters.base import Adapter
from service.adapters.fanout import FanOut, FanOutPolicy, Pacer
from service.adapters.registry import AdapterUnavailable, adapter_class, adapters
from service.config import Settings
from service.core.certifier import Sampler
from service.core.domain import Domain, image_warnings
from service.core.errors import NotConfigured, UnknownModel, VendorUnavailable
from service.distributed.client import StreamClient, StreamCopies, StreamSampler
from service.execution.cost import Work
from service.execution.devices import memory_budget
from service.execution.pool import ModelPool
from service.execution.remote import RemoteSampler

__all__ = ["Catalog", "ClassifierInfo", "DenoiserInfo"]


class ClassifierInfo(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "cifar10-resnet20", "version": "cifar10-resnet20-20261125",
                    "kind": "local", "architecture": "cifar-resnet20", "classes": 10,
                    "input_size": 32, "images": "CIFAR-10 photos, 32x32 (10 classes)",
                    "card_version": None, "max_n": 1_000_000, "price_per_query": 0.0,
                    "credentials_configured": True, "default": True,
                }
            ]
        }
    )  # fmt: skip

    name: str
    version: str
    kind: str = Field(description="'local' (served here) or 'remote' (a vendor API)")
    architecture: str
    classes: int | None = Field(description="number of classes; null: open vocabulary")
    input_size: int | None = Field(description="side the copies are resized to; null: any")
    images: str | None = Field(
        None,
        description="the kind of images it was made for (its domain); results on images far "
        "from it carry warnings. null: not declared",
    )
    card_version: str | None = Field(
        None,
        description="the version its model card declares (a model file's certificates name "
        "the file's SHA-256 digest, and the card's where there is one)",
    )
    max_n: int = Field(description="cap on n0 + n per request")
    price_per_query: float = Field(description="USD per query")
    credentials_configured: bool = Field(description="whether the classifier can be queried")
    default: bool


class DenoiserInfo(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "unet-cifar10-s0.25-mse", "version": "unet-cifar10-s0.25-mse-20261125",
                    "architecture": "unet", "sigma": 0.25, "objective": "mse", "default": True,
                }
            ]
        }
    )  # fmt: skip

    name: str
    version: str
    architecture: str
    sigma: float | None = Field(description="noise level it was trained for; null: any")
    objective: str | None
    default: bool


class Catalog:
    """The pool's local models (loaded on first use, warmed at start-up) and the vendor
    adapters (built on first use)."""

    def __init__(
        self,
        settings: Settings,
        stream: StreamClient | None = None,
        pacers: Callable[[str, float], Pacer] | None = None,
    ) -> None:
        self.settings, self.stream, self.pacers = settings, stream, pacers
        self.pool = ModelPool(settings)
        self._remote: dict[str, type[Adapter]] = {}
        for name in adapters():
            if name == "local" or name in self.pool.specs["classifier"]:
                continue
            try:
                self._remote[name] = adapter_class(name)
            except AdapterUnavailable:
                continue  # an optional dependency is missing: not offered
        self._fanouts: dict[str, FanOut] = {}

    def classifiers(self) -> list[ClassifierInfo]:
        local = [
            ClassifierInfo(
                name=name,
                version=model.version,
                kind="local",
                architecture=model.architecture,
                classes=len(model.classes),
                input_size=model.input_size,
                images=model.images,
                card_version=(model.metadata.get("card") or {}).get("version"),
                max_n=self.settings.max_n_local,
                price_per_query=0.0,
                credentials_configured=True,
                default=name == self.pool.default_classifier,
            )
            for name in self.pool.names("classifier")
            for model in (self.pool.model("classifier", name),)
        ]
        remote = [
            ClassifierInfo(
                name=name,
                version=self._adapter(name).pinned_version or "as reported",
                kind="remote",
                architecture=cls.__name__,
                classes=None,
                input_size=None,
                images=cls.images,
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
                default=name == self.pool.default_denoiser,
            )
            for name in self.pool.names("denoiser")
            for model in (self.pool.model("denoiser", name),)
        ]

    def is_remote(self, classifier: str) -> bool:
        return classifier in self._remote and classifier not in self.pool.specs["classifier"]

    def denoiser_for(
        self, denoiser: str | None, sigma: float, classifier: str | None = None
    ) -> str:
        """The denoiser of a request (:meth:`ModelPool.denoiser_for`): by default the one trained
        for ``sigma``, of the photo family for a local ImageNet classifier."""
        return self.pool.denoiser_for(denoiser, sigma, classifier or self.pool.default_classifier)

    def domain(self, classifier: str) -> Domain:
        """What a classifier declares about the images it was made for."""
        if self.is_remote(classifier):
            cls = self._remote[classifier]
            return Domain(cls.images, None, None, cls.photo_min_side)
        return self.pool.domain(classifier)

    def warnings(
        self, classifier: str, denoiser: str, sigma: float, shape: tuple[int, ...]
    ) -> list[str]:
        """Why a result for an image of ``shape`` may mean less than it seems."""
        found = image_warnings(classifier, self.domain(classifier), shape)
        return found + self.pool.sigma_warnings(denoiser, sigma)

    def copy_size(self, classifier: str, width: int, height: int) -> tuple[int, int] | None:
        """(the most a noisy copy of a ``width`` x ``height`` image may add to a call, the most
        the vendor takes) where the classifier is a vendor's that limits it; None otherwise."""
        if not self.is_remote(classifier):
            return None
        adapter = self._adapter(classifier)
        limit = adapter.image_byte_limit
        return None if limit is None else (adapter.largest_copy_bytes(width, height), limit)

    def max_n(self, classifier: str) -> int:
        return (
            self.settings.max_n_remote if self.is_remote(classifier) else self.settings.max_n_local
        )

    def work(self, classifier: str, denoiser: str, shape: tuple[int, ...]) -> Work:
        """What one noisy copy of an image of ``shape`` costs this server: the denoiser, and the
        classifier too where it runs here (a vendor's is not ours to count)."""
        if self.is_remote(classifier):
            return self.pool.local_denoiser(denoiser).work(shape)
        return self.pool.local_sampler(classifier, denoiser).work(shape)

    def memory_per_pass(self) -> int:
        """Bytes one forward pass may take on this server's device."""
        budget = memory_budget(self.pool.device)
        cap = self.settings.max_pass_memory_mib
        return budget if cap is None else min(budget, cap * 2**20)

    def sampler(
        self,
        classifier: str | None,
        denoiser: str | None,
        label_map: Mapping[str, str] | None = None,
    ) -> Sampler:
        """The sampler for a pair, by catalog name (defaults when None)."""
        classifier = classifier or self.pool.default_classifier
        denoiser = denoiser or self.pool.default_denoiser
        if self.is_remote(classifier):
            return self._remote_sampler(classifier, denoiser, label_map)
        if classifier not in self.pool.specs["classifier"]:  # name the vendors too
            raise UnknownModel(
                "classifier", classifier, [*self.pool.specs["classifier"], *self._remote]
            )
        local = self.pool.local_sampler(classifier, denoiser)
        if self.stream is not None:
            return StreamSampler(local, self.stream, self.settings.stream_noise_rng)
        return local

    def _remote_sampler(
        self, classifier: str, denoiser: str, label_map: Mapping[str, str] | None
    ) -> RemoteSampler:
        adapter = self._adapter(classifier)
        if not adapter.configured:
            raise NotConfigured(classifier)
        fanout = self._fanouts[classifier]
        if fanout.breaker.open:
            raise VendorUnavailable(classifier, fanout.policy.breaker_reset_s)
        local = self.pool.local_denoiser(denoiser)
        copies = None
        if self.stream is not None:
            rng = self.settings.stream_noise_rng
            copies = StreamCopies(self.stream, denoiser, rng, local.models)
        return RemoteSampler(classifier, local, fanout, label_map, copies)

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
            # Paced per credential across replicas when they share a Redis, else here.
            pacer = None
            if self.pacers is not None:
                key = f"vendor:{name}:{adapter.credential_id}"
                pacer = self.pacers(key, adapter.requests_per_second)
            fanout = self._fanouts[name] = FanOut(adapter, policy, pacer)
        return fanout.adapter

    async def close(self) -> None:
        for fanout in self._fanouts.values():
            await fanout.adapter.client.aclose()
        self.pool.close()
