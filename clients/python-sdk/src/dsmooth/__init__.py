"""dsmooth: the Python SDK of the denoised-smoothing certification API.

A hand-written layer over the generated client ``dsmooth_client`` (``denoised-smoothing-client``):

- :class:`DsmoothClient`: ``certify(path_or_bytes, n=..., sigma=...)``, ``predict``, jobs,
  ``events(job_id)`` streamed as they happen, ``verify(certificate)``;
- :func:`verify_certificate`: the offline check of a signed certificate, the same verdict and
  reasons as ``dsmooth verify`` (Ed25519 over RFC 8785 JSON, the bound and radius recomputed).
"""

from dsmooth._version import __version__
from dsmooth.client import (
    CertifyOptions,
    DsmoothClient,
    ImageInput,
    JobEvent,
    JobOptions,
    PredictOptions,
    ProblemError,
    SignedCertificate,
)
from dsmooth.verify import (
    REASON_CODES,
    Reason,
    Verdict,
    image_digest,
    pixels_digest,
    verify_certificate,
)

__all__ = [
    "REASON_CODES",
    "CertifyOptions",
    "DsmoothClient",
    "ImageInput",
    "JobEvent",
    "JobOptions",
    "PredictOptions",
    "ProblemError",
    "Reason",
    "SignedCertificate",
    "Verdict",
    "__version__",
    "image_digest",
    "pixels_digest",
    "verify_certificate",
]
