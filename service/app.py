"""The Serve application: a gateway in front of one model deployment per task.

serve run service.app:build_app                 # defaults, ATTENTION_SERVE_* from the environment
serve run deploy/serve_config.yaml              # the same, with args and per-deployment overrides
"""

from __future__ import annotations

from typing import Any

from ray.serve import Application

from service.deployments import QAModel, SentimentModel
from service.gateway import Gateway
from service.settings import DeploymentSettings, Settings


def _model_options(deployment: DeploymentSettings) -> dict[str, Any]:
    return {
        "autoscaling_config": {
            "min_replicas": deployment.min_replicas,
            "max_replicas": deployment.max_replicas,
            "target_ongoing_requests": deployment.target_ongoing_requests,
        },
        "max_ongoing_requests": deployment.max_ongoing_requests,
        "max_queued_requests": deployment.max_queued_requests,
        "ray_actor_options": {
            "num_cpus": deployment.num_cpus,
            # OpenMP threads otherwise spin for a while after each forward pass; on a small machine that
            # spinning starves the proxy and the gateway, which share the same cores.
            "runtime_env": {"env_vars": {"OMP_WAIT_POLICY": "PASSIVE"}},
        },
        "user_config": deployment.batching.model_dump(),
    }


def app_from_settings(settings: Settings) -> Application:
    """The typed builder: everything the application does follows from `settings`."""
    sentiment = SentimentModel.options(**_model_options(settings.sentiment)).bind(
        str(settings.model_dir("sentiment")), settings.sentiment.threads, settings.max_tokens
    )
    qa = QAModel.options(**_model_options(settings.qa)).bind(
        str(settings.model_dir("qa")), settings.qa.threads, settings.max_seq_len
    )
    gateway = Gateway.options(
        num_replicas=settings.gateway_replicas,
        max_ongoing_requests=settings.gateway_max_ongoing_requests,
        ray_actor_options={"num_cpus": 0.1},
    )
    gateway_settings = settings.model_dump(mode="json")
    if settings.api_key is not None:  # JSON dumps mask secrets; the gateway needs the real key to compare
        gateway_settings["api_key"] = settings.api_key.get_secret_value()
    return gateway.bind(sentiment, qa, gateway_settings)


def build_app(args: dict[str, Any] | None = None) -> Application:
    """Entry point for `serve run` and Serve config files: `args` override the environment."""
    return app_from_settings(Settings(**(args or {})))
