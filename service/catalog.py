"""What the server offers: named classifiers and denoisers, loaded once, and workers for pairs.

API clients name models only from this catalog, never by file path: a server must not load
whatever file a request names. The catalog holds the shipped checkpoints, the default models of
the settings, and the operator's extra ``{name: spec}`` entries.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import torch
from pydantic import BaseModel, Field

from denoisers.checkpoints import read_metadata
from denoisers.registry import LoadedModel, load_model, shipped_checkpoints
from service.problems import ProblemError
from service.settings import Settings
from service.worker import LocalWorker, resolve_device

__all__ = ["Catalog", "ClassifierInfo", "DenoiserInfo"]


class ClassifierInfo(BaseModel):
    name: str
    version: str
    kind: str = Field(description="'local' (served here) or a vendor API")
    architecture: str
    classes: int = Field(description="number of classes")
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
    """Loads every catalog model at start-up; hands out one worker per (classifier, denoiser)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.device = resolve_device(settings.device)
        shipped = shipped_checkpoints()
        specs: dict[str, dict[str, str]] = {"classifier": {}, "denoiser": {"none": "none"}}
        for name, path in shipped.items():
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
        # One model thread for the whole process: requests queue for the device.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dsmooth-model")
        self.loaded = False

    def load_all(self) -> None:
        """Load every model now (start-up), so that requests never wait for a load."""
        for kind, entries in self._specs.items():
            for name, spec in entries.items():
                model = load_model(spec, "classifier" if kind == "classifier" else "denoiser")
                self._models[(kind, name)] = model
        self.loaded = True

    def classifiers(self) -> list[ClassifierInfo]:
        return [
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

    def max_n(self, classifier: str) -> int:
        return self.settings.max_n_local

    def worker(self, classifier: str | None, denoiser: str | None) -> LocalWorker:
        """The worker for a pair, by catalog name (defaults when None); 422 for unknown names."""
        pair = (classifier or self.default_classifier, denoiser or self.default_denoiser)
        worker = self._workers.get(pair)
        if worker is None:
            models = (self._model("classifier", pair[0]), self._model("denoiser", pair[1]))
            worker = LocalWorker(
                models[1],
                models[0],
                device=self.device,
                batch_size=self.settings.batch_size,
                executor=self._executor,
            )
            self._workers[pair] = worker
        return worker

    def _model(self, kind: str, name: str) -> LoadedModel:
        model = self._models.get((kind, name))
        if model is None:
            known = ", ".join(sorted(n for k, n in self._models if k == kind))
            raise ProblemError(
                422,
                f"unknown-{kind}",
                f"Unknown {kind}",
                f"no {kind} named {name!r} here; choose one of: {known} "
                f"(GET /v1/{kind}s lists them)",
            )
        return model

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
