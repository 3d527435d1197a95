"""`attention-serve`: run the service, ask it one question, scale it.

    attention-serve run [--config deploy/serve_config.yaml] [--port 8000]
    attention-serve run --sentiment-model ./distilbert-sst2 --qa-model ./roberta-squad2
    attention-serve run --sentiment-model sst2=./distilbert-sst2 --sentiment-model emotions=./go-emotions
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
import sys
import threading
import time
from pathlib import Path

import httpx

from service.ops import (
    DEFAULT_DASHBOARD,
    DEFAULT_METRICS_PORT,
    DEFAULT_PROXY,
    PROXIES,
    StartInterrupted,
    apply_config,
    default_deploy_config,
    live_config,
    load_deploy_config,
    local_dashboard,
    scaled_config,
    start_service,
    stop_service,
)
from service.tasks import TASKS


def _models_arg(values: list[str], flag: str) -> dict:
    """`--sentiment-model DIR` (one model) or several `--sentiment-model ID=DIR` (the first is the default)."""
    if len(values) == 1 and "=" not in values[0]:
        return {"model_dir": values[0]}
    models = {}
    for value in values:
        model_id, sep, directory = value.partition("=")
        if not sep or not model_id or not directory:
            raise SystemExit(f"{flag} {value!r}: with several models, give each as ID=DIR")
        models[model_id] = directory
    return {"models": models}


def _cmd_run(args: argparse.Namespace) -> int:
    from service.engine.errors import ModelLoadError

    overrides = {}
    for task, values in (("sentiment", args.sentiment_model), ("qa", args.qa_model)):
        if values:
            overrides[task] = _models_arg(values, f"--{task.replace('_', '-')}-model")
    if args.config:
        if overrides:
            raise SystemExit("--sentiment-model / --qa-model go without --config (set models in its args: instead)")
        config = load_deploy_config(args.config, args.host, args.port)
    else:
        config = default_deploy_config(args.host or "127.0.0.1", args.port or 8000, args=overrides)
    # Set by SIGTERM (docker stop, an orchestrator) or Ctrl-C, from the moment Ray runs: either stops the service
    # gracefully (stop_service), whether it is up yet or not, and the command exits 0.
    stop = threading.Event()
    try:
        url = start_service(config, metrics_port=args.metrics_port, proxy=args.proxy, stop=stop)
    except ModelLoadError as exc:
        raise SystemExit(f"attention-serve: cannot serve that model: {exc.message}") from None
    except StartInterrupted:
        print("stopping before it was up…", flush=True)
        stop_service()
        return 0
    except (RuntimeError, TimeoutError):  # a deployment failed, or never came up: stop what did, then say why
        stop_service()
        raise
    print(f"attention-serve is up at {url}  (API docs {url}/docs, attention explorer {url}/explore)")
    print(f"Ray dashboard: {local_dashboard()}")
    print(f"Prometheus metrics: http://127.0.0.1:{args.metrics_port}/metrics")
    print("Ctrl-C stops it.", flush=True)
    while not stop.is_set():
        time.sleep(0.2)
    print("stopping: answering the requests in flight, then stopping Serve and Ray…", flush=True)
    began = time.monotonic()
    stop_service()
    print(f"stopped in {time.monotonic() - began:.1f} s", flush=True)
    return 0


def _local_predict(args: argparse.Namespace) -> dict:
    from service.engine.engine import EngineConfig, QAEngine, SentimentEngine
    from service.settings import default_model_dir

    model_dir = args.model_dir or default_model_dir(args.task)
    config = EngineConfig(precision=args.precision)
    if args.task == "sentiment":
        engine = SentimentEngine(model_dir, config)
        result = engine.classify_texts([args.text], args.attention)[0]
    else:
        engine = QAEngine(model_dir, config)
        item = engine.encode(args.question, args.context)
        result = engine.answer([item], [args.top_k], [15], [args.attention], [args.handle_impossible_answer])
        result = result.results[0]
    import dataclasses

    return dataclasses.asdict(result)


def _remote_predict(args: argparse.Namespace) -> dict:
    if args.task == "sentiment":
        body = {"text": args.text, "return_attention": args.attention}
    else:
        body = {"question": args.question, "context": args.context, "top_k": args.top_k,
                "return_attention": args.attention,
                "handle_impossible_answer": args.handle_impossible_answer}  # fmt: skip
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
    print(f"{args.task}: config submitted; Serve adds/removes replicas, no requests dropped")
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="attention-serve", description=__doc__.split("\n\n")[0])
    commands = top.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="start local Ray and the service; Ctrl-C stops both")
    run.add_argument("--config", type=Path, help="a Serve config file (default: built-in defaults)")
    run.add_argument("--host", help="HTTP host (default 127.0.0.1; the config file's when given)")
    run.add_argument("--port", type=int, help="HTTP port (default 8000)")
    run.add_argument("--metrics-port", type=int, default=DEFAULT_METRICS_PORT, help="Ray's Prometheus metrics port")
    run.add_argument(
        "--proxy",
        choices=sorted(PROXIES),
        default=DEFAULT_PROXY,
        help=f"HTTP proxy in front of the replicas (default {DEFAULT_PROXY}; see the README)",
    )
    for task in ("sentiment", "qa"):
        run.add_argument(
            f"--{task}-model",
            action="append",
            metavar="[ID=]DIR",
            help=f"{task} model directory (a Hugging Face checkpoint or an artifact); repeat as ID=DIR to serve "
            "several, the first the default (default: the shipped model)",
        )
    run.set_defaults(handler=_cmd_run)

    predict = commands.add_parser("predict", help="one prediction, from the local engine or a running server")
    predict.add_argument("task", choices=["sentiment", "qa"])
    predict.add_argument("text", nargs="?", help="sentiment: the text")
    predict.add_argument("--question")
    predict.add_argument("--context")
    predict.add_argument("--top-k", type=int, default=1)
    predict.add_argument("--attention", action="store_true", help="also return the attention map")
    predict.add_argument(
        "--handle-impossible-answer", action="store_true", help='qa: "no answer" (the empty answer) may win'
    )
    predict.add_argument("--url", help="a running service (default: run the engine in this process)")
    predict.add_argument("--model-dir", type=Path, help="local engine: model directory (default: shipped model)")
    predict.add_argument("--precision", choices=["auto", "fp32", "bf16", "int8"], default="auto")
    predict.set_defaults(handler=_cmd_predict)

    scale = commands.add_parser("scale", help="change a task's replicas on the running service")
    scale.add_argument("task", choices=sorted(TASKS))
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
