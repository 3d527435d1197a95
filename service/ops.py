"""Serve operations: start the service, read and change its live config, scale a task.

The command line (service/cli.py), the tests and the load tests all use these, so there is one way to start the
service and one way to change it while it runs. `start_service` deploys declaratively (as `serve run <config>`
does), so a running service can be changed with `serve deploy <edited config>` or `apply_config`, which goes
through the Ray dashboard's REST API: replicas are added or removed while requests keep flowing.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any, Literal

from service.app import application_names, serve_applications
from service.settings import TASK_BATCHING, Settings
from service.tasks import TASKS

DEFAULT_DASHBOARD = "http://127.0.0.1:8265"
DEFAULT_METRICS_PORT = 8080
Proxy = Literal["haproxy", "python"]
# Ray reads these when it starts (ray/serve/_private/constants.py); measured in docs/benchmarks.md.
PROXIES: dict[str, dict[str, str]] = {
    # HAProxy in front, each ingress replica its own HTTP server (direct ingress), user code and the router on
    # the replica's event loop. Not its buffered request logs: they reach the file 1,000 lines late (or on a
    # crash never), and an operator reading the access log for a request id must find it.
    # HAProxy also retries a request whose replica closed the connection without answering (it died under
    # it): inference is pure, so asking another replica is safe (Ray retries only refused connections).
    "haproxy": {
        "RAY_SERVE_ENABLE_HA_PROXY": "1",
        "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
        "RAY_SERVE_REQUEST_PATH_LOG_BUFFER_SIZE": "1",
        "RAY_SERVE_HAPROXY_RETRY_ON": "conn-failure empty-response",
        # How long a stopping replica stays reachable before it refuses new connections and drains (Ray: 30 s, for a
        # load balancer that registers replicas itself). Only Serve's own HAProxy sends to a replica here: it drops a
        # stopping one when the controller says so, within a second or two, and retries a refused connection
        # elsewhere. Every stop waits this out: a scale-down, a redeploy, and each stop of the service (stop_service),
        # which at 30 s outlasts the 30 s a container gets to stop (docker-compose.yml's stop_grace_period).
        "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "5",
    },
    # Serve's own Python proxy (uvicorn), every default of Ray's.
    "python": {},
}
DEFAULT_PROXY: Proxy = "haproxy"


def default_deploy_config(host: str = "127.0.0.1", port: int = 8000, args: dict[str, Any] | None = None) -> dict:
    """The Serve config `run` deploys when no file is given: the three applications with their defaults."""
    return {
        "proxy_location": "HeadOnly",
        "http_options": {"host": host, "port": port},
        "applications": serve_applications(args),
    }


def load_deploy_config(path: Path, host: str | None, port: int | None) -> dict:
    import yaml  # comes with ray

    config = yaml.safe_load(path.read_text())
    http = config.setdefault("http_options", {})
    if host is not None:
        http["host"] = host
    if port is not None:
        http["port"] = port
    return config


def proxy_environment(proxy: Proxy) -> dict[str, str]:
    """The environment Ray must start with for `proxy`; set before Ray starts, inherited by every Ray process."""
    if proxy not in PROXIES:
        raise ValueError(f"unknown proxy {proxy!r}; one of {sorted(PROXIES)}")
    return PROXIES[proxy]


def check_models(config: dict) -> None:
    """Refuse, before anything starts, a model directory the service could not serve (ModelLoadError, saying what
    is wrong and, for an unsupported architecture, which families are supported): Serve would otherwise retry
    the failing replicas for minutes before calling the deployment failed."""
    from service.engine.weights import check_model_dir

    tasks_by_builder = {spec.builder: task for task, spec in TASKS.items()}
    for app in config.get("applications", []):
        task = tasks_by_builder.get(app.get("import_path", ""))
        if task is None:
            continue
        deployment = getattr(Settings(**(app.get("args") or {})), task)
        for _, model_dir in deployment.model_entries(task):
            check_model_dir(model_dir, task)


class StartInterrupted(Exception):
    """SIGTERM or SIGINT came before the service was up (start_service with `stop`)."""


def stop_on_signals(stop: threading.Event) -> None:
    """SIGTERM and SIGINT set `stop` from now on. Ray puts its own handlers in when it starts, which end this process
    at once (SIGTERM: a crash dump, then abort), leaving the proxy and the replicas to be killed mid-request: put these
    in once Ray runs."""

    def asked(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, asked)
    signal.signal(signal.SIGINT, asked)


def start_service(
    config: dict,
    *,
    num_cpus: int | None = None,
    metrics_port: int = DEFAULT_METRICS_PORT,
    ready_timeout_s: float = 300,
    proxy: Proxy = DEFAULT_PROXY,
    stop: threading.Event | None = None,
) -> str:
    """Start (or join) local Ray, deploy `config`, wait until every application runs; returns the base URL.

    Ray's metrics (Serve's and ours) are exported for Prometheus on `metrics_port`, away from the API port.
    With `stop` (the command line's), SIGTERM and SIGINT set it from the moment Ray runs, and one that comes before
    the service is up raises StartInterrupted: the caller then stops what has started (stop_service).
    """
    check_models(config)
    for name, value in proxy_environment(proxy).items():
        os.environ.setdefault(name, value)  # an operator's own setting wins
    import ray
    from ray import serve
    from ray.serve._private import api as serve_api
    from ray.serve.schema import ServeDeploySchema

    schema = ServeDeploySchema.model_validate(config)
    if not ray.is_initialized():
        ray.init(
            namespace="serve",
            num_cpus=num_cpus,
            include_dashboard=True,
            log_to_driver=False,
            _metrics_export_port=metrics_port,
        )
    if stop is not None:
        stop_on_signals(stop)
    http = schema.http_options
    client = serve_api.serve_start(http_options=http.model_dump(), proxy_location=schema.proxy_location)
    client.deploy_apps(schema, _blocking=False)
    deadline = time.monotonic() + ready_timeout_s
    names = [app.name for app in schema.applications]
    while True:
        if stop is not None and stop.is_set():
            raise StartInterrupted("asked to stop before the service was up")
        statuses = serve.status().applications
        states = {name: statuses[name].status if name in statuses else "NOT_STARTED" for name in names}
        if all(state == "RUNNING" for state in states.values()):
            break
        failed = {name: statuses[name].message for name, state in states.items() if state == "DEPLOY_FAILED"}
        if failed:
            raise RuntimeError(f"deployment failed: {failed}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"applications not running after {ready_timeout_s} s: {states}")
        time.sleep(0.5)
    host = "127.0.0.1" if http.host in ("0.0.0.0", "::") else http.host
    url = f"http://{host}:{http.port}"
    fronts = [app for app in schema.applications if app.import_path == "service.app:front_app"]
    if fronts:  # a config without the front has no /readyz to ask
        _wait_ready(url, fronts[0].route_prefix or "", deadline, stop)
    return url


def _wait_ready(url: str, route_prefix: str, deadline: float, stop: threading.Event | None) -> None:
    """Until /readyz says every task's model answers: "up" then means ready, and a benchmark or load test started
    on that word measures the loaded service, not replicas still loading beside it."""
    import httpx

    ready = f"{url}{route_prefix.rstrip('/')}/readyz"
    while True:
        if stop is not None and stop.is_set():
            raise StartInterrupted("asked to stop before the service was ready")
        try:
            if httpx.get(ready, timeout=10).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{ready} did not answer 200 in time")
        time.sleep(0.5)


def local_dashboard() -> str:
    """The dashboard of the Ray this process started or joined (8265 unless that port was taken)."""
    import ray

    return f"http://{ray._private.worker.get_dashboard_url()}"


def stop_service(drain_timeout_s: float = 20.0) -> None:
    """Stop the service gracefully, then Serve, then Ray (which ends Ray's processes when this process started it).

    First the applications are deleted, so Serve stops their replicas while the proxy still runs: each replica stays
    reachable for its draining period (RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S, in PROXIES), then takes no
    new connection and answers the requests it holds, and its answers still get out. Only then does Serve shut down
    (the proxy, then the controller). serve.shutdown() alone does it the other way round: it kills the proxy first,
    cutting every request in flight, and waits for replicas that nobody can reach any more to sit out their
    draining period (30 s by Ray's default: past compose's grace period, see tests/service/test_shutdown.py).

    `drain_timeout_s` bounds the wait for the replicas (a request still running then is cut: Serve force-kills a
    replica 20 s after stopping it anyway, its graceful_shutdown_timeout_s).
    """
    import ray
    from ray import serve

    if ray.is_initialized():
        try:
            names = list(serve.status().applications)
        except Exception:  # Serve is not running (or not reachable): nothing to drain
            names = []
        for name in names:
            serve.delete(name, _blocking=False)
        deadline = time.monotonic() + drain_timeout_s
        while names and time.monotonic() < deadline:
            names = [name for name in serve.status().applications if name in names]
            if names:
                time.sleep(0.2)
        serve.shutdown()
    ray.shutdown()


def _edited(current: dict, task: str, path_prefix: str = "") -> tuple[dict, dict]:
    """A copy of the live Serve config and, in it, the entry of one task's deployment (added when absent)."""
    app_name, deployment_name = application_names(path_prefix)[task], TASKS[task].deployment  # type: ignore[index]
    config = json.loads(json.dumps(current))
    app = next((a for a in config["applications"] if a["name"] == app_name), None)
    if app is None:
        raise SystemExit(f"no application named {app_name!r} is deployed")
    deployments = app.setdefault("deployments", [])
    deployment = next((d for d in deployments if d["name"] == deployment_name), None)
    if deployment is None:
        deployment = {"name": deployment_name}
        deployments.append(deployment)
    return config, deployment


def scaled_config(
    current: dict,
    task: str,
    replicas: int | None,
    min_replicas: int | None,
    max_replicas: int | None,
    path_prefix: str = "",
) -> dict:
    """The live Serve config with one task's replica count (or autoscaling bounds) changed."""
    config, deployment = _edited(current, task, path_prefix)
    if replicas is not None:
        # An explicit null, not a missing key: the app builder sets autoscaling in code, and a key left
        # out of the config means "keep the code's value", which would override the fixed count.
        deployment["autoscaling_config"] = None
        deployment["num_replicas"] = replicas
    else:
        autoscaling = deployment.get("autoscaling_config") or {}
        if min_replicas is not None:
            autoscaling["min_replicas"] = min_replicas
        if max_replicas is not None:
            autoscaling["max_replicas"] = max_replicas
        deployment["num_replicas"] = "auto"
        deployment["autoscaling_config"] = autoscaling
    return config


def batching_config(current: dict, task: str, path_prefix: str = "", **changes: Any) -> dict:
    """The live Serve config with fields of one task's user_config (batching, precision) changed."""
    config, deployment = _edited(current, task, path_prefix)
    # The task's defaults, under what the live config sets, under the changes; refused here, not by the replicas.
    live = TASK_BATCHING[task]().updated(deployment.get("user_config") or {})
    deployment["user_config"] = live.updated(changes).model_dump()
    return config


def _dashboard(address: str):
    """Ray's own Serve REST client (what `serve deploy` uses): it carries the cluster's auth token."""
    from ray._private.authentication.authentication_token_setup import maybe_enable_token_auth_if_token_available
    from ray.dashboard.modules.serve.sdk import ServeSubmissionClient

    # Ray 2.60 clusters require a token; a fresh process sends the local one (~/.ray/auth_token) only once token
    # mode is switched on, as `ray start` does.
    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)
    return ServeSubmissionClient(address)


def live_config(dashboard: str) -> dict:
    """The config the running cluster was deployed with, from the dashboard's Serve REST API."""
    status = _dashboard(dashboard).get_serve_details()
    applications = []
    for name, app in status.get("applications", {}).items():
        deployed = app.get("deployed_app_config")
        if deployed is None:
            raise SystemExit(
                f"application {name!r} was deployed with serve.run() from Python, which has no live config to edit; "
                "start it with `attention-serve run` or `serve run/deploy deploy/serve_config.yaml`"
            )
        applications.append(deployed)
    config: dict[str, Any] = {"applications": applications}
    if status.get("proxy_location"):
        config["proxy_location"] = status["proxy_location"]
    if status.get("http_options"):
        config["http_options"] = {k: v for k, v in status["http_options"].items() if k in ("host", "port")}
    return config


def apply_config(dashboard: str, config: dict) -> None:
    """Submit a whole Serve config; Serve diffs it against what runs and changes only that."""
    _dashboard(dashboard).deploy_applications(config)
