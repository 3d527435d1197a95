"""The Serve applications: one per task, each its own ingress (one hop), and the front beside them.

    attention-serve run                              # the three applications with their defaults
    serve run deploy/serve_config.yaml               # the same, with args and per-deployment overrides

Each task is its own application at its own route (`/v1/sentiment`, `/v1/qa`), so each scales on its own; the
front at `/` serves health, readiness, the model list, the docs and the explorer. All three take the same
`args` (the Settings), so the edge behaves the same on every route.
"""

from __future__ import annotations

from typing import Any

from ray.serve import Application

from service.ingress import Front, QAIngress, SentimentIngress
from service.settings import DeploymentSettings, Settings
from service.tasks import TASKS

FRONT_APP = "attention-serve"
# The Ray placement share of the front: it only answers health checks and docs.
FRONT_NUM_CPUS = 0.1


def deployment_options(deployment: DeploymentSettings) -> dict[str, Any]:
    """Serve options of a task ingress, all following from its settings."""
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
            "num_gpus": deployment.num_gpus,
            # OpenMP threads otherwise spin for a while after each forward pass; on a small machine that
            # spinning starves the proxy and the other replicas, which share the same cores.
            "runtime_env": {"env_vars": {"OMP_WAIT_POLICY": "PASSIVE"}},
        },
        "user_config": deployment.batching.model_dump(),
    }


def sentiment_app(args: dict[str, Any] | None = None) -> Application:
    settings = Settings(**(args or {}))
    return SentimentIngress.options(**deployment_options(settings.sentiment)).bind(settings.for_replicas())


def qa_app(args: dict[str, Any] | None = None) -> Application:
    settings = Settings(**(args or {}))
    return QAIngress.options(**deployment_options(settings.qa)).bind(settings.for_replicas())


def front_app(args: dict[str, Any] | None = None) -> Application:
    settings = Settings(**(args or {}))
    names = application_names(settings.path_prefix)
    task_apps = {task: (names[task], TASKS[task].deployment) for task in TASKS}
    return Front.options(num_replicas=1, ray_actor_options={"num_cpus": FRONT_NUM_CPUS}).bind(
        settings.for_replicas(), task_apps
    )


def application_names(path_prefix: str = "") -> dict[str, str]:
    """Serve application names of one deployment of the service: "front", "sentiment", "qa" -> name.

    At the root: attention-serve, attention-serve-sentiment, attention-serve-qa; under /tight: tight, ...
    """
    base = path_prefix.strip("/").replace("/", "-") or FRONT_APP
    return {"front": base, **{task: spec.application(base) for task, spec in TASKS.items()}}


def serve_applications(args: dict[str, Any] | None = None, logging_config: dict | None = None) -> list[dict]:
    """The `applications:` of a Serve config that deploys the service with `args` (its Settings)."""
    args = dict(args or {})
    prefix = Settings(**args).path_prefix
    names = application_names(prefix)
    logging_config = logging_config or {"encoding": "JSON", "log_level": "INFO"}
    applications = [{"name": names["front"], "route_prefix": prefix or "/", "import_path": "service.app:front_app"}]
    for task, spec in TASKS.items():
        applications.append({"name": names[task], "route_prefix": prefix + spec.route, "import_path": spec.builder})
    return [{**app, "args": args, "logging_config": logging_config} for app in applications]
