"""Clarifai general image recognition (v2 ``outputs``), personal access token, 128 per call."""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from typing import Any, ClassVar

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.adapters.base import (
    Adapter,
    AdapterError,
    Answer,
    CredentialsError,
    Failure,
    Label,
    as_object,
    retry_after_seconds,
)

__all__ = ["ClarifaiAdapter", "ClarifaiSettings"]

OK, MIXED = 10000, 10010
_THROTTLED = {11005}  # CONN_THROTTLED
# CONN_TOKEN_INVALID, CONN_CREDENTIALS_INVALID, CONN_INSUFFICIENT_SCOPES, CONN_KEY_INVALID,
# CONN_KEY_NOT_FOUND
_BAD_KEY = {11001, 11002, 11007, 11008, 11009}
# FAILURE and CONN_INVALID_REQUEST refuse credentials when their text names them.
_BAD_KEY_IF_SAID = {10020, 11102}
_KEY_WORDS = re.compile(r"key|token|authori[sz]ation|credential|PAT\b", re.IGNORECASE)
# The account, not the key (CONN_ACCOUNT_ISSUES, CONN_EXCEED_HOURLY_LIMIT,
# CONN_EXCEED_MONTHLY_LIMIT, CONN_EXCEEDS_LIMITS): no retry within a request outlasts them.
_ACCOUNT = {11000, 11003, 11004, 11006}
# Worth another try (docs.clarifai.com, status codes; the SDK's retryable codes): TRY_AGAIN,
# CONN_THROTTLED, MODEL_DEPLOYING, MODEL_QUEUED_FOR_DEPLOYMENT, MODEL_BUSY_PLEASE_RETRY,
# MODEL_LOADING, the RPC queue-full / unavailable / timeout codes, maintenance, and the internal
# errors (98xxx, 99009).
_RETRYABLE = {10030, 11005, 21351, 21352, 21354, 21355, 39997, 40030, 40031, 40032, 99009}
# The status names the API may send instead of the number (the rate-limit docs show
# "CONN_THROTTLED").
_NAMES = {
    "SUCCESS": 10000, "MIXED_STATUS": 10010, "FAILURE": 10020, "TRY_AGAIN": 10030,
    "CONN_ACCOUNT_ISSUES": 11000, "CONN_TOKEN_INVALID": 11001, "CONN_CREDENTIALS_INVALID": 11002,
    "CONN_EXCEED_HOURLY_LIMIT": 11003, "CONN_EXCEED_MONTHLY_LIMIT": 11004,
    "CONN_THROTTLED": 11005, "CONN_EXCEEDS_LIMITS": 11006, "CONN_INSUFFICIENT_SCOPES": 11007,
    "CONN_KEY_INVALID": 11008, "CONN_KEY_NOT_FOUND": 11009, "CONN_INVALID_REQUEST": 11102,
    "MODEL_DEPLOYING": 21351, "MODEL_QUEUED_FOR_DEPLOYMENT": 21352,
    "MODEL_BUSY_PLEASE_RETRY": 21354, "MODEL_LOADING": 21355,
}  # fmt: skip


def _retryable(code: int) -> bool:
    return code in _RETRYABLE or 98000 <= code < 99000


class ClarifaiSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="DSMOOTH_CLARIFAI_", env_file=".env", extra="ignore"
    )
    endpoint: str = "https://api.clarifai.com"
    pat: SecretStr = SecretStr("")
    model_version: str = ""  # pin a version; empty: the model's current one
    max_concepts: int = 10
    requests_per_second: float = 15.0


class ClarifaiAdapter(Adapter):
    name: ClassVar[str] = "clarifai"
    max_images_per_call: ClassVar[int] = 128
    # "The total batch size (in bytes) for each request must be less than 128MB": base64 adds
    # a third, and the JSON around it a little.
    max_bytes_per_call: ClassVar[int | None] = 90_000_000
    max_bytes_per_image: ClassVar[int | None] = 20_000_000
    price_per_image: ClassVar[float] = 0.0012
    settings_class: ClassVar[type[BaseSettings]] = ClarifaiSettings
    settings: ClarifaiSettings

    @property
    def configured(self) -> bool:
        return bool(self.settings.pat.get_secret_value())

    @property
    def pinned_version(self) -> str:
        return self.settings.model_version

    async def classify(self, images: Sequence[bytes]) -> list[Answer | Failure]:
        path = "/v2/users/clarifai/apps/main/models/general-image-recognition"
        settings = self.settings
        if settings.model_version:
            path += f"/versions/{settings.model_version}"

        def body() -> dict[str, object]:
            return {
                "inputs": [
                    {"data": {"image": {"base64": base64.b64encode(i).decode()}}} for i in images
                ],
                "model": {
                    "output_info": {"output_config": {"max_concepts": settings.max_concepts}}
                },
            }

        headers = {"Authorization": f"Key {settings.pat.get_secret_value()}"}
        url = f"{settings.endpoint.rstrip('/')}{path}/outputs"
        response = await self.post_json(url, body, headers)
        answer = self.json_body(response)
        status = as_object(answer.get("status"))
        code = _code(status)
        message = str(status.get("description") or status.get("details") or code)
        said = f"{status.get('description', '')} {status.get('details', '')}"
        refused = code in _BAD_KEY_IF_SAID and _KEY_WORDS.search(said)
        if code in _ACCOUNT:
            raise CredentialsError(f"clarifai: the account is out of quota ({code}): {message}")
        if code in _BAD_KEY or refused or response.status_code in (401, 403):
            raise CredentialsError(f"clarifai: credentials refused ({code}): {message}")
        if code in _THROTTLED or response.status_code == 429:
            raise AdapterError(
                f"clarifai: throttled ({code}): {message}",
                retryable=True,
                retry_after=retry_after_seconds(response.headers, message),
            )
        outputs = answer.get("outputs")
        # MIXED_STATUS, or FAILURE with one status per input: each input failed or not on its own.
        each = isinstance(outputs, list) and len(outputs) == len(images)
        if not (each and code in (MIXED, 10020)) and (response.status_code != 200 or code != OK):
            error = self.error_for(response, f"{code}: {message}")
            error.retryable = error.retryable or _retryable(code)
            raise error
        if not isinstance(outputs, list) or len(outputs) != len(images):
            count = len(outputs) if isinstance(outputs, list) else 0
            raise AdapterError(f"clarifai: {count} outputs for {len(images)}", False)
        return [_one(output) for output in outputs]


def _code(status: dict[str, Any]) -> int:
    code = status.get("code", 0)  # a number, the number as a string, or the status name
    if isinstance(code, str) and code.strip().upper() in _NAMES:
        return _NAMES[code.strip().upper()]
    try:
        return int(code)
    except (TypeError, ValueError):
        return 0


def _one(output: object) -> Answer | Failure:
    output = as_object(output)
    status = as_object(output.get("status"))
    code = _code(status)
    if code != OK:
        return Failure(f"clarifai: {code}: {status.get('description', '')}", _retryable(code))
    version = output.get("model", {}).get("model_version", {}).get("id")
    concepts = output.get("data", {}).get("concepts", [])
    labels = tuple(
        Label(str(c["id"]), str(c.get("name", c["id"])), float(c.get("value", 0.0)))
        for c in concepts
    )
    return Answer(labels, version)
