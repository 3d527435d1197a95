"""One real Ray Serve instance for the whole test session, deployed the way `attention-serve run` does.

Two applications share it: the default one at / (fixed single replicas so batch statistics are
unambiguous; fp32 so "same answer as alone" can be checked to 1e-4) and a deliberately tight one at
/tight (one-slot queues, 1 s and 2 s timeouts, an API key, a rate limit) for the overload, timeout and auth paths.
"""

from __future__ import annotations

import os
import time

import httpx
import pytest

from service.cli import APP_NAME, start_service, stop_service

PORT = int(os.environ.get("ATTENTION_SERVE_TEST_PORT", "18000"))
METRICS_PORT = PORT + 80
TIGHT_KEY = "tight-app-test-key-5f1c"
TIGHT_AUTH = {"X-API-Key": TIGHT_KEY}


def _model(name: str, batching: dict, **options) -> dict:
    # autoscaling_config None: the builder enables autoscaling in code; these replicas stay fixed.
    return {"name": name, "num_replicas": 1, "autoscaling_config": None, "user_config": batching, **options}


def deploy_config_for_tests() -> dict:
    main_batching = {"max_batch_size": 32, "batch_wait_timeout_s": 0.01, "token_budget": 8192, "precision": "fp32"}
    tight_batching = {"max_batch_size": 1, "batch_wait_timeout_s": 0.0, "token_budget": 8192, "precision": "bf16"}
    tight_queue = {"max_ongoing_requests": 1, "max_queued_requests": 2}
    return {
        "proxy_location": "HeadOnly",
        "http_options": {"host": "127.0.0.1", "port": PORT, "request_timeout_s": 120},
        "applications": [
            {
                "name": APP_NAME,
                "route_prefix": "/",
                "import_path": "service.app:build_app",
                # Sized for one fp32 replica (~25 req/s): 64 in flight drain in ~3 s (test_overload's recovery).
                "args": {"gateway_max_inflight": 64},
                "logging_config": {"encoding": "JSON", "log_level": "INFO"},
                "deployments": [
                    _model("SentimentModel", main_batching, max_ongoing_requests=64),
                    _model("QAModel", main_batching, max_ongoing_requests=64),
                ],
            },
            {
                "name": "tight",
                "route_prefix": "/tight",
                "import_path": "service.app:build_app",
                "args": {
                    "request_timeout_s": 1.0,
                    "retry_after_s": 2,
                    "max_body_bytes": 65536,
                    "body_timeout_s": 2,
                    # Roomy enough for the other tight tests' bursts from 127.0.0.1; test_rate_limit uses 127.0.0.2.
                    "rate_limit_per_s": 5,
                    "rate_limit_burst": 100,
                },
                # The key comes from the environment, as it should in production: Serve logs `args`.
                "runtime_env": {"env_vars": {"ATTENTION_SERVE_API_KEY": TIGHT_KEY}},
                "deployments": [
                    _model("SentimentModel", tight_batching, **tight_queue),
                    _model("QAModel", tight_batching, **tight_queue),
                ],
            },
        ],
    }


@pytest.fixture(scope="session")
def service_url() -> str:
    # Logical CPUs: replicas reserve fractions of them for placement; the threads share the real cores.
    url = start_service(deploy_config_for_tests(), num_cpus=4, metrics_port=METRICS_PORT)
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
