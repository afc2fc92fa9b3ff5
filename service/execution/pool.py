"""The model pool: the local models a process serves, by name, loaded once on first use, and
the in-process samplers and denoisers built on them.

Both the gateway (through ``service.api.catalog``) and ``dsmooth worker`` processes (through
``service.distributed.consumer``) run chunks through a pool. Names come from the shipped
checkpoints, the settings' default models and the operator's extra ``{name: spec}`` entries:
a request can only name an entry, never a file.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import torch

from denoisers.classifiers import IMAGENET_IMAGES
from denoisers.registry import (
    LoadedModel,
    architectures,
    load_model,
    shipped_metadata,
    shipped_siblings,
)
from service.config import DEFAULT_DENOISER, Settings
from service.core.domain import Domain, sigma_warnings
from service.core.errors import NoDenoiserForSigma, UnknownModel
from service.execution.devices import configure_cpu_threads, resolve_device
from service.execution.local import LocalDenoiser, LocalSampler

__all__ = ["PHOTO_DENOISER", "ModelPool"]

# The shipped denoiser for photos (trained on ImageNet samples for sigma 0.25; siblings for others).
PHOTO_DENOISER = "unet-imagenet-s0.25-mse"


class ModelPool:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.device = resolve_device(settings.device)
        configure_cpu_threads(settings.cpu_threads)
        specs: dict[str, dict[str, str]] = {"classifier": {}, "denoiser": {"none": "none"}}
        for name, metadata in shipped_metadata().items():
            kind = metadata.get("kind")
            if kind in specs:
                specs[kind][name] = name
        # Built-in model files that are on this machine (the shared MobileNetV2), by name.
        for name, arch in architectures().items():
            if arch.file is not None and arch.kind in specs and arch.unavailable() is None:
                specs[arch.kind][name] = name
        for kind, default in (("classifier", settings.classifier), ("denoiser", settings.denoiser)):
            specs[kind][default.partition(":")[0]] = default
        specs["classifier"].update(settings.extra_classifiers)
        specs["denoiser"].update(settings.extra_denoisers)
        self.specs = specs
        self.default_classifier = settings.classifier.partition(":")[0]
        self.default_denoiser = settings.denoiser.partition(":")[0]
        self._models: dict[tuple[str, str], LoadedModel] = {}
        self._samplers: dict[tuple[str, str], LocalSampler] = {}
        self._denoisers: dict[str, LocalDenoiser] = {}
        self._lock = threading.Lock()
        # One model thread for the whole process: requests queue for the device.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dsmooth-model")
        self.warm = False

    def names(self, kind: str) -> list[str]:
        return list(self.specs[kind])

    def model(self, kind: str, name: str) -> LoadedModel:
        """The model served as ``name`` (loaded now if it was not yet); UnknownModel if none."""
        key = (kind, name)
        if key not in self._models:
            spec = self.specs[kind].get(name)
            if spec is None:
                raise UnknownModel(kind, name, self.specs[kind])
            with self._lock:
                if key not in self._models:
                    # Known by its catalog name everywhere (certificates, stream tasks).
                    self._models[key] = replace(load_model(spec, kind), name=name)  # type: ignore[arg-type]
        return self._models[key]

    def warm_up(self) -> None:
        """Load every model now, so that no request waits for a load (readiness says when)."""
        for kind, entries in self.specs.items():
            for name in entries:
                self.model(kind, name)
        self.warm = True

    def denoiser_for(
        self, denoiser: str | None, sigma: float, classifier: str | None = None
    ) -> str:
        """The requested denoiser; by default the default denoiser's sibling trained for
        ``sigma`` (the default itself when it is). Any denoiser gives a valid certificate, but
        one trained for another noise level removes this one worse: with no sibling for
        ``sigma``, NoDenoiserForSigma lists the sigmas there are, unless the default declares
        none (``none``, or a file without a sigma), which is then used at any sigma.

        For a local ``classifier`` of ImageNet photos, while the default denoiser is the
        built-in CIFAR-10 one, the default is the shipped photo denoiser (``PHOTO_DENOISER``)
        and its siblings instead: a denoiser trained on 32x32 thumbnails smears photos."""
        if denoiser is not None:
            return denoiser
        default = self.default_denoiser_for(classifier)
        trained = self.trained_sigmas(default)
        if not trained:
            return default
        for trained_for, name in trained.items():
            if abs(trained_for - sigma) < 1e-9:
                return name
        raise NoDenoiserForSigma(sigma, default, trained)

    def default_denoiser_for(self, classifier: str | None) -> str:
        """The default denoiser for ``classifier``'s images (see :meth:`denoiser_for`)."""
        default = self.default_denoiser
        if (
            classifier is None
            or default != DEFAULT_DENOISER
            or PHOTO_DENOISER not in self.specs["denoiser"]
            or classifier not in self.specs["classifier"]
        ):
            return default
        images = self.model("classifier", classifier).images
        return PHOTO_DENOISER if images == IMAGENET_IMAGES else default

    def trained_sigmas(self, like: str | None = None) -> dict[float, str]:
        """The served denoisers the default (or ``like``) may give way to, by the sigma each
        was trained for: its shipped siblings, or the denoiser alone when it is not shipped;
        {} when it declares no sigma."""
        default = like or self.default_denoiser
        siblings = {
            sigma: name
            for sigma, name in shipped_siblings(default).items()
            if name in self.specs["denoiser"]
        }
        if siblings:
            return dict(sorted(siblings.items()))
        own = self.model("denoiser", default).sigma
        return {} if own is None else {own: default}

    def sigma_warnings(self, denoiser: str, sigma: float) -> list[str]:
        """What a result says when ``denoiser`` was trained for another sigma, naming its
        served sibling trained for ``sigma`` where there is one."""
        trained_for = self.model("denoiser", denoiser).sigma
        better = [
            name
            for trained, name in shipped_siblings(denoiser).items()
            if abs(trained - sigma) < 1e-9 and name in self.specs["denoiser"]
        ]
        return sigma_warnings(denoiser, trained_for, sigma, better)

    def domain(self, classifier: str) -> Domain:
        """What a local classifier declares about the images it was made for."""
        model = self.model("classifier", classifier)
        return Domain(model.images, model.input_size, len(model.classes) or None)

    def local_sampler(self, classifier: str, denoiser: str) -> LocalSampler:
        """The in-process sampler of a local pair (built once)."""
        pair = (classifier, denoiser)
        if pair not in self._samplers:
            self._samplers[pair] = LocalSampler(
                self.model("denoiser", denoiser),
                self.model("classifier", classifier),
                device=self.device,
                batch_size=self.settings.batch_size,
                executor=self._executor,
                precision=self.settings.precision,
                compile=self.settings.compile,
            )
        return self._samplers[pair]

    def local_denoiser(self, denoiser: str) -> LocalDenoiser:
        """The in-process denoiser of a remote classifier's copies (built once)."""
        if denoiser not in self._denoisers:
            self._denoisers[denoiser] = LocalDenoiser(
                self.model("denoiser", denoiser),
                device=self.device,
                batch_size=self.settings.batch_size,
                executor=self._executor,
                precision=self.settings.precision,
                compile=self.settings.compile,
            )
        return self._denoisers[denoiser]

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
