"""One command, one run, side-by-side ratios: how much of the engine's speed the service keeps.

    python -m loadtests.benchmark                      # sentiment, short texts
    python -m loadtests.benchmark --task qa            # QA, 384-token windows
    python -m loadtests.benchmark --write docs/benchmarks.md

Rows, all on this machine, the same inputs, the same closed-loop asyncio client:
  1. the engine alone, offline, best batch (the ceiling) — and one request at a time (the latency floor)
  2. the service through Ray Serve, default config (batching on), at `--concurrency` and at concurrency 1
  3. the same service with batching off (max_batch_size 1, applied live through the Serve REST API)
  4. a naive server: FastAPI + uvicorn calling the transformers pipeline per request, same weights
The client's own CPU time per request is measured and printed for each HTTP row: on 2 cores the client
competes with the server, so it must cost the same in every row for the ratios to be fair.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]

SUBJECTS = ["the film", "this movie", "the acting", "the script", "the soundtrack", "the ending", "the cast"]
VERDICTS = [
    "is a quiet triumph, warm and funny",
    "drags on far too long and never finds its feet",
    "has moments of real beauty",
    "is lazy, loud and forgettable",
    "left me smiling for days",
    "wastes a fine premise on cheap jokes",
]
EXTRAS = ["", " and I would see it again", ", though the middle sags", " despite a clumsy start", ""]


def sentiment_texts(n: int) -> list[str]:
    """Short reviews, 5 to 20 words, all different."""
    texts = []
    for i in range(n):
        s, v, e = SUBJECTS[i % 7], VERDICTS[(i // 7) % 6], EXTRAS[(i // 42) % 5]
        texts.append(f"{s} {v}{e} (review {i})")
    return texts


def qa_pairs(n: int) -> list[dict]:
    """Contexts of about one 384-token window each, a question whose answer is in them."""
    pairs = []
    for i in range(n):
        filler = " ".join(
            f"The harbour of Town{i} saw {j + 3} ships arrive in the spring of year {1800 + j}, carrying timber."
            for j in range(14)
        )
        context = f"{filler} The lighthouse keeper of Town{i} was Captain Number{i}. {filler}"
        pairs.append({"question": f"Who was the lighthouse keeper of Town{i}?", "context": context[:1800]})
    return pairs


@dataclass
class Row:
    name: str
    requests: int
    seconds: float
    latencies: list[float]
    client_cpu_s: float | None = None
    note: str = ""

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def closed_loop(url: str, path: str, bodies: list[dict], concurrency: int) -> tuple[float, list[float], int]:
    """`concurrency` clients posting back to back until every body is sent; returns time, latencies, errors."""
    queue = list(reversed(bodies))
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:

        async def client() -> None:
            nonlocal errors
            while queue:
                body = queue.pop()
                began = time.perf_counter()
                reply = await http.post(path, json=body)
                latencies.append(time.perf_counter() - began)
                errors += reply.status_code != 200

        began = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        return time.perf_counter() - began, latencies, errors


def http_row(name: str, url: str, path: str, bodies: list[dict], concurrency: int, warmup: int = 32) -> Row:
    asyncio.run(closed_loop(url, path, bodies[:warmup], min(concurrency, warmup)))
    cpu = time.process_time()
    seconds, latencies, errors = asyncio.run(closed_loop(url, path, bodies, concurrency))
    cpu = time.process_time() - cpu
    if errors:
        raise RuntimeError(f"{name}: {errors} requests failed")
    return Row(name, len(bodies), seconds, latencies, client_cpu_s=cpu)


def engine_rows(task: str, bodies: list[dict], batch: int) -> tuple[Row, Row]:
    from service.engine.engine import EngineConfig, QAEngine, SentimentEngine
    from service.settings import default_model_dir

    config = EngineConfig(precision="bf16", threads=2, max_batch_size=batch)
    if task == "sentiment":
        engine = SentimentEngine(default_model_dir(task), config)
        items = [engine.encode(b["text"]) for b in bodies]

        def run(chunk):
            return engine.classify(chunk)
    else:
        engine = QAEngine(default_model_dir(task), config)
        items = [engine.encode(b["question"], b["context"]) for b in bodies]

        def run(chunk):
            return engine.answer(chunk)

    run(items[:batch])  # warm-up
    began = time.perf_counter()
    batch_latencies = []
    for i in range(0, len(items), batch):
        t = time.perf_counter()
        run(items[i : i + batch])
        batch_latencies.append(time.perf_counter() - t)
    ceiling = Row(f"1. engine alone, batches of {batch}", len(items), time.perf_counter() - began, batch_latencies,
                  note="latency = one whole batch")  # fmt: skip
    singles = []
    for item in items[: min(len(items), 100)]:
        t = time.perf_counter()
        run([item])
        singles.append(time.perf_counter() - t)
    single = Row("1b. engine alone, one request at a time", len(singles), sum(singles), singles)
    return ceiling, single


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def naive_server(task: str, port: int) -> tuple[subprocess.Popen, Path]:
    """Export the shipped model as a plain HF checkpoint and serve it with transformers + uvicorn."""
    from service.engine.layout import default_base_dir, read_json
    from service.engine.weights import export_hf_checkpoint, load_task_model
    from service.settings import default_model_dir

    out = Path(tempfile.mkdtemp(prefix="naive-"))
    base = default_base_dir()
    export_hf_checkpoint(load_task_model(default_model_dir(task), task), read_json(base / "config.json"), out)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        if (base / name).exists():
            shutil.copy(base / name, out / name)
    env = {**os.environ, "MODEL_DIR": str(out), "TASK": task, "THREADS": "2"}
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "loadtests.naive_server:app", "--port", str(port), "--log-level", "warning"],
        cwd=ROOT, env=env,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/docs", timeout=2)
            return process, out
        except httpx.HTTPError:
            time.sleep(0.5)
    process.kill()
    raise RuntimeError("the naive server did not start")


def machine() -> str:
    try:
        model = next(
            line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )  # fmt: skip
    except (OSError, StopIteration):
        model = platform.processor()
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"


def table(rows: list[Row]) -> str:
    lines = [
        "| row | requests | req/s | p50 ms | p99 ms | client CPU ms/request |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        cpu = f"{1000 * r.client_cpu_s / r.requests:.2f}" if r.client_cpu_s is not None else "—"
        note = f" ({r.note})" if r.note else ""
        lines.append(f"| {r.name}{note} | {r.requests} | {r.rps:.1f} | {r.pct(0.5):.1f} | {r.pct(0.99):.1f} | {cpu} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=["sentiment", "qa"], default="sentiment")
    parser.add_argument("--requests", type=int, default=None, help="per row (default 600 sentiment, 120 QA)")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--write", type=Path, help="append the result, as markdown, to this file")
    parser.add_argument("--skip-naive", action="store_true")
    args = parser.parse_args(argv)

    n = args.requests or (600 if args.task == "sentiment" else 120)
    bodies = [{"text": t} for t in sentiment_texts(n)] if args.task == "sentiment" else qa_pairs(n)
    path = f"/v1/{args.task}"
    batch = 32 if args.task == "sentiment" else 16

    from service.cli import (
        APP_NAME,
        DEFAULT_DASHBOARD,
        apply_config,
        batching_config,
        live_config,
        start_service,
        stop_service,
    )
    from service.settings import BatchSettings

    rows = list(engine_rows(args.task, bodies, batch))
    port = free_port()
    url = start_service(
        {"proxy_location": "HeadOnly", "http_options": {"host": "127.0.0.1", "port": port},
         "applications": [{"name": APP_NAME, "route_prefix": "/", "import_path": "service.app:build_app"}]},
        metrics_port=free_port(),
    )  # fmt: skip
    try:
        rows.append(http_row("2. service, batching on (default config)", url, path, bodies, args.concurrency))
        rows.append(http_row("2b. service, batching on, one client", url, path, bodies[:100], 1))
        apply_config(DEFAULT_DASHBOARD, batching_config(live_config(DEFAULT_DASHBOARD), args.task, max_batch_size=1))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            models = httpx.get(f"{url}/v1/models", timeout=10).json()["models"]
            if next(m for m in models if m["task"] == args.task)["batching"]["max_batch_size"] == 1:
                break
            time.sleep(0.5)
        rows.append(http_row("3. service, batching off (max_batch_size 1)", url, path, bodies, args.concurrency))
    finally:
        stop_service()
    if not args.skip_naive:
        naive_port = free_port()
        process, export_dir = naive_server(args.task, naive_port)
        try:
            rows.append(http_row("4. naive FastAPI + transformers pipeline (fp32)", f"http://127.0.0.1:{naive_port}",
                                 path, bodies, args.concurrency))  # fmt: skip
        finally:
            process.terminate()
            process.wait(timeout=30)
            shutil.rmtree(export_dir, ignore_errors=True)

    by = {r.name[:2]: r for r in rows}
    ratios = [
        f"- service / engine ceiling (2/1): {by['2.'].rps / by['1.'].rps:.2f}",
        f"- batching on / off (2/3): {by['2.'].rps / by['3.'].rps:.2f}",
    ]
    if "4." in by:
        ratios.append(f"- service / naive server (2/4): {by['2.'].rps / by['4.'].rps:.2f}")
    budget_ms = by["1b"].pct(0.5) + 1000 * BatchSettings().batch_wait_timeout_s + 5
    ratios.append(
        f"- low load: service p50 {by['2b'].pct(0.5):.1f} ms vs engine single {by['1b'].pct(0.5):.1f} ms "
        f"+ batch wait {1000 * BatchSettings().batch_wait_timeout_s:.0f} ms + 5 ms = {budget_ms:.1f} ms"
    )
    command = "python -m loadtests.benchmark " + " ".join(argv if argv is not None else sys.argv[1:])
    report = "\n".join(
        [
            f"## {args.task}: {n} requests per row, concurrency {args.concurrency} ({time.strftime('%Y-%m-%d')})",
            "",
            f"Machine: {machine()}. Command: `{command.strip()}`.",
            "Engine and service run bf16 (the default); the naive server runs the transformers pipeline as a user "
            "gets it (fp32). The client is one asyncio process; its CPU per request is in the last column.",
            "",
            table(rows),
            "",
            *ratios,
            "",
        ]
    )
    print(report)
    if args.write:
        with args.write.open("a") as f:
            f.write(report + "\n")
    print(json.dumps({"rows": [{"name": r.name, "rps": r.rps, "p50_ms": r.pct(0.5)} for r in rows]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
