"""The service's own Prometheus metrics (Ray Serve's built-in ones come on top: ray_serve_*).

Why Ray's metrics API and not prometheus-client: every replica is its own process, possibly on another
node, and replicas come and go. `ray.serve.metrics` sends each process's values to its node's metrics
agent, which exports them on Ray's metrics port with the deployment/replica tags added, so Prometheus
scrapes one stable endpoint per node and sums over replicas. A prometheus-client registry per replica
would need a port per process and service discovery for each.

Ray exports these with a `ray_` prefix: `attention_serve_requests_total` is scraped as
`ray_attention_serve_requests_total`. Labels are bounded: task (2), route, status code, kind; never
request text, questions or answers.
"""

from __future__ import annotations

from ray.serve import metrics

# Latencies here run from a few ms (one short text) to seconds (a long QA context under load).
LATENCY_BUCKETS_S = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]
FORWARD_BUCKETS_S = [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]
BATCH_SIZE_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256]
TOKEN_BUCKETS = [64, 256, 1024, 2048, 4096, 8192, 16384, 32768]
RATIO_BUCKETS = [0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0]


class EdgeMetrics:
    """What the HTTP edge sees: requests by task and status, end-to-end latency."""

    def __init__(self) -> None:
        self.requests = metrics.Counter(
            "attention_serve_requests",
            description="HTTP requests answered, by task and status code",
            tag_keys=("task", "code"),
        )
        self.latency = metrics.Histogram(
            "attention_serve_request_duration_seconds",
            description="end-to-end request latency inside the service, by task",
            boundaries=LATENCY_BUCKETS_S,
            tag_keys=("task",),
        )

    def observe(self, task: str, code: int, seconds: float) -> None:
        self.requests.inc(tags={"task": task, "code": str(code)})
        self.latency.observe(seconds, tags={"task": task})


class ModelMetrics:
    """What one model replica does: batches, tokens, padding, forward time, queue time, truncation."""

    def __init__(self, task: str) -> None:
        self.tags = {"task": task}
        self.batch_size = metrics.Histogram(
            "attention_serve_batch_size",
            description="jobs (texts or QA windows) per batch",
            boundaries=BATCH_SIZE_BUCKETS,
            tag_keys=("task",),
        )
        self.tokens = metrics.Counter(
            "attention_serve_tokens",
            description="tokens through the encoder; kind=real or padded (real + padding)",
            tag_keys=("task", "kind"),
        )
        self.pass_tokens = metrics.Histogram(
            "attention_serve_forward_pass_tokens",
            description="padded tokens per forward pass",
            boundaries=TOKEN_BUCKETS,
            tag_keys=("task",),
        )
        self.padding_ratio = metrics.Histogram(
            "attention_serve_padding_ratio",
            description="share of a forward pass's tokens that are padding",
            boundaries=RATIO_BUCKETS,
            tag_keys=("task",),
        )
        self.forward = metrics.Histogram(
            "attention_serve_forward_seconds",
            description="model time per forward pass",
            boundaries=FORWARD_BUCKETS_S,
            tag_keys=("task",),
        )
        self.queue = metrics.Histogram(
            "attention_serve_batch_queue_seconds",
            description="time a job waited in the replica before its batch started",
            boundaries=LATENCY_BUCKETS_S,
            tag_keys=("task",),
        )
        self.truncated = metrics.Counter(
            "attention_serve_inputs_truncated",
            description="inputs longer than max_tokens, of which only the start was read",
            tag_keys=("task",),
        )
        self.items = metrics.Counter(
            "attention_serve_inputs",
            description="inputs (texts or QA pairs) accepted, by task",
            tag_keys=("task",),
        )
        self.attention_requests = metrics.Counter(
            "attention_serve_attention_requests",
            description="requests that asked for attention maps, by task",
            tag_keys=("task",),
        )
        self.wait_limit = metrics.Gauge(
            "attention_serve_queue_wait_limit_seconds",
            description="the wait admission control admits requests under now: max_queue_wait_s, or "
            "overload_queue_wait_s while the replica's queue stands (sustained overload)",
            tag_keys=("task",),
        )
        self.info = metrics.Gauge(
            "attention_serve_model_info",
            description="1 for the model a replica serves",
            tag_keys=("task", "model_id", "version", "precision"),
        )

    def accepted(self, inputs: int, with_attention: bool) -> None:
        """A request passed validation: its inputs (texts or QA pairs) go to the batch queue."""
        self.items.inc(inputs, tags=self.tags)
        if with_attention:
            self.attention_requests.inc(tags=self.tags)

    def set_model(self, model_id: str, version: str, precision: str, serving: bool = True) -> None:
        tags = {**self.tags, "model_id": model_id, "version": version, "precision": precision}
        self.info.set(1 if serving else 0, tags=tags)

    def set_wait_limit(self, seconds: float) -> None:
        self.wait_limit.set(seconds, tags=self.tags)

    def batch_started(self, size: int, waited_s: list[float]) -> None:
        """One batch of `size` jobs (texts or QA windows) left the queue; each job waited as long as given."""
        self.batch_size.observe(size, tags=self.tags)
        for seconds in waited_s:
            self.queue.observe(seconds, tags=self.tags)

    def forward_pass(self, real_tokens: int, padded_tokens: int, padding_ratio: float, seconds: float) -> None:
        self.tokens.inc(real_tokens, tags={**self.tags, "kind": "real"})
        self.tokens.inc(padded_tokens, tags={**self.tags, "kind": "padded"})
        self.pass_tokens.observe(padded_tokens, tags=self.tags)
        self.padding_ratio.observe(padding_ratio, tags=self.tags)
        self.forward.observe(seconds, tags=self.tags)

    def truncated_inputs(self, count: int) -> None:
        if count:
            self.truncated.inc(count, tags=self.tags)
