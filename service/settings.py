"""Service settings from the environment (prefix ``DSMOOTH_``) and an optional ``.env`` file."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.imaging import DEFAULT_MAX_PIXELS
from service.worker import DEFAULT_BATCH_SIZE

__all__ = ["DEFAULT_CLASSIFIER", "DEFAULT_DENOISER", "PLACEHOLDER_SECRET", "Settings"]

PLACEHOLDER_SECRET = "development-only-secret-change-me"
DEFAULT_CLASSIFIER = (
    "cifar-resnet56:../shared/models/third-party/cifar10-resnet/resnet56-4bfd9763.th"
)
DEFAULT_DENOISER = "none"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DSMOOTH_", env_file=".env", extra="ignore")

    environment: Literal["development", "production"] = "development"
    secret: SecretStr = Field(
        SecretStr(PLACEHOLDER_SECRET),
        description="HMAC key for the noise seeds; whoever knows it can predict the noise",
    )
    device: str = Field("auto", description="'auto' (CUDA when present), 'cpu', 'cuda', 'cuda:1'")
    batch_size: int = Field(DEFAULT_BATCH_SIZE, gt=0, description="noisy copies per forward pass")
    classifier: str = Field(DEFAULT_CLASSIFIER, description="default classifier spec")
    denoiser: str = Field(DEFAULT_DENOISER, description="default denoiser spec")
    max_pixels: int = Field(DEFAULT_MAX_PIXELS, gt=0, description="largest decoded image accepted")

    @model_validator(mode="after")
    def _refuse_placeholder_secret(self) -> Self:
        value = self.secret.get_secret_value()
        if self.environment != "development" and (value == PLACEHOLDER_SECRET or len(value) < 16):
            raise ValueError(
                "DSMOOTH_SECRET must be set to a random value of at least 16 characters outside "
                "development (e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`)"
            )
        return self

    @property
    def secret_bytes(self) -> bytes:
        return self.secret.get_secret_value().encode()
