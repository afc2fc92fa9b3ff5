"""Domain errors of the engine and the execution layer. ``service.api.problems`` maps them to
problem documents; the CLI prints them; nothing below the API knows about HTTP."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["NoDenoiserForSigma", "NotConfigured", "UnknownModel", "VendorUnavailable"]


class UnknownModel(LookupError):
    """No model of ``kind`` is served under ``name``."""

    def __init__(self, kind: str, name: str, known: Iterable[str]) -> None:
        self.kind, self.name, self.known = kind, name, sorted(known)
        super().__init__(f"no {kind} named {name!r} here; choose one of: {', '.join(self.known)}")


class NoDenoiserForSigma(LookupError):
    """No denoiser is trained for the requested sigma and the request named none: the default
    would be used at a noise level it was not trained for (a silent mismatch)."""

    def __init__(self, sigma: float, default: str, trained: Iterable[float]) -> None:
        self.sigma, self.default, self.trained = sigma, default, sorted(trained)
        sigmas = ", ".join(f"{t:g}" for t in self.trained)
        super().__init__(
            f"no denoiser here is trained for sigma {sigma:g}; the default denoiser {default} "
            f"and its siblings are trained for sigma {sigmas}: choose one of those, or name a "
            f"denoiser to use at sigma {sigma:g} anyway (its result then says that it was "
            "trained for another sigma)"
        )


class NotConfigured(RuntimeError):
    """A vendor classifier without credentials on this server."""

    def __init__(self, classifier: str) -> None:
        self.classifier = classifier
        self.prefix = f"DSMOOTH_{classifier.upper()}_"
        super().__init__(
            f"{classifier!r} has no credentials here; the operator sets them with "
            f"{self.prefix}* variables"
        )


class VendorUnavailable(RuntimeError):
    """A vendor failed repeatedly: its circuit breaker is open for ``retry_after_s``."""

    def __init__(self, classifier: str, retry_after_s: float) -> None:
        self.classifier, self.retry_after_s = classifier, retry_after_s
        super().__init__(
            f"{classifier!r} failed repeatedly; calls are paused for {retry_after_s:.0f} s"
        )
