"""Google Cloud Vision label detection over REST (``images:annotate``), 16 images per call."""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from typing import ClassVar

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.adapters.base import (
    Adapter,
    Answer,
    CredentialsError,
    Failure,
    Label,
    as_list,
    as_object,
)

__all__ = ["GoogleAdapter", "GoogleSettings"]

# gRPC codes a per-image error may carry that are worth another try.
# DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ABORTED, INTERNAL, UNAVAILABLE
_RETRYABLE_CODES = {4, 8, 10, 13, 14}

_KEY_REFUSED = {"API_KEY_INVALID", "API_KEY_EXPIRED", "API_KEY_SERVICE_BLOCKED", "SERVICE_DISABLED"}
_KEY_MESSAGE = re.compile(r"API key (not valid|expired|invalid)", re.IGNORECASE)


class GoogleSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DSMOOTH_GOOGLE_", env_file=".env", extra="ignore")
    endpoint: str = "https://vision.googleapis.com"
    api_key: SecretStr = SecretStr("")
    token: SecretStr = SecretStr("")  # OAuth bearer token instead of an API key
    project: str = ""  # x-goog-user-project, with a token
    max_results: int = 10
    requests_per_second: float = 30.0


class GoogleAdapter(Adapter):
    name: ClassVar[str] = "google"
    max_images_per_call: ClassVar[int] = 16
    # A request's JSON is capped at about 10 MB and base64 adds a third: 7 MB of PNGs a call.
    max_bytes_per_call: ClassVar[int | None] = 7_000_000
    max_bytes_per_image: ClassVar[int | None] = 20 * 2**20
    price_per_image: ClassVar[float] = 0.0015
    settings_class: ClassVar[type[BaseSettings]] = GoogleSettings
    settings: GoogleSettings

    @property
    def configured(self) -> bool:
        settings = self.settings
        return bool(settings.api_key.get_secret_value() or settings.token.get_secret_value())

    async def classify(self, images: Sequence[bytes]) -> list[Answer | Failure]:
        settings = self.settings
        headers: dict[str, str] = {}
        if settings.token.get_secret_value():
            headers["Authorization"] = f"Bearer {settings.token.get_secret_value()}"
            if settings.project:
                headers["x-goog-user-project"] = settings.project
        else:  # a header, not ?key=: URLs end up in logs (httpx logs every request's URL)
            headers["X-Goog-Api-Key"] = settings.api_key.get_secret_value()

        def body() -> dict[str, object]:
            return {
                "requests": [
                    {
                        "image": {"content": base64.b64encode(image).decode()},
                        "features": [
                            {"type": "LABEL_DETECTION", "maxResults": settings.max_results}
                        ],
                    }
                    for image in images
                ]
            }

        url = f"{settings.endpoint.rstrip('/')}/v1/images:annotate"
        response = await self.post_json(url, body, headers)
        answer = self.json_body(response)
        if response.status_code != 200:
            error = as_object(answer.get("error"))
            message = str(error.get("message", response.text[:200]))
            details = error.get("details")
            reasons = {d.get("reason") for d in details or [] if isinstance(d, dict)}
            # An invalid or expired key is a 400 INVALID_ARGUMENT, with an ErrorInfo reason or
            # (as often) with only its message; 401/403 refuse a token or a key's project.
            if (
                reasons & _KEY_REFUSED
                or _KEY_MESSAGE.search(message)
                or error.get("status") in ("UNAUTHENTICATED", "PERMISSION_DENIED")
            ):
                raise CredentialsError(f"google: credentials refused: {message}")
            failed = self.error_for(response, message)
            # A quota's 429 RESOURCE_EXHAUSTED says how long to wait in a RetryInfo detail.
            failed.retry_after = failed.retry_after or _retry_delay(details)
            raise failed
        responses = as_list(answer.get("responses"))
        if len(responses) != len(images):
            raise self.error_for(response, f"{len(responses)} answers for {len(images)} images")
        return [_one(item) for item in responses]


def _one(item: object) -> Answer | Failure:
    item = as_object(item)
    if "error" in item:
        error = as_object(item["error"])
        code = error.get("code", 2)
        retryable = code in _RETRYABLE_CODES
        return Failure(f"google: {error.get('message', code)}", retryable)
    # mid is an opaque id that proto3 JSON leaves out when empty: then the description names it.
    labels = tuple(
        Label(key, str(a.get("description") or key), float(a.get("score") or 0.0))
        for a in map(as_object, as_list(item.get("labelAnnotations")))
        if (key := str(a.get("mid") or a.get("description") or ""))
    )
    return Answer(labels)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


def _retry_delay(details: object) -> float | None:
    """The ``retryDelay`` of a ``google.rpc.RetryInfo`` detail ("30s", "1.5s"), if any."""
    for detail in map(as_object, as_list(details)):
        if str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            match = _DURATION.match(str(detail.get("retryDelay", "")))
            if match:
                return float(match.group(1))
    return None
