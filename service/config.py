"""Service settings from the environment (prefix ``DSMOOTH_``) and an optional ``.env`` file,
and the API-key records they hold. No torch here: every layer reads the settings."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_CLASSIFIER",
    "DEFAULT_DENOISER",
    "DEFAULT_MAX_PIXELS",
    "PLACEHOLDER_SECRET",
    "ApiKey",
    "Settings",
    "shared_dir",
]

PLACEHOLDER_SECRET = "development-only-secret-change-me"
DEFAULT_CLASSIFIER = "cifar10-resnet20"  # shipped in denoisers/checkpoints
DEFAULT_DENOISER = "unet-cifar10-s0.25-mse"  # shipped; trained for sigma 0.25
DEFAULT_BATCH_SIZE = 500  # noisy copies per forward pass
DEFAULT_MAX_PIXELS = 16_000_000  # largest decoded image (decompression bombs are refused)


def shared_dir() -> Path:
    """The read-only data beside the project (third-party weights, CIFAR-10, sample photos):
    ``$DSMOOTH_SHARED_DIR``, else ``shared`` beside the checkout (``../shared``)."""
    default = Path(__file__).resolve().parents[2] / "shared"
    return Path(os.environ.get("DSMOOTH_SHARED_DIR") or default)


class ApiKey(BaseModel):
    name: str = Field(min_length=1, description="who holds the key (shown in logs, never the key)")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="hex SHA-256 of the key")
    daily_queries: int | None = Field(None, ge=0, description="classifier queries per UTC day")
    max_work_tflop: float | None = Field(
        None, gt=0, description="largest request of this key (TFLOP); default: the server's"
    )
    monthly_usd: float | None = Field(
        None,
        ge=0,
        le=1e12,  # finite: an infinite limit made every paid request of the key a 500
        allow_inf_nan=False,
        description="USD of classifier queries per UTC calendar month (booked at the worst case "
        "when a request is accepted, settled at what it paid); null: no limit",
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DSMOOTH_", env_file=".env", extra="ignore")

    environment: Literal["development", "production"] = "development"
    secret: SecretStr = Field(
        SecretStr(PLACEHOLDER_SECRET),
        description="HMAC key for the noise seeds; whoever knows it can predict the noise",
    )
    device: str = Field("auto", description="'auto' (CUDA when present), 'cpu', 'cuda', 'cuda:1'")
    batch_size: int = Field(DEFAULT_BATCH_SIZE, gt=0, description="noisy copies per forward pass")
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="model arithmetic; auto: bf16 where the hardware has it natively"
    )
    compile: bool = Field(
        False,
        description="torch.compile the models (dynamic batch size; on CUDA also CUDA graphs, "
        "batches padded to powers of two): 1.03-1.12x samples/s measured "
        "on a 2-core AVX2 CPU, after 10-25 s of compilation at the first request of each model "
        "pair; the certificate's precision then ends in '+compile'",
    )
    cpu_threads: int | None = Field(
        None, gt=0, description="torch threads on the CPU; default: the CPUs this process may use"
    )
    classifier: str = Field(DEFAULT_CLASSIFIER, description="default classifier spec")
    denoiser: str = Field(DEFAULT_DENOISER, description="default denoiser spec")
    max_pixels: int = Field(DEFAULT_MAX_PIXELS, gt=0, description="largest decoded image accepted")
    max_upload_bytes: int = Field(10 * 1024 * 1024, gt=0, description="largest image upload")
    max_n_local: int = Field(1_000_000, gt=0, description="cap on n0 + n for local classifiers")
    max_n_remote: int = Field(10_000, gt=0, description="cap on n0 + n for paid vendor APIs")
    max_work_tflop: float = Field(
        500.0,
        gt=0,
        description="largest request, in TFLOP: (n0 + n) x the models' FLOPs per noisy copy, "
        "which grow with the image's pixels (a CIFAR-10 U-Net + ResNet-20 pass is 0.28 GFLOP)",
    )
    max_pass_memory_mib: int | None = Field(
        None,
        gt=0,
        description="memory one forward pass may take (MiB); default: a quarter of the memory "
        "available (half the free GPU memory); an image whose single copy needs more is refused",
    )
    max_running: int = Field(4, gt=0, description="certifications sampling at once (process)")
    max_queued: int = Field(
        64, ge=0, description="admitted requests waiting for a running slot; beyond it 503"
    )
    max_per_key: int = Field(
        8, gt=0, description="requests and jobs of one key running or waiting; beyond it 429"
    )
    shutdown_timeout_s: float = Field(
        30.0, gt=0, description="on SIGTERM: time for in-flight requests before they are cut"
    )
    vendor_timeout_s: float = Field(30.0, gt=0, description="timeout of one vendor call")
    vendor_concurrency: int = Field(8, gt=0, description="vendor calls in flight per vendor")
    vendor_deadline_s: float = Field(600.0, gt=0, description="time for one chunk's queries")
    extra_classifiers: dict[str, str] = Field(
        default_factory=dict, description="more classifiers to serve: {name: spec}"
    )
    extra_denoisers: dict[str, str] = Field(
        default_factory=dict, description="more denoisers to serve: {name: spec}"
    )
    redis_url: str | None = Field(
        None, description="redis://host:6379/0: vote store (and stream workers) in Redis"
    )
    execution: Literal["in-process", "stream"] = Field(
        "in-process", description="run chunks here, or in `dsmooth worker` processes via Redis"
    )
    stream_noise_rng: Literal["torch-cpu", "torch-cuda"] = Field(
        "torch-cpu",
        description="noise generator family for stream workers: torch-cpu works on every "
        "worker; torch-cuda is faster but needs GPU workers",
    )
    stream_timeout_s: float = Field(600.0, gt=0, description="wait for one chunk from workers")
    stream_heartbeat_timeout_s: float = Field(
        10.0,
        gt=0,
        description="a stream worker silent this long counts as gone; with none alive, stream "
        "requests fail at once (503) instead of waiting for nobody",
    )
    stream_cold_start_s: float = Field(
        0.0,
        ge=0,
        description="where workers scale from zero (KEDA): with none alive, enqueue anyway (the "
        "waiting chunk wakes the autoscaler) and wait this long for one; 0: 503 at once",
    )
    stream_max_deliveries: int = Field(
        3,
        ge=1,
        description="a chunk task handed out this often and never finished (it crashed its "
        "workers) goes to the dead-letter stream and fails its request",
    )
    vote_ttl_seconds: int = Field(7 * 24 * 3600, gt=0, description="how long votes are kept")
    api_keys: list[ApiKey] = Field(
        default_factory=list,
        description='JSON list of {"name", "sha256", "daily_queries", "monthly_usd", '
        '"max_work_tflop"}; see '
        "`dsmooth new-api-key`",
    )
    requests_per_minute_per_key: int = Field(
        600, ge=0, description="API requests per minute per key (0: unlimited)"
    )
    cors_origins: list[str] = Field(default_factory=list, description="allowed browser origins")
    job_ttl_seconds: float = Field(3600, gt=0, description="how long finished jobs are kept")
    max_jobs: int = Field(1000, gt=0, description="jobs kept in memory at most")

    log_format: Literal["text", "json"] = Field(
        "text", description="json: one JSON object per log line, with the request id"
    )
    otel: bool = Field(
        False,
        description="export OpenTelemetry spans over OTLP/HTTP (the `otel` extra; endpoint and "
        "headers from the standard OTEL_* variables)",
    )

    signing_key: SecretStr | None = Field(
        None,
        description="Ed25519 private key (PEM, PKCS#8) that signs certificates; required outside "
        "development, where one is made and kept in signing_key_file",
    )
    signing_key_file: Path = Field(
        Path.home() / ".cache" / "dsmooth" / "signing-key.pem",
        description="development only: where the generated signing key is kept",
    )
    retired_signing_keys: list[dict[str, str]] = Field(
        default_factory=list,
        description="public JWKs of earlier signing keys, still published so that the "
        "certificates they signed keep verifying (key rotation)",
    )

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Self:
        if self.environment == "development":
            return self
        value = self.secret.get_secret_value()
        if value == PLACEHOLDER_SECRET or len(value) < 16:
            raise ValueError(
                "DSMOOTH_SECRET must be set to a random value of at least 16 characters outside "
                "development (e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`)"
            )
        if not self.api_keys:
            raise ValueError(
                "DSMOOTH_API_KEYS must list at least one key outside development "
                "(open access is for local development only); see `dsmooth new-api-key`"
            )
        return self

    @model_validator(mode="after")
    def _keys_need_a_secret(self) -> Self:
        # Keys mean clients who must not predict the noise: the public placeholder would let
        # them, whatever the environment says.
        if self.api_keys and self.secret.get_secret_value() == PLACEHOLDER_SECRET:
            raise ValueError(
                "DSMOOTH_API_KEYS is set but DSMOOTH_SECRET is the public placeholder: set it to "
                "a random value (e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`)"
            )
        return self

    @model_validator(mode="after")
    def _stream_needs_redis(self) -> Self:
        if self.execution == "stream" and not self.redis_url:
            raise ValueError("DSMOOTH_EXECUTION=stream needs DSMOOTH_REDIS_URL")
        return self

    @property
    def open_access(self) -> bool:
        """No API key needed: development with no keys configured."""
        return self.environment == "development" and not self.api_keys

    @property
    def secret_bytes(self) -> bytes:
        return self.secret.get_secret_value().encode()
