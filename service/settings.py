"""Every knob a user turns, in one place.

`Settings` is the typed argument of the Serve app builders (service.app: front_app, sentiment_app, qa_app).
Values come from, lowest precedence first: the defaults here, ATTENTION_SERVE_* environment variables (nested
fields with `__`, e.g. ATTENTION_SERVE_SENTIMENT__MIN_REPLICAS=4), then the `args:` of the Serve config.

`BatchSettings` is what a task's ingress deployment takes as its Serve `user_config`, so `serve deploy` of an
edited config changes batching, token budget and precision on running replicas without a restart.
The README's configuration table documents each field; keep the two in step.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.engine.config import DEFAULTS as ENGINE

PACKAGE_MODELS = Path(__file__).resolve().parent / "models"
# The model card beside the sources (a checkout, an editable install); an installed package has none, so the
# image copies it elsewhere and sets model_card (ATTENTION_SERVE_MODEL_CARD, in the Dockerfile).
SOURCE_MODEL_CARD = Path(__file__).resolve().parent.parent / "docs" / "models.md"


MODEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def default_model_dir(task: str) -> Path:
    """The task model shipped with the package (LoRA adapters over the pretrained MiniLM-L6 base)."""
    return PACKAGE_MODELS / task


# The batching knobs, each declared once with its bounds; a task's settings class gives its own defaults.
MaxBatchSize = Annotated[int, Field(ge=1, le=512, description="jobs (texts or QA windows) one batch takes")]
MaxQueueWait = Annotated[
    float | None,
    Field(
        gt=0,
        description="a request that would wait longer than this for the model gets 503 + Retry-After; None: one "
        "that would not be answered by its deadline (request_timeout_s, or the client's X-Request-Timeout)",
    ),
]
OverloadQueueWait = Annotated[
    float | None,
    Field(gt=0, description="the wait limit while the queue stands (sustained overload); None: never tighter"),
]


class BatchSettings(BaseModel):
    """Live knobs of one model deployment (its Serve user_config). The engine's knobs default to the engine's own
    defaults (service/engine/config.py); each task's class below gives that task's defaults."""

    model_config = ConfigDict(extra="forbid")

    max_batch_size: MaxBatchSize = ENGINE.max_batch_size
    batch_wait_timeout_s: float = Field(0.005, ge=0, le=1, description="how long a batch waits to fill")
    token_budget: int = Field(
        ENGINE.token_budget, ge=128, description="real tokens per batch and padded tokens per forward pass"
    )
    max_padding: float = Field(
        ENGINE.max_padding, ge=0, le=1, description="padding share past which a pass is cut in two"
    )
    precision: Literal["auto", "fp32", "bf16", "int8"] = Field(
        ENGINE.precision,
        description="auto: each replica times fp32 and bf16 at load and keeps the fastest, and int8 too where the "
        "model's artifact records an int8 cost within 0.5 points (int8: dynamic quantization, CPU only)",
    )
    # Admission control. Per task, because what a normal queue looks like depends on the requests: at 70 % load
    # of the mixed Locust profile, a sentiment queue holds a few long texts and a QA queue whole long contexts
    # (seconds of work). Measured in docs/reliability.md.
    max_queue_wait_s: MaxQueueWait = 1.0
    # Tighter only while the queue stands (sustained overload, service/serving/admission.py): a flood's requests then
    # wait this long at most, while the bursts of normal load keep max_queue_wait_s. Off unless a task sets it.
    overload_queue_wait_s: OverloadQueueWait = None
    overload_target_s: float = Field(
        0.4, gt=0, description="the queue stands when every request finds this wait for a whole interval"
    )
    overload_interval_s: float = Field(0.1, gt=0, le=10, description="that interval (CoDel's), in seconds")

    @model_validator(mode="before")
    @classmethod
    def _a_lower_limit_given_alone_turns_off_the_default_overload_limit(cls, data: Any) -> Any:
        """A given max_queue_wait_s below the class's default overload limit, without an overload limit of its
        own, drops that default (no tightening: the given limit is already tighter) rather than failing."""
        if not isinstance(data, dict) or "max_queue_wait_s" not in data or "overload_queue_wait_s" in data:
            return data
        default = cls.model_fields["overload_queue_wait_s"].default
        try:
            given = data["max_queue_wait_s"]
            if default is not None and given is not None and float(given) < default:
                return {**data, "overload_queue_wait_s": None}
        except (TypeError, ValueError):
            pass  # not a number: validation reports it
        return data

    @model_validator(mode="after")
    def _overload_limit_is_tighter(self) -> BatchSettings:
        limit = self.max_queue_wait_s
        if self.overload_queue_wait_s is not None and limit is not None and self.overload_queue_wait_s > limit:
            raise ValueError("overload_queue_wait_s must not exceed max_queue_wait_s: it is the tighter limit")
        return self

    def generous_limit_s(self, deadline_s: float) -> float:
        """The wait a request is admitted under at normal load: max_queue_wait_s, or (None) what is left of its
        deadline."""
        return self.max_queue_wait_s if self.max_queue_wait_s is not None else deadline_s

    def updated(self, changes: dict[str, Any]) -> Self:
        """These settings with `changes` applied (a live user_config names only what it changes). A lower
        max_queue_wait_s given alone drops an overload limit above it, as at start-up."""
        data = self.model_dump()
        overload = data["overload_queue_wait_s"]
        given = changes.get("max_queue_wait_s")
        if given is not None and "overload_queue_wait_s" not in changes and overload is not None:
            try:
                if float(given) < overload:
                    data["overload_queue_wait_s"] = None
            except (TypeError, ValueError):
                pass
        return type(self).model_validate({**data, **changes})


class SentimentBatching(BatchSettings):
    """Sentiment batches at most 8 texts: every text waits for its whole batch, and under a 3x flood that wait was
    most of the accepted requests' p99 at 32 (docs/reliability.md). A single-thread CPU replica classifies ~65-token
    texts as fast in batches of 8 as of 32 (`python -m loadtests.benchmark.bench_engine --threads 1 --sweep
    1,4,8,16,32`); a GPU replica wants larger batches. Admission: 2 s for the bursts of normal load (1 s refused 24
    requests of a 30-minute soak at ~70 % of capacity), 0.25 s under a flood (0.25 s queued plus about 0.45 s of
    batch and HTTP time, against a p99 of 0.42-0.53 s at capacity)."""

    max_batch_size: MaxBatchSize = 8
    max_queue_wait_s: MaxQueueWait = 2.0
    overload_queue_wait_s: OverloadQueueWait = 0.25


class QABatching(BatchSettings):
    """QA queues hold whole long contexts: a question over a long paper is seconds of work, so a fixed wait limit
    refused a few clients asking about long documents one after another although each would have been answered well
    within its timeout. A QA request is refused only when the work ahead of it and its own would not be done by its
    deadline. A flood is another matter: the queue standing at a second or more for a whole second, with ten or
    more requests arriving in it (a few clients' closed loop cannot bring that many), tightens the limit to 2 s of
    queued work until the flood is over (docs/reliability.md, QA flood)."""

    max_queue_wait_s: MaxQueueWait = None
    overload_queue_wait_s: OverloadQueueWait = 2.0
    overload_target_s: float = 1.0
    overload_interval_s: float = 1.0


class DeploymentSettings(BaseModel):
    """How one task's ingress deployment is placed and scaled; applied when the app is built."""

    model_config = ConfigDict(extra="forbid")

    model_dir: Path | None = Field(None, description="model directory; None means the shipped model")
    models: dict[str, Path] = Field(
        default_factory=dict,
        description="several models at once: id -> directory, the first the default (instead of model_dir)",
    )
    max_loaded_models: int | None = Field(
        None,
        ge=1,
        description="models of `models` each replica holds at once; the least recently used idle one (never the "
        "default) is let go for a request that names another, which waits for its load. None: all, from the start",
    )
    batching: BatchSettings = Field(default_factory=BatchSettings)
    # Two single-thread replicas per task: measured on 2 cores, they serve ~2x one replica with both threads
    # (docs/benchmarks.md); raise both on bigger machines.
    min_replicas: int = Field(2, ge=0)
    max_replicas: int = Field(2, ge=1)
    target_ongoing_requests: float = Field(16, gt=0, description="autoscaling target per replica")
    num_cpus: float = Field(0.4, gt=0, description="Ray CPU share per replica (scheduling, not threads)")
    threads: int = Field(1, ge=1, description="torch threads per replica")
    device: str = Field(ENGINE.device, pattern=r"^(cpu|cuda(:\d+)?)$", description="cpu, or cuda[:N] for a GPU")
    num_gpus: float = Field(0, ge=0, description="Ray GPU share per replica; set it with device=cuda")
    max_ongoing_requests: int = Field(256, ge=1, description="requests one replica holds; admission refuses first")
    max_queued_requests: int = Field(64, ge=-1, description="requests waiting for a replica; past it Serve sheds")

    @model_validator(mode="after")
    def _one_way_to_name_models(self) -> DeploymentSettings:
        if self.model_dir is not None and self.models:
            raise ValueError("give model_dir (one model) or models (id -> directory), not both")
        for model_id in self.models:
            if not MODEL_ID.fullmatch(model_id):
                raise ValueError(f"model id {model_id!r} must be letters, digits, '.', '_' or '-' (not first)")
        return self

    def model_entries(self, task: str) -> list[tuple[str | None, Path]]:
        """(id, directory) of each model, the default first; id None: the model's own (its artifact's, its
        directory's name)."""
        if self.models:
            return [(model_id, Path(directory)) for model_id, directory in self.models.items()]
        return [(None, Path(self.model_dir) if self.model_dir else default_model_dir(task))]

    @model_validator(mode="after")
    def _gpu_with_cuda(self) -> DeploymentSettings:
        if self.device.startswith("cuda") and self.num_gpus == 0:
            raise ValueError("device=cuda needs num_gpus > 0, or Ray places the replica where there is no GPU")
        return self


TASK_BATCHING: dict[str, type[BatchSettings]] = {"sentiment": SentimentBatching, "qa": QABatching}


class SentimentDeployment(DeploymentSettings):
    batching: SentimentBatching = Field(default_factory=SentimentBatching)


class QADeployment(DeploymentSettings):
    batching: QABatching = Field(default_factory=QABatching)


class Settings(BaseSettings):
    """The service's configuration: model placement, input limits, timeouts."""

    model_config = SettingsConfigDict(
        env_prefix="ATTENTION_SERVE_", env_nested_delimiter="__", extra="forbid", env_parse_none_str="null"
    )

    # Each task's own defaults are its settings classes' (a partial override keeps the rest of them).
    sentiment: SentimentDeployment = Field(default_factory=SentimentDeployment)
    qa: QADeployment = Field(default_factory=QADeployment)

    # Where the API is mounted: "" serves /v1/sentiment; "/tight" serves /tight/v1/sentiment (several deployments
    # of the service on one Serve instance). Application names follow it (see service.app.application_names).
    path_prefix: str = Field("", pattern=r"^(/[A-Za-z0-9_-]+)*$", description="URL prefix of every route")

    model_card: Path | None = Field(None, description="the file GET /v1/models/card serves; None: docs/models.md")

    # Request limits, checked by the routes before anything is queued.
    max_items_per_request: int = Field(64, ge=1, le=1024)
    max_text_chars: int = Field(100_000, ge=1, description="longer texts are refused; long ones are truncated")
    max_question_chars: int = Field(2_000, ge=1)
    max_context_chars: int = Field(100_000, ge=1)
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024, description="larger bodies get 413")
    max_tokens: int = Field(ENGINE.max_tokens, ge=16, description="sentiment input tokens; the rest is truncated")
    max_seq_len: int = Field(384, ge=32, description="QA window length in tokens")
    max_question_len: int = Field(64, ge=1, description="question tokens; longer questions get 422")
    max_windows: int = Field(64, ge=1, description="QA windows per context; longer contexts get 422")
    body_timeout_s: float = Field(10.0, gt=0, description="the whole body must arrive within it, else 408")
    request_timeout_s: float = Field(30.0, gt=0, description="past it the request is answered 504")
    retry_after_s: int = Field(1, ge=0, description="Retry-After sent with 503")
    # Off by default. Per client address and per replica; requests past it get 429 + Retry-After.
    rate_limit_per_s: float | None = Field(None, gt=0, description="steady /v1/* requests per second per client")
    rate_limit_burst: int = Field(20, ge=1, description="requests a client may send at once above the rate")
    # Behind HAProxy (direct ingress) every request comes from HAProxy's address, so the peer address does not tell
    # clients apart. Name the header a trusted front proxy (TLS terminator, load balancer) sets to the client's
    # address, e.g. X-Forwarded-For (its last entry is used: the one that proxy added). Only set it when every
    # request passes that proxy: a client reaching the service directly could forge it.
    client_ip_header: str | None = Field(None, description="header with the client address, set by a front proxy")

    # Off by default for local use. Set it from the environment (ATTENTION_SERVE_API_KEY) or a secret, not in a
    # config file: then every /v1/* request needs `Authorization: Bearer <key>` or `X-API-Key: <key>`.
    api_key: SecretStr | None = Field(None, min_length=1, description="required on /v1/* when set; never logged")
    # Or the path of a file holding it: a Docker secret or a mounted Kubernetes Secret (ATTENTION_SERVE_API_KEY_FILE).
    api_key_file: Path | None = Field(None, description="file with the API key; read once at start-up")

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

    def for_replicas(self) -> dict:
        """The settings as JSON for a replica's constructor; JSON dumps mask secrets, a replica needs the key."""
        dumped = self.model_dump(mode="json")
        if self.api_key is not None:
            dumped["api_key"] = self.api_key.get_secret_value()
        return dumped

    def model_card_file(self) -> Path:
        return self.model_card or SOURCE_MODEL_CARD

    def model_dir(self, task: Literal["sentiment", "qa"]) -> Path:
        """The task's default model directory."""
        return getattr(self, task).model_entries(task)[0][1]
