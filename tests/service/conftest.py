"""One real Ray Serve instance for the whole test session, deployed the way `attention-serve run` does.

Three deployments of the service share it, three applications each: the default one at / (fixed single replicas
so batch statistics are unambiguous; fp32 so "same answer as alone" can be checked to 1e-4), a deliberately
tight one under /tight (batches of one, a 50 ms queue limit, 1 s and 2 s timeouts, an API key, a rate limit)
for the overload, timeout and auth paths, and a zoo under /zoo serving a tiny random checkpoint of every
supported family for each task, side by side (tests/service/test_checkpoints.py).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest

from service.app import application_names, serve_applications
from service.ops import start_service, stop_service
from service.tasks import TASKS

PORT = int(os.environ.get("ATTENTION_SERVE_TEST_PORT", "18000"))
METRICS_PORT = PORT + 80
TIGHT_KEY = "tight-app-test-key-5f1c"
TIGHT_AUTH = {"X-API-Key": TIGHT_KEY}
MAIN_APPS = application_names("")
TIGHT_APPS = application_names("/tight")


def applications(args: dict, batching: dict, runtime_env: dict | None = None, **options) -> list[dict]:
    """The service's three applications, each task's ingress fixed at one replica with `batching` as its
    user_config (autoscaling_config None: the builder enables autoscaling in code; these replicas stay fixed)."""
    apps = serve_applications(args)
    for app in apps:
        task = next((t for t in TASKS if app["name"].endswith(f"-{t}")), None)
        if task is not None:
            deployment = {"name": TASKS[task].deployment, "num_replicas": 1, "autoscaling_config": None}
            app["deployments"] = [{**deployment, "user_config": batching, **options}]
        if runtime_env:
            app["runtime_env"] = runtime_env
    return apps


ZOO_APPS = application_names("/zoo")


def zoo_checkpoints(root: Path) -> dict[str, dict[str, str]]:
    """task -> {family: directory}: a tiny random checkpoint of every supported family, built offline."""
    from tests.families.tiny import FAMILY_CHECKPOINTS, build_checkpoint

    return {
        task: {family: str(build_checkpoint(family, task, root / f"{family}-{task}")) for family in FAMILY_CHECKPOINTS}
        for task in TASKS
    }


def deploy_config_for_tests(zoo: dict[str, dict[str, str]]) -> dict:
    # Admission control at 1.5 s of queued work: the main app's tests send bursts of 60 requests to one fp32
    # single-thread replica (about a second of work) and check every answer; test_overload sheds at 3x.
    main_batching = {"max_batch_size": 32, "batch_wait_timeout_s": 0.01, "token_budget": 8192, "precision": "fp32",
                     "max_queue_wait_s": 1.5}  # fmt: skip
    # A request that would wait more than 50 ms for the model is refused: a few short texts fill it.
    tight_batching = {"max_batch_size": 1, "batch_wait_timeout_s": 0.0, "token_budget": 8192, "precision": "bf16",
                      "max_queue_wait_s": 0.05}  # fmt: skip
    tight_args = {
        "path_prefix": "/tight",
        "request_timeout_s": 1.0,
        "retry_after_s": 2,
        "max_body_bytes": 65536,
        "body_timeout_s": 2,
        # Roomy enough for the other tight tests' bursts; test_rate_limit sends as another client.
        "rate_limit_per_s": 5,
        "rate_limit_burst": 100,
        "client_ip_header": "X-Forwarded-For",
    }
    return {
        "proxy_location": "HeadOnly",
        "http_options": {"host": "127.0.0.1", "port": PORT, "request_timeout_s": 120},
        "applications": [
            *applications({}, main_batching),
            # The key comes from the environment, as it should in production: Serve logs `args`.
            *applications(tight_args, tight_batching, {"env_vars": {"ATTENTION_SERVE_API_KEY": TIGHT_KEY}}),
            *applications(
                {"path_prefix": "/zoo", **{task: {"models": models} for task, models in zoo.items()}},
                {**main_batching, "max_queue_wait_s": 5.0},
            ),  # fmt: skip
        ],
    }


@pytest.fixture(scope="session")
def zoo(tmp_path_factory) -> dict[str, dict[str, str]]:
    return zoo_checkpoints(tmp_path_factory.mktemp("zoo"))


@pytest.fixture(scope="session")
def service_url(zoo) -> str:
    # Logical CPUs: replicas reserve fractions of them for placement; the threads share the real cores.
    url = start_service(deploy_config_for_tests(zoo), num_cpus=4, metrics_port=METRICS_PORT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=15).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(1)
    else:
        pytest.fail("service never became ready")
    yield url
    stop_service()


@pytest.fixture
def client(service_url):
    with httpx.Client(base_url=service_url, timeout=120) as http:
        yield http
