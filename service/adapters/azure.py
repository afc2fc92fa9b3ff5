"""Azure AI Vision image tagging, API v3.2 (``/vision/v3.2/analyze``) or 4.0 (Image Analysis)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import ClassVar, Literal

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.adapters.base import Adapter, Answer, Failure, Label, as_object

__all__ = ["AzureAdapter", "AzureSettings"]

API_VERSION_4 = "2023-10-01"
_ABOUT_IMAGE = re.compile(r"\bimage\b", re.IGNORECASE)


class AzureSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DSMOOTH_AZURE_", env_file=".env", extra="ignore")
    endpoint: str = ""  # https://<resource>.cognitiveservices.azure.com
    key: SecretStr = SecretStr("")
    api: Literal["4.0", "3.2"] = "4.0"
    requests_per_second: float = 10.0


class AzureAdapter(Adapter):
    name: ClassVar[str] = "azure"
    min_side: ClassVar[int] = 50
    price_per_image: ClassVar[float] = 0.001
    settings_class: ClassVar[type[BaseSettings]] = AzureSettings
    settings: AzureSettings

    @property
    def configured(self) -> bool:
        return bool(self.settings.endpoint and self.settings.key.get_secret_value())

    @property
    def image_byte_limit(self) -> int | None:
        """Image files under 4 MB on v3.2, 20 MB on 4.0 (its InvalidImageSize message)."""
        return 4 * 2**20 if self.settings.api == "3.2" else 20 * 2**20

    async def classify(self, images: Sequence[bytes]) -> list[Answer | Failure]:
        (image,) = images  # one image per call
        settings = self.settings
        endpoint = settings.endpoint.rstrip("/")
        if settings.api == "3.2":
            url, params = f"{endpoint}/vision/v3.2/analyze", {"visualFeatures": "Tags"}
        else:
            url = f"{endpoint}/computervision/imageanalysis:analyze"
            params = {"api-version": API_VERSION_4, "features": "tags"}
        headers = {
            "Ocp-Apim-Subscription-Key": settings.key.get_secret_value(),
            "Content-Type": "application/octet-stream",
        }
        response = await self.client.post(url, params=params, headers=headers, content=image)
        body = self.json_body(response)
        if response.status_code == 200:
            tags = body.get("tags") if settings.api == "3.2" else body.get("tagsResult")
            tags = tags.get("values") if isinstance(tags, dict) else tags
            labels = tuple(
                Label(str(t["name"]).lower(), str(t["name"]), float(t["confidence"]))
                for t in tags or []
            )
            return [Answer(labels, body.get("modelVersion"))]
        error = as_object(body.get("error"))
        message = str(error.get("message", response.text[:200]))
        inner = as_object(error.get("innererror"))
        # One image per call: a 400 about the image fails this image, not the call (4.0 names
        # an oversize image in the message alone, without an innererror).
        code = str(inner.get("code") or error.get("code") or "InvalidRequest")
        if response.status_code == 400 and (
            code.startswith("InvalidImage") or _ABOUT_IMAGE.search(message)
        ):
            return [Failure(f"azure: {code}: {message}")]
        raise self.error_for(response, message)
