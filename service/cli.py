"""`attention-serve`: run the service, ask it one question, scale it.

    attention-serve run [--config deploy/serve_config.yaml] [--port 8000]
    attention-serve predict sentiment "a gripping, funny film"
    attention-serve predict qa --question "Who wrote it?" --context "It was written by Ada."
    attention-serve predict sentiment "meh" --url http://127.0.0.1:8000
    attention-serve scale sentiment --replicas 2          # or --min 1 --max 4 for autoscaling

`run` deploys the application declaratively (as `serve run <config>` does), so a running service can
be changed with `serve deploy <edited config>` or with `scale`, which edits the live config through
the Ray dashboard's REST API: replicas are added or removed while requests keep flowing.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

import httpx

APP_NAME = "attention-serve"
DEPLOYMENT_OF_TASK = {"sentiment": "SentimentModel", "qa": "QAModel"}
DEFAULT_DASHBOARD = "http://127.0.0.1:8265"


def default_deploy_config(host: str = "127.0.0.1", port: int = 8000, args: dict[str, Any] | None = None) -> dict:
    """The Serve config `run` deploys when no file is given: the app builder with its defaults."""
    return {
        "proxy_location": "HeadOnly",
        "http_options": {"host": host, "port": port},
        "applications": [
            {
                "name": APP_NAME,
                "route_prefix": "/",
                "import_path": "service.app:build_app",
                "args": args or {},
                "logging_config": {"encoding": "JSON", "log_level": "INFO"},
            }
        ],
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


DEFAULT_METRICS_PORT = 8080


def start_service(
    config: dict, *, num_cpus: int | None = None, metrics_port: int = DEFAULT_METRICS_PORT, ready_timeout_s: float = 300
) -> str:
    """Start (or join) local Ray, deploy `config`, wait until the app runs; returns the base URL.

    Ray's metrics (Serve's and ours) are exported for Prometheus on `metrics_port`, away from the API port.
    """
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
    http = schema.http_options
    client = serve_api.serve_start(http_options=http.model_dump(), proxy_location=schema.proxy_location)
    client.deploy_apps(schema, _blocking=False)
    deadline = time.monotonic() + ready_timeout_s
    names = [app.name for app in schema.applications]
    while True:
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
    return f"http://{host}:{http.port}"


def stop_service() -> None:
    import ray
    from ray import serve

    serve.shutdown()
    ray.shutdown()


def _edited(current: dict, task: str) -> tuple[dict, dict]:
    """A copy of the live Serve config and, in it, the entry of one task's deployment (added when absent)."""
    name = DEPLOYMENT_OF_TASK[task]
    config = json.loads(json.dumps(current))
    app = next((a for a in config["applications"] if a["name"] == APP_NAME), None)
    if app is None:
        raise SystemExit(f"no application named {APP_NAME!r} is deployed")
    deployments = app.setdefault("deployments", [])
    deployment = next((d for d in deployments if d["name"] == name), None)
    if deployment is None:
        deployment = {"name": name}
        deployments.append(deployment)
    return config, deployment


def scaled_config(current: dict, task: str, replicas: int | None, min_replicas: int | None, max_replicas: int | None):
    """The live Serve config with one task's replica count (or autoscaling bounds) changed."""
    config, deployment = _edited(current, task)
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


def batching_config(current: dict, task: str, **changes: Any) -> dict:
    """The live Serve config with fields of one task's user_config (batching, precision) changed."""
    from service.settings import BatchSettings

    config, deployment = _edited(current, task)
    deployment["user_config"] = {**BatchSettings().model_dump(), **(deployment.get("user_config") or {}), **changes}
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


def _cmd_run(args: argparse.Namespace) -> int:
    if args.config:
        config = load_deploy_config(args.config, args.host, args.port)
    else:
        config = default_deploy_config(args.host or "127.0.0.1", args.port or 8000)
    url = start_service(config, metrics_port=args.metrics_port)
    print(f"attention-serve is up at {url}  (API docs {url}/docs, Ray dashboard {DEFAULT_DASHBOARD})")
    print(f"Prometheus metrics: http://127.0.0.1:{args.metrics_port}/metrics")
    print("Ctrl-C stops it.")
    stopping = {"now": False}

    def stop(*_: object) -> None:
        stopping["now"] = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    while not stopping["now"]:
        time.sleep(0.2)
    print("stopping…")
    stop_service()
    return 0


def _local_predict(args: argparse.Namespace) -> dict:
    from service.engine.engine import EngineConfig, QAEngine, SentimentEngine
    from service.settings import default_model_dir

    model_dir = args.model_dir or default_model_dir(args.task)
    config = EngineConfig(precision=args.precision)
    if args.task == "sentiment":
        engine = SentimentEngine(model_dir, config)
        result = engine.classify([engine.encode(args.text)], [args.attention]).results[0]
    else:
        engine = QAEngine(model_dir, config)
        result = engine.answer([engine.encode(args.question, args.context)], [args.top_k], [15], [args.attention])
        result = result.results[0]
    import dataclasses

    return dataclasses.asdict(result)


def _remote_predict(args: argparse.Namespace) -> dict:
    if args.task == "sentiment":
        body = {"text": args.text, "return_attention": args.attention}
    else:
        body = {"question": args.question, "context": args.context, "top_k": args.top_k,
                "return_attention": args.attention}  # fmt: skip
    reply = httpx.post(f"{args.url.rstrip('/')}/v1/{args.task}", json=body, timeout=60)
    payload = reply.json()
    if reply.status_code != 200:
        raise SystemExit(json.dumps(payload, indent=2, ensure_ascii=False))
    return payload["results"][0]


def _cmd_predict(args: argparse.Namespace) -> int:
    if args.task == "sentiment" and not args.text:
        raise SystemExit("predict sentiment needs a text")
    if args.task == "qa" and not (args.question and args.context):
        raise SystemExit("predict qa needs --question and --context")
    result = _remote_predict(args) if args.url else _local_predict(args)
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0


def _cmd_scale(args: argparse.Namespace) -> int:
    if args.replicas is None and args.min is None and args.max is None:
        raise SystemExit("give --replicas N, or --min/--max for autoscaling bounds")
    config = scaled_config(live_config(args.dashboard), args.task, args.replicas, args.min, args.max)
    apply_config(args.dashboard, config)
    print(f"{DEPLOYMENT_OF_TASK[args.task]}: config submitted; Serve adds/removes replicas, no requests dropped")
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="attention-serve", description=__doc__.split("\n\n")[0])
    commands = top.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="start local Ray and the service; Ctrl-C stops both")
    run.add_argument("--config", type=Path, help="a Serve config file (default: built-in defaults)")
    run.add_argument("--host", help="HTTP host (default 127.0.0.1; the config file's when given)")
    run.add_argument("--port", type=int, help="HTTP port (default 8000)")
    run.add_argument("--metrics-port", type=int, default=DEFAULT_METRICS_PORT, help="Ray's Prometheus metrics port")
    run.set_defaults(handler=_cmd_run)

    predict = commands.add_parser("predict", help="one prediction, from the local engine or a running server")
    predict.add_argument("task", choices=["sentiment", "qa"])
    predict.add_argument("text", nargs="?", help="sentiment: the text")
    predict.add_argument("--question")
    predict.add_argument("--context")
    predict.add_argument("--top-k", type=int, default=1)
    predict.add_argument("--attention", action="store_true", help="also return the attention map")
    predict.add_argument("--url", help="a running service (default: run the engine in this process)")
    predict.add_argument("--model-dir", type=Path, help="local engine: model directory (default: shipped model)")
    predict.add_argument("--precision", choices=["fp32", "bf16"], default="bf16")
    predict.set_defaults(handler=_cmd_predict)

    scale = commands.add_parser("scale", help="change a task's replicas on the running service")
    scale.add_argument("task", choices=sorted(DEPLOYMENT_OF_TASK))
    scale.add_argument("--replicas", type=int, help="a fixed number of replicas (turns autoscaling off)")
    scale.add_argument("--min", type=int, help="autoscaling lower bound")
    scale.add_argument("--max", type=int, help="autoscaling upper bound")
    scale.add_argument("--dashboard", default=DEFAULT_DASHBOARD, help="Ray dashboard address")
    scale.set_defaults(handler=_cmd_scale)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
