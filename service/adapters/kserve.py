"""A model served by Triton or KServe, over the Open Inference Protocol v2 (REST)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
from PIL import Image
from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.adapters.base import Adapter, AdapterError, Answer, Failure, Label

__all__ = ["KServeAdapter", "KServeSettings"]


class KServeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DSMOOTH_KSERVE_", env_file=".env", extra="ignore")
    url: str = ""  # http://host:8000 (Triton) or the KServe inference service
    model: str = ""
    version: str = ""  # pin a model version; empty: the server's default
    input_name: str = "input"
    token: SecretStr = SecretStr("")  # optional bearer token
    labels: list[str] = []  # class names by output index; empty: the index
    output_name: str = ""  # the output that holds the scores; empty: the model's first
    max_batch: int = 64  # the model's max_batch_size (Triton answers 400 to a larger batch)
    # The server's request size limit (Triton's --http-max-input-size: 64 MiB by default): a
    # batch of large images is split to stay under it, counting 4 bytes of JSON a pixel value.
    max_request_bytes: int = 64 * 2**20
    requests_per_second: float = 100.0


class KServeAdapter(Adapter):
    """Sends uint8 HWC pixels as one ``[B, H, W, 3]`` tensor of at most ``max_batch`` images;
    takes the arg-max of the output ``output_name`` (default: the first) as the label."""

    name: ClassVar[str] = "kserve"
    max_images_per_call: ClassVar[int] = 64
    # Any model behind Open Inference Protocol v2: its domain is the operator's to know.
    images: ClassVar[str | None] = None
    photo_min_side: ClassVar[int | None] = None
    settings_class: ClassVar[type[BaseSettings]] = KServeSettings
    settings: KServeSettings

    @property
    def configured(self) -> bool:
        return bool(self.settings.url and self.settings.model)

    @property
    def images_per_call(self) -> int:
        return max(1, self.settings.max_batch)

    @property
    def identity(self) -> dict[str, object]:
        values = super().identity
        if not self.settings.output_name:  # the first output, as before the setting existed:
            del values["output_name"]  # the same classifier keeps its votes and its ledger
        return values

    @property
    def pinned_version(self) -> str:
        return self.settings.version

    @property
    def bytes_per_call(self) -> int | None:
        return self.settings.max_request_bytes

    def call_bytes(self, image: bytes) -> int:
        width, height = Image.open(io.BytesIO(image)).size  # the header only
        return self.largest_copy_bytes(width, height)

    def largest_copy_bytes(self, width: int, height: int) -> int:
        """Pixel values as JSON integers: at most 4 bytes each ("255,"), and the envelope."""
        return 4 * 3 * width * height + 256

    async def classify(self, images: Sequence[bytes]) -> list[Answer | Failure]:
        settings = self.settings
        path = f"/v2/models/{settings.model}"
        if settings.version:
            path += f"/versions/{settings.version}"
        headers = {}
        if settings.token.get_secret_value():
            headers["Authorization"] = f"Bearer {settings.token.get_secret_value()}"
        url = f"{settings.url.rstrip('/')}{path}/infer"
        response = await self.post_json(url, lambda: _request_body(images, settings), headers)
        answer = self.json_body(response)
        if response.status_code != 200:
            raise self.error_for(response, str(answer.get("error", response.text[:200])))
        outputs = [o for o in answer.get("outputs") or [] if isinstance(o, dict)]
        if settings.output_name:
            outputs = [o for o in outputs if o.get("name") == settings.output_name]
        if not outputs:
            wanted = f" named {settings.output_name!r}" if settings.output_name else ""
            raise AdapterError(f"kserve: the answer has no output{wanted}", retryable=False)
        scores = np.asarray(outputs[0]["data"], dtype=np.float64).reshape(len(images), -1)
        version = answer.get("model_version")
        return [Answer(self._labels(row), version) for row in scores]

    def _labels(self, row: np.ndarray) -> tuple[Label, ...]:
        names = self.settings.labels
        top = np.argsort(-row, kind="stable")[:5]
        return tuple(
            Label(str(i), names[i] if i < len(names) else str(i), float(row[i])) for i in top
        )


def _request_body(images: Sequence[bytes], settings: KServeSettings) -> dict[str, object]:
    """The v2 infer request: the PNGs decoded to one UINT8 ``[B, H, W, 3]`` tensor; with
    ``output_name``, that output alone is asked for (v2: any order, several)."""
    pixels = np.stack([np.asarray(Image.open(io.BytesIO(i)).convert("RGB")) for i in images])
    tensor = {
        "name": settings.input_name,
        "shape": list(pixels.shape),
        "datatype": "UINT8",
        "data": pixels.reshape(-1).tolist(),
    }
    body: dict[str, object] = {"inputs": [tensor]}
    if settings.output_name:
        body["outputs"] = [{"name": settings.output_name}]
    return body
