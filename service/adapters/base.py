"""The classifier adapter interface: one async call, a batch of images in, one result per image out.

An adapter speaks one vendor's wire protocol and nothing else: batching, rate limits, retries,
deadlines and the circuit breaker live in :mod:`service.adapters.fanout`, shared by all.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar

import httpx
from pydantic import SecretStr
from pydantic_settings import BaseSettings

from service.adapters.prepare import largest_png

__all__ = [
    "NO_LABEL",
    "Adapter",
    "AdapterError",
    "Answer",
    "CredentialsError",
    "Failure",
    "Label",
    "retry_after_seconds",
]


@dataclass(frozen=True, slots=True)
class Label:
    key: str  # stable per vendor: Google mid, Clarifai concept id, lower-cased name elsewhere
    name: str  # for people
    score: float  # 0..1 on every vendor (AWS's 0..100 is rescaled)


NO_LABEL = Label("(none)", "(no label)", 0.0)
"""The vote of an answer without labels: a class of its own, never the candidate's."""


@dataclass(frozen=True, slots=True)
class Answer:
    """A vendor's answer for one image."""

    labels: tuple[Label, ...]
    model_version: str | None = None

    def top(self, label_map: Mapping[str, str] | None = None) -> Label:
        """The highest-scoring label, after mapping synonyms; ties break by key, never by order.

        An answer without labels votes :data:`NO_LABEL`."""
        best: dict[str, Label] = {}
        for label in self.labels:
            key = label_map.get(label.key, label.key) if label_map else label.key
            if key not in best or label.score > best[key].score:
                best[key] = Label(key, label.name if key == label.key else key, label.score)
        if not best:
            return NO_LABEL
        return min(best.values(), key=lambda item: (-item.score, item.key))


@dataclass(frozen=True, slots=True)
class Failure:
    """No answer for one image; counts as a vote against the candidate once retries are spent."""

    reason: str
    retryable: bool = False
    retry_after: float | None = None


class AdapterError(Exception):
    """The whole call failed (throttled, server error, timeout, bad request)."""

    def __init__(self, message: str, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable, self.retry_after = retryable, retry_after


class CredentialsError(AdapterError):
    """The vendor refused the credentials: stop at once, before any budget is spent."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


# Settings that do not change what a classifier answers: pacing, batching, and who pays
# (credentials are SecretStr and left out by type).
_NOT_IDENTITY = frozenset(
    {"requests_per_second", "max_batch", "max_request_bytes", "access_key_id", "project"}
)


class Adapter(ABC):
    """One vendor. Subclasses set the class variables and implement :meth:`classify`.

    ``settings`` is the vendor's pydantic-settings object (credentials, endpoint, rate)."""

    name: ClassVar[str]
    max_images_per_call: ClassVar[int] = 1
    # The encoded images one call may carry, where the vendor caps the request's size (None: no
    # cap below what single images may be).
    max_bytes_per_call: ClassVar[int | None] = None
    # The largest encoded image the vendor takes (None: none documented).
    max_bytes_per_image: ClassVar[int | None] = None
    min_side: ClassVar[int] = 1
    price_per_image: ClassVar[float] = 0.0
    settings_class: ClassVar[type[BaseSettings]]
    # The classifier's domain: the images it is made for, and the shortest side they should have
    # (a result on a smaller image carries a warning; None: the adapter cannot tell).
    images: ClassVar[str | None] = "photos of a few hundred pixels (open vocabulary)"
    photo_min_side: ClassVar[int | None] = 100

    def __init__(self, client: httpx.AsyncClient, settings: BaseSettings | None = None) -> None:
        self.client = client
        # Without explicit settings, read them from the environment (DSMOOTH_<VENDOR>_*).
        self.settings = settings if settings is not None else self.settings_class()

    @property
    def identity(self) -> dict[str, object]:
        """What names the classifier behind this adapter: every setting but credentials and
        pacing (endpoint, API version, model and version, label options). Part of every noise
        seed and vote-store key, so a changed setting never reuses another classifier's votes."""
        values = self.settings.model_dump(mode="python")
        return {
            key: value
            for key, value in sorted(values.items())
            if key not in _NOT_IDENTITY and not isinstance(value, SecretStr)
        }

    @property
    def credential_id(self) -> str:
        """Names the account that pays (a digest of the credentials, never them): replicas that
        share it share one rate limit."""
        values = self.settings.model_dump(mode="python")
        secrets = [
            v.get_secret_value() for _, v in sorted(values.items()) if isinstance(v, SecretStr)
        ]
        return hashlib.sha256("\0".join([self.name, *secrets]).encode()).hexdigest()[:16]

    @property
    def images_per_call(self) -> int:
        """The most images one call carries: the vendor's cap (a served model's may be a
        setting)."""
        return self.max_images_per_call

    @property
    def bytes_per_call(self) -> int | None:
        """The most bytes of images one call carries, as :meth:`call_bytes` counts them (None:
        no cap below what single images may be)."""
        return self.max_bytes_per_call

    def call_bytes(self, image: bytes) -> int:
        """What one PNG copy adds to a call: its bytes (the vendor's encoding, e.g. base64, is
        allowed for in :attr:`max_bytes_per_call`)."""
        return len(image)

    def largest_copy_bytes(self, width: int, height: int) -> int:
        """What a noisy copy of a ``width`` x ``height`` image may add to a call at most, as
        :meth:`call_bytes` counts it: its PNG when noise leaves nothing to compress."""
        return largest_png(width, height, self.min_side)

    @property
    def image_byte_limit(self) -> int | None:
        """The most one copy may add to a call: under the vendor's per-image limit and, where
        calls are capped, alone in one call."""
        limits = [v for v in (self.max_bytes_per_image, self.bytes_per_call) if v]
        return min(limits) if limits else None

    @property
    def requests_per_second(self) -> float:
        return float(getattr(self.settings, "requests_per_second", 10.0))

    @property
    @abstractmethod
    def configured(self) -> bool:
        """Whether credentials are present (never what they are)."""

    @property
    def pinned_version(self) -> str:
        """The model version the adapter asks for, when the vendor lets it choose ("" if not)."""
        return ""

    @abstractmethod
    async def classify(self, images: Sequence[bytes]) -> list[Answer | Failure]:
        """One call for up to ``max_images_per_call`` PNG images; one result per image, in order.

        Raises :class:`AdapterError` when the call as a whole fails.
        """

    async def post_json(
        self, url: str, build: Callable[[], object], headers: Mapping[str, str]
    ) -> httpx.Response:
        """POST the JSON that ``build`` makes, made and encoded off the event loop: a batch of
        photos is tens of MB of base64, which would stall every other request meanwhile."""
        compact = (",", ":")
        content = await asyncio.to_thread(lambda: json.dumps(build(), separators=compact).encode())
        return await self.client.post(
            url, content=content, headers={**headers, "Content-Type": "application/json"}
        )

    def json_body(self, response: httpx.Response) -> dict[str, Any]:
        """The answer's JSON object; a malformed 2xx answer is a retryable failure of the call.
        An error status whose body is not JSON (a proxy's or gateway's page in plain text or
        HTML) reads as its status: 401/403 refuse the credentials, 429/5xx are retried (after its
        Retry-After), other 4xx are not."""
        try:
            body = response.json()
        except ValueError as exc:
            if not response.is_success:  # an error page of a proxy or gateway: read its status
                raise self.error_for(response, response.text[:200]) from exc
            raise AdapterError(
                f"{self.name}: malformed answer (HTTP {response.status_code})", retryable=True
            ) from exc
        if not isinstance(body, dict):
            raise AdapterError(f"{self.name}: answer is not a JSON object", retryable=True)
        return body

    def error_for(self, response: httpx.Response, message: str) -> AdapterError:
        """The standard reading of an HTTP failure: 401/403 credentials, 429/5xx retryable."""
        status = response.status_code
        if status == 403 and _QUOTA.search(message):  # the account, not the key: as final
            return CredentialsError(f"{self.name}: the account is out of quota (403): {message}")
        if status in (401, 403):
            return CredentialsError(f"{self.name}: credentials refused ({status}): {message}")
        retryable = status == 429 or status >= 500
        return AdapterError(
            f"{self.name}: HTTP {status}: {message}",
            retryable=retryable,
            retry_after=retry_after_seconds(response.headers, message),
        )


def as_object(value: object) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one (vendors omit fields freely)."""
    return value if isinstance(value, dict) else {}


def as_list(value: object) -> list[Any]:
    """``value`` if it is a JSON array, else an empty one."""
    return value if isinstance(value, list) else []


_QUOTA = re.compile(r"\bquota\b", re.IGNORECASE)
_RETRY_AFTER_TEXT = re.compile(r"retry after (\d+(?:\.\d+)?) second", re.IGNORECASE)


def retry_after_seconds(headers: Mapping[str, str], message: str = "") -> float | None:
    """A server-given delay: ``retry-after-ms``/``x-ms-retry-after-ms``, ``Retry-After``
    (seconds or an HTTP date), or "retry after N second(s)" in the message."""
    lowered = {k.lower(): v for k, v in headers.items()}
    for name in ("retry-after-ms", "x-ms-retry-after-ms"):
        if name in lowered:
            try:
                return max(0.0, float(lowered[name]) / 1000)
            except ValueError:
                pass
    value = lowered.get("retry-after")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                when = parsedate_to_datetime(value)
                from datetime import UTC, datetime

                return max(0.0, (when - datetime.now(UTC)).total_seconds())
            except (TypeError, ValueError):
                pass
    match = _RETRY_AFTER_TEXT.search(message)
    return float(match.group(1)) if match else None
