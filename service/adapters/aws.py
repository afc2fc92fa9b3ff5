"""AWS Rekognition DetectLabels: SigV4 signed by botocore, sent by httpx, one image per call."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Sequence
from typing import ClassVar

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.adapters.base import (
    Adapter,
    AdapterError,
    Answer,
    CredentialsError,
    Failure,
    Label,
    as_list,
    as_object,
)

__all__ = ["AwsAdapter", "AwsSettings"]

_THROTTLED = {
    "ThrottlingException",
    "ProvisionedThroughputExceededException",
    "LimitExceededException",
}
_BAD_IMAGE = {"InvalidImageFormatException", "ImageTooLargeException", "InvalidParameterException"}
_BAD_CREDENTIALS = {
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "AccessDeniedException",
    "ExpiredTokenException",
    "IncompleteSignatureException",
    "MissingAuthenticationTokenException",
}


# "Signature expired: 20261130T120000Z is now earlier than 20261130T120500Z (... - 5 min.)",
# "Signature not yet current: ...": a clock off by more than 5 minutes, not a wrong key.
_CLOCK_SKEW = re.compile(r"Signature (expired|not yet current)", re.IGNORECASE)


class AwsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DSMOOTH_AWS_", env_file=".env", extra="ignore")
    region: str = "us-east-1"
    access_key_id: str = ""
    secret_access_key: SecretStr = SecretStr("")
    session_token: SecretStr = SecretStr("")
    endpoint: str = ""  # default: https://rekognition.{region}.amazonaws.com
    max_labels: int = 10
    min_confidence: float = 55.0
    # DetectLabels adds every label's ancestors as labels at the same confidence ("Tabby Cat",
    # "Cat", "Mammal", "Animal"), so the top label is usually a generic one. False: vote with
    # the most specific labels only (those no other label names among its Parents).
    ancestor_labels: bool = False
    requests_per_second: float = 10.0


class AwsAdapter(Adapter):
    name: ClassVar[str] = "aws"
    min_side: ClassVar[int] = 80
    max_bytes_per_image: ClassVar[int | None] = 5 * 2**20  # "Image bytes ... 5 MB" (ImageTooLarge)
    price_per_image: ClassVar[float] = 0.001
    settings_class: ClassVar[type[BaseSettings]] = AwsSettings
    settings: AwsSettings

    @property
    def configured(self) -> bool:
        settings = self.settings
        return bool(settings.access_key_id and settings.secret_access_key.get_secret_value())

    @property
    def url(self) -> str:
        region = self.settings.region
        return self.settings.endpoint or f"https://rekognition.{region}.amazonaws.com/"

    def _signed_headers(self, body: bytes) -> dict[str, str]:
        """SigV4 headers for this exact body (signed again on every attempt: dates expire)."""
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        settings = self.settings
        credentials = Credentials(
            settings.access_key_id,
            settings.secret_access_key.get_secret_value(),
            settings.session_token.get_secret_value() or None,
        )
        request = AWSRequest(
            method="POST",
            url=self.url,
            data=body,
            headers={
                "Content-Type": "application/x-amz-json-1.1",
                "X-Amz-Target": "RekognitionService.DetectLabels",
            },
        )
        SigV4Auth(credentials, "rekognition", settings.region).add_auth(request)
        return dict(request.headers.items())

    async def classify(self, images: Sequence[bytes]) -> list[Answer | Failure]:
        (image,) = images
        body = json.dumps(
            {
                "Image": {"Bytes": base64.b64encode(image).decode()},
                "MaxLabels": self.settings.max_labels,
                "MinConfidence": self.settings.min_confidence,
            }
        ).encode()
        response = await self.client.post(
            self.url, content=body, headers=self._signed_headers(body)
        )
        answer = self.json_body(response)
        if response.status_code == 200:
            labels = _labels(answer.get("Labels"), self.settings.ancestor_labels)
            return [Answer(labels, answer.get("LabelModelVersion"))]
        # JSON protocol: the error's name in ``__type`` (or the x-amzn-ErrorType header).
        kind = str(answer.get("__type") or response.headers.get("x-amzn-ErrorType", ""))
        kind = kind.rpartition("#")[2].partition(":")[0]
        message = str(answer.get("Message") or answer.get("message") or kind)
        if kind in _THROTTLED:  # sent as 400 (or 500), but a retryable throttle
            raise AdapterError(f"aws: {kind}: {message}", retryable=True)
        if kind in _BAD_CREDENTIALS and _CLOCK_SKEW.search(message):  # the key may be right
            raise CredentialsError(
                f"aws: signature refused: this server's clock is more than 5 minutes off AWS's "
                f"(sync it with NTP): {kind}: {message}"
            )
        if kind in _BAD_CREDENTIALS:
            raise CredentialsError(f"aws: credentials refused: {kind}: {message}")
        if kind in _BAD_IMAGE:
            return [Failure(f"aws: {kind}: {message}")]
        raise self.error_for(response, f"{kind}: {message}")


def _labels(items: object, ancestors: bool) -> tuple[Label, ...]:
    """The answer's labels, less those another label names as a parent unless ``ancestors``
    (Name and Confidence are documented as optional: a label without a name is skipped)."""
    found = [as_object(item) for item in as_list(items)]
    parents = (
        set()
        if ancestors
        else {
            str(as_object(p).get("Name")).lower() for i in found for p in as_list(i.get("Parents"))
        }
    )
    return tuple(
        Label(name.lower(), name, float(item.get("Confidence") or 0.0) / 100)
        for item in found
        if (name := str(item.get("Name") or "")) and name.lower() not in parents
    )
