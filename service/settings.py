"""Every knob a user turns, in one place.

`Settings` is the typed argument of the Serve app builder (service.app:build_app). Values come from,
lowest precedence first: the defaults here, ATTENTION_SERVE_* environment variables (nested fields
with `__`, e.g. ATTENTION_SERVE_SENTIMENT__MAX_BATCH_SIZE=16), then the `args:` of the Serve config.

`BatchSettings` is what a model deployment takes as its Serve `user_config`, so `serve deploy` of an
edited config changes batching, token budget and precision on running replicas without a restart.
The README's configuration table documents each field; keep the two in step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PACKAGE_MODELS = Path(__file__).resolve().parent / "models"


def default_model_dir(task: str) -> Path:
    """The task model shipped with the package (LoRA adapters over the pretrained MiniLM-L6 base)."""
    return PACKAGE_MODELS / task


class BatchSettings(BaseModel):
    """Live knobs of one model deployment (its Serve user_config)."""

    model_config = ConfigDict(extra="forbid")

    max_batch_size: int = Field(32, ge=1, le=512, description="inputs one @serve.batch call collects")
    batch_wait_timeout_s: float = Field(0.005, ge=0, le=1, description="how long a batch waits to fill")
    token_budget: int = Field(8192, ge=128, description="padded tokens per forward pass (engine sub-batches)")
    precision: Literal["fp32", "bf16"] = Field("bf16", description="bf16 is ~3x faster on AVX-512 BF16 CPUs")


class DeploymentSettings(BaseModel):
    """How one model deployment is placed and scaled; applied when the app is built."""

    model_config = ConfigDict(extra="forbid")

    model_dir: Path | None = Field(None, description="model directory; None means the shipped model")
    batching: BatchSettings = BatchSettings()
    min_replicas: int = Field(1, ge=0)
    max_replicas: int = Field(2, ge=1)
    target_ongoing_requests: float = Field(16, gt=0, description="autoscaling target per replica")
    num_cpus: float = Field(0.4, gt=0, description="Ray CPU share per replica (scheduling, not threads)")
    threads: int = Field(2, ge=1, description="torch threads per replica")
    max_ongoing_requests: int = Field(64, ge=1, description="per replica; ≥ max_batch_size or batches stay small")
    max_queued_requests: int = Field(256, ge=-1, description="per caller; past it the request gets 503")


class Settings(BaseSettings):
    """The service's configuration: model placement, input limits, timeouts."""

    model_config = SettingsConfigDict(env_prefix="ATTENTION_SERVE_", env_nested_delimiter="__", extra="forbid")

    sentiment: DeploymentSettings = DeploymentSettings()
    qa: DeploymentSettings = DeploymentSettings()

    # Request limits, checked by the gateway before anything is queued.
    max_items_per_request: int = Field(64, ge=1, le=1024)
    max_text_chars: int = Field(100_000, ge=1, description="longer texts are refused; long ones are truncated")
    max_question_chars: int = Field(2_000, ge=1)
    max_context_chars: int = Field(100_000, ge=1)
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024, description="larger bodies get 413")
    max_tokens: int = Field(512, ge=16, description="sentiment input tokens; the rest is truncated")
    max_seq_len: int = Field(384, ge=32, description="QA window length in tokens")
    max_question_len: int = Field(64, ge=1, description="question tokens; longer questions get 422")
    max_windows: int = Field(64, ge=1, description="QA windows per context; longer contexts get 422")
    body_timeout_s: float = Field(10.0, gt=0, description="the whole body must arrive within it, else 408")
    request_timeout_s: float = Field(30.0, gt=0, description="past it the gateway answers 504")
    retry_after_s: int = Field(1, ge=0, description="Retry-After sent with 503")
    # Off by default. Per client address and per gateway replica; requests past it get 429 + Retry-After.
    rate_limit_per_s: float | None = Field(None, gt=0, description="steady /v1/* requests per second per client")
    rate_limit_burst: int = Field(20, ge=1, description="requests a client may send at once above the rate")

    # Off by default for local use. Set it from the environment (ATTENTION_SERVE_API_KEY) or a secret, not in a
    # config file: then every /v1/* request needs `Authorization: Bearer <key>` or `X-API-Key: <key>`.
    api_key: SecretStr | None = Field(None, min_length=1, description="required on /v1/* when set; never logged")
    # Or the path of a file holding it: a Docker secret or a mounted Kubernetes Secret (ATTENTION_SERVE_API_KEY_FILE).
    api_key_file: Path | None = Field(None, description="file with the API key; read once at start-up")

    # Gateway replicas (HTTP parsing, validation, tokenization).
    gateway_replicas: int = Field(1, ge=1)
    gateway_max_ongoing_requests: int = Field(512, ge=1)
    gateway_max_inflight: int = Field(
        128, ge=1, description="/v1 requests one gateway replica works on; past it, 503 at once (admission control)"
    )

    @model_validator(mode="after")
    def _key_from_file(self) -> Settings:
        if self.api_key_file is not None:
            if self.api_key is not None:
                raise ValueError("set api_key or api_key_file, not both")
            try:
                key = self.api_key_file.read_text().strip()
            except OSError as exc:
                raise ValueError(f"cannot read the API key file: {exc}") from None
            if not key:
                raise ValueError(f"the API key file {self.api_key_file} is empty")
            self.api_key, self.api_key_file = SecretStr(key), None  # replicas get the key, not a path to re-read
        return self

    @model_validator(mode="after")
    def _admission_below_serve_limit(self) -> Settings:
        # At Serve's own limit the proxy queues requests (without bound, and before our timeout starts) or
        # refuses them without our envelope; the gateway must refuse first.
        if self.gateway_max_inflight >= self.gateway_max_ongoing_requests:
            raise ValueError("gateway_max_inflight must be below gateway_max_ongoing_requests")
        return self

    def model_dir(self, task: Literal["sentiment", "qa"]) -> Path:
        chosen = getattr(self, task).model_dir
        return Path(chosen) if chosen else default_model_dir(task)
