"""One command, one run, side by side: the service against the servers a user could run instead, and the engine.

    python -m loadtests.benchmark                                # every server, 15 s per row (about 10 min)
    python -m loadtests.benchmark --write docs/benchmarks.md     # the same, appended to the benchmarks page
    python -m loadtests.benchmark --quick --only service,engine  # a smoke run: 3 s per row

Servers, each alone on the machine while it is measured (started, warmed up, measured, stopped and gone
before the next one starts), all sent the same bodies:
  service   `attention-serve run`, as a user starts it
  naive     FastAPI + uvicorn + transformers' pipeline, fp32, one request at a time (naive_server.py)
  tutorial  Ray Serve's batching tutorial done plainly (tutorial_app.py)
  engine    the engine alone, in this process, no HTTP: one request at a time, and its ceiling (best batch),
            in each precision `auto` may choose for the model, the fastest counted

Rows: one-text sentiment requests at concurrency 1, 16 and 64; requests of 32 texts at concurrency 4; QA with
one 384-token window per request at concurrency 4. The load comes from wrk (loadtests/benchmark/wrk.py), whose CPU per
request is printed beside each row. The service's padding share comes from its own Prometheus counters. The
report ends with the target ratios, each PASS or FAIL.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from loadtests.benchmark import servers
from loadtests.benchmark.wrk import WrkResult, run_wrk, write_bodies
from loadtests.common.machine import machine
from loadtests.common.net import free_port

SERVERS = ("service", "naive", "tutorial", "engine")
SINGLE_CONCURRENCY = (1, 16, 64)
BATCH_CONCURRENCY = 4
QA_CONCURRENCY = 4
TEXTS_PER_REQUEST = 32
TOKENS_METRIC = "ray_attention_serve_tokens"  # counter: the parser strips the exposition's `_total`
METRICS_QUIET_S = 12  # Ray exports metrics every 10 s: a counter unchanged for longer has caught up

# ------------------------------------------------------------------------------------------------------------
# Workloads: the same bodies for every server
# ------------------------------------------------------------------------------------------------------------

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
TOWNS = ["Arden", "Belmor", "Caskey", "Dunmere", "Elwick", "Fenholt", "Garrow", "Hollin"]


def sentiment_texts(n: int) -> list[str]:
    """Short reviews, 5 to 20 words, all different (no cache anywhere can answer a repeat)."""
    texts = []
    for i in range(n):
        s, v, e = SUBJECTS[i % 7], VERDICTS[(i // 7) % 6], EXTRAS[(i // 42) % 5]
        texts.append(f"{s} {v}{e} (review {i})")
    return texts


def qa_pair(i: int, facts: int = 16) -> dict:
    """A question and a context of 310-370 tokens with it: one 384-token window, nearly full."""
    town = f"{TOWNS[i % 8]}{i}"
    cargo = "carrying timber, salt and wool"
    sentences = [
        f"In {1800 + 3 * j + i % 3}, {j + 2 + i % 5} ships reached the harbour of {town} {cargo}." for j in range(facts)
    ]
    sentences.insert((i * 7) % facts, f"The lighthouse keeper of {town} was Captain Number{i}.")
    return {"question": f"Who was the lighthouse keeper of {town}?", "context": " ".join(sentences)}


@dataclass(frozen=True)
class Workload:
    key: str
    title: str
    path: str
    bodies: list[dict]
    unit: str  # what a request carries: texts or windows

    def items(self, body: dict) -> int:
        """Texts in a body; a QA body counts 1 here, and in windows once the engine has tokenized it."""
        return len(texts_of(body)) if "text" in body else 1


def texts_of(body: dict) -> list[str]:
    return body["text"] if isinstance(body["text"], list) else [body["text"]]


def read_sentences(path: Path) -> list[str]:
    """Real sentences from a file: one per line, or SST-2's `sentence<TAB>label` TSV (its header skipped). They are
    read at run time and sent as they are: the benchmark's own texts are shorter than real reviews (issue 21)."""
    sentences = []
    for line in path.read_text(encoding="utf-8").splitlines():
        text = line.split("\t")[0].strip()
        if text and text != "sentence":
            sentences.append(text)
    if not sentences:
        raise SystemExit(f"{path} holds no sentences")
    return sentences


def workloads(
    single: int = 2000, batched: int = 100, qa: int = 200, sentences: list[str] | None = None
) -> dict[str, Workload]:
    """The three workloads; with `sentences`, the sentiment ones cycle through those (each request's text made
    distinct by a number, so no cache can answer a repeat) instead of the made-up reviews."""
    kind = " (real sentences)" if sentences else ""
    if sentences:
        texts = [f"{sentences[i % len(sentences)]} ({i})" for i in range(single + batched * TEXTS_PER_REQUEST)]
    else:
        texts = sentiment_texts(single + batched * TEXTS_PER_REQUEST)
    lists = [texts[single + i * TEXTS_PER_REQUEST : single + (i + 1) * TEXTS_PER_REQUEST] for i in range(batched)]
    return {
        "single": Workload(
            "single",
            f"Sentiment, one text per request{kind}",
            "/v1/sentiment",
            [{"text": t} for t in texts[:single]],
            "texts",
        ),
        "batch32": Workload(
            "batch32",
            f"Sentiment, {TEXTS_PER_REQUEST} texts per request{kind}",
            "/v1/sentiment",
            [{"text": chunk} for chunk in lists],
            "texts",
        ),
        "qa": Workload(
            "qa", "QA, one 384-token window per request", "/v1/qa", [qa_pair(i) for i in range(qa)], "windows"
        ),
    }


# ------------------------------------------------------------------------------------------------------------
# The engine alone
# ------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EngineFigure:
    """The engine on one workload at one precision: a request alone, and the best throughput over batch sizes."""

    workload: str
    precision: str
    single_p50_ms: float  # one request's items in one call
    ceiling: float  # items (texts or windows) per second at the best batch
    best_batch: int  # requests per call at the ceiling
    items_per_request: float


def timed_calls(run: Callable[[list], object], chunks: list[list], seconds: float) -> tuple[int, float, list[float]]:
    """Call `run` on the chunks in turn for about `seconds` (at least 3 calls): calls, elapsed, each call's time."""
    run(chunks[0])  # warm-up: first-call allocations are not the steady state
    latencies: list[float] = []
    began = time.perf_counter()
    while len(latencies) < 3 or time.perf_counter() - began < seconds:
        t = time.perf_counter()
        run(chunks[len(latencies) % len(chunks)])
        latencies.append(time.perf_counter() - t)
    return len(latencies), time.perf_counter() - began, latencies


def engine_on(
    run: Callable[[list], object], requests: list[list], batches: Sequence[int], seconds: float
) -> tuple[float, float, int]:
    """(one request's p50 ms, ceiling items/s, best batch) for requests of pre-tokenized items."""
    _, _, singles = timed_calls(run, requests, seconds)
    best, best_batch = 0.0, 0
    for batch in batches:
        chunks = [sum(requests[i : i + batch], []) for i in range(0, len(requests) - batch + 1, batch)]
        calls, elapsed, _ = timed_calls(run, chunks, seconds)
        items = sum(len(chunks[i % len(chunks)]) for i in range(calls))
        if items / elapsed > best:
            best, best_batch = items / elapsed, batch
    return 1000 * statistics.median(singles), best, best_batch


def engine_figures(loads: dict[str, Workload], threads: int, seconds: float) -> list[EngineFigure]:
    """Every precision `auto` may choose for each model (int8 only where its artifact's recorded cost allows), on
    every workload, with the service's own engine and the same inputs as the HTTP rows."""
    from service.engine.config import auto_precisions
    from service.engine.engine import EngineConfig, QAEngine, SentimentEngine, SentimentJob
    from service.engine.layout import read_json
    from service.settings import default_model_dir

    def allowed(task: str) -> list[str]:
        return auto_precisions(read_json(default_model_dir(task) / "attention_serve.json"), on_cpu=True)

    figures = []
    for precision in allowed("sentiment"):
        config = EngineConfig(precision=precision, threads=threads, max_batch_size=256)
        sentiment = SentimentEngine(default_model_dir("sentiment"), config)
        for key, batches in (("single", (1, 8, 16, 32, 64, 128)), ("batch32", (1, 2, 4))):
            requests = [[SentimentJob(sentiment.encode(t)) for t in texts_of(b)] for b in loads[key].bodies]
            p50, ceiling, best = engine_on(lambda c, e=sentiment: e.classify(c), requests, batches, seconds)
            size = statistics.mean(len(r) for r in requests)
            figures.append(EngineFigure(key, precision, p50, ceiling, best, size))
        print(f"engine sentiment {precision}: " + ", ".join(f"{f.workload} {f.ceiling:,.0f}/s" for f in figures[-2:]))
    for precision in allowed("qa"):
        config = EngineConfig(precision=precision, threads=threads, max_batch_size=256)
        qa = QAEngine(default_model_dir("qa"), config)
        requests = [[qa.encode(b["question"], b["context"])] for b in loads["qa"].bodies]
        windows = statistics.mean(len(r[0].windows) for r in requests)
        p50, ceiling, best = engine_on(lambda c, e=qa: e.answer(c), requests, (1, 4, 8, 16), seconds)
        figures.append(EngineFigure("qa", precision, p50, ceiling * windows, best, windows))
        print(f"engine qa {precision}: {figures[-1].ceiling:,.0f} windows/s", flush=True)
    return figures


def best_engine(figures: list[EngineFigure], workload: str) -> EngineFigure | None:
    """The faster precision on a workload (higher ceiling), as the service would pick it."""
    return max((f for f in figures if f.workload == workload), key=lambda f: f.ceiling, default=None)


# ------------------------------------------------------------------------------------------------------------
# HTTP rows
# ------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    server: str
    workload: str
    concurrency: int
    result: WrkResult
    items_per_request: float

    @property
    def items_per_s(self) -> float:
        return self.result.rps * self.items_per_request


@dataclass(frozen=True)
class Timing:
    seconds: float
    warmup_s: float
    engine_s: float


def measure(server: str, url: str, load: Workload, bodies: Path, concurrency: int, timing: Timing) -> Row:
    """Warm up at the row's concurrency (connections, batch shapes, autoscaling), then measure."""
    if timing.warmup_s:
        run_wrk(url + load.path, bodies, concurrency, timing.warmup_s)
    result = run_wrk(url + load.path, bodies, concurrency, timing.seconds)
    items = statistics.mean(load.items(b) for b in load.bodies)
    row = Row(server, load.key, concurrency, result, items)
    flag = f"  ERRORS: {result.socket_errors} socket, {result.non2xx} non-2xx" if result.errors else ""
    print(
        f"{server:8} {load.key:8} c={concurrency:<3} {result.rps:8.1f} req/s  p50 {result.p50_ms:7.1f} ms  "
        f"p99 {result.p99_ms:7.1f} ms  client {result.client_cpu_ms_per_request:.3f} ms/req{flag}",
        flush=True,
    )
    return row


def body_files(loads: dict[str, Workload], directory: Path) -> dict[str, Path]:
    files = {}
    for key, load in loads.items():
        files[key] = directory / f"{key}.jsonl"
        write_bodies(load.bodies, files[key])
    return files


# ------------------------------------------------------------------------------------------------------------
# The service's own metrics: padding
# ------------------------------------------------------------------------------------------------------------

Tokens = dict[tuple[str, str], float]  # (task, kind) -> tokens


def parse_tokens(exposition: str) -> Tokens:
    """Sum `ray_attention_serve_tokens_total` over replicas, by task and kind (real, padded)."""
    tokens: Tokens = {}
    for family in text_string_to_metric_families(exposition):
        if family.name != TOKENS_METRIC:
            continue
        for sample in family.samples:
            if sample.name.endswith("_total"):
                key = (sample.labels.get("task", "?"), sample.labels.get("kind", "?"))
                tokens[key] = tokens.get(key, 0.0) + sample.value
    return tokens


def scrape_tokens(metrics_url: str) -> Tokens:
    try:
        return parse_tokens(httpx.get(metrics_url, timeout=10).text)
    except httpx.HTTPError:
        return {}


def settled_tokens(metrics_url: str, quiet_s: float = METRICS_QUIET_S, limit_s: float = 60) -> Tokens:
    """The counters once they have stopped moving: Ray exports them every 10 s, so a scrape right after the
    load ends would miss its last seconds."""
    last, since, began = scrape_tokens(metrics_url), time.monotonic(), time.monotonic()
    while time.monotonic() - since < quiet_s and time.monotonic() - began < limit_s:
        time.sleep(1)
        now = scrape_tokens(metrics_url)
        if now != last:
            last, since = now, time.monotonic()
    return last


def padding_share(before: Tokens, after: Tokens, task: str) -> tuple[float, float, float | None]:
    """(real, padded, (padded - real) / padded) between two scrapes; the share is None with no tokens counted."""
    real = after.get((task, "real"), 0.0) - before.get((task, "real"), 0.0)
    padded = after.get((task, "padded"), 0.0) - before.get((task, "padded"), 0.0)
    return real, padded, (padded - real) / padded if padded > 0 else None


@dataclass(frozen=True)
class Padding:
    rows: str
    real: float
    padded: float
    share: float | None


# ------------------------------------------------------------------------------------------------------------
# Running the servers, one at a time
# ------------------------------------------------------------------------------------------------------------


@dataclass
class Results:
    rows: list[Row]
    engine: list[EngineFigure]
    padding: list[Padding]
    batch_wait_ms: float | None = None
    precisions: list[str] = field(default_factory=list)  # what the service's replicas chose, from /v1/models

    def row(self, server: str, workload: str, concurrency: int) -> Row | None:
        return next(
            (r for r in self.rows if (r.server, r.workload, r.concurrency) == (server, workload, concurrency)), None
        )


def service_precisions(url: str) -> list[str]:
    """Each served model's precision as its replica chose it, with the speeds `auto` measured at load."""
    try:
        models = httpx.get(f"{url}/v1/models", timeout=10).json()["models"]
    except (httpx.HTTPError, ValueError, KeyError):
        return ["(GET /v1/models failed)"]
    described = []
    for m in models:
        speeds = (m.get("precision_speeds") or {}).get("tokens_per_s") or {}
        measured = ", ".join(f"{p} {v:,.0f}" for p, v in speeds.items())
        at_load = f" (tokens/s at load: {measured})" if measured else ""
        described.append(f"{m['task']} {m['id']}: {m['precision']}{at_load}")
    return described


def batch_wait_ms(url: str) -> float | None:
    """The sentiment deployment's live batch wait, as GET /v1/models reports it (None when it does not)."""
    try:
        models = httpx.get(url + "/v1/models", timeout=10).json()["models"]
        sentiment = next(m for m in models if m.get("task") == "sentiment")
        return 1000 * float(sentiment["batching"]["batch_wait_timeout_s"])
    except (httpx.HTTPError, ValueError, KeyError, StopIteration, TypeError):
        return None


def run_service(
    results: Results, loads: dict[str, Workload], files: dict[str, Path], ports: tuple[int, int], timing: Timing
) -> None:
    """The service's rows, with its padding share read from its metrics around the sentiment and QA rows."""
    metrics = f"http://127.0.0.1:{ports[1]}/metrics"
    with servers.serving(servers.service(*ports)) as running:
        url = running.server.url
        results.batch_wait_ms = batch_wait_ms(url)
        results.precisions = service_precisions(url)
        before = settled_tokens(metrics)
        for c in SINGLE_CONCURRENCY:
            results.rows.append(measure("service", url, loads["single"], files["single"], c, timing))
        middle = settled_tokens(metrics)
        results.rows.append(measure("service", url, loads["batch32"], files["batch32"], BATCH_CONCURRENCY, timing))
        batched = settled_tokens(metrics)
        results.rows.append(measure("service", url, loads["qa"], files["qa"], QA_CONCURRENCY, timing))
        after = settled_tokens(metrics)
    for label, task, a, b in (
        ("one text per request", "sentiment", before, middle),
        (f"{TEXTS_PER_REQUEST} texts per request", "sentiment", middle, batched),
        ("QA windows", "qa", batched, after),
    ):
        results.padding.append(Padding(label, *padding_share(a, b, task)))


def run_naive(
    results: Results,
    loads: dict[str, Workload],
    files: dict[str, Path],
    port: int,
    checkpoints: dict[str, Path],
    threads: int,
    timing: Timing,
) -> None:
    with servers.serving(servers.naive(port, checkpoints, threads)) as running:
        for c in SINGLE_CONCURRENCY:
            results.rows.append(measure("naive", running.server.url, loads["single"], files["single"], c, timing))
        results.rows.append(measure("naive", running.server.url, loads["qa"], files["qa"], QA_CONCURRENCY, timing))


def run_tutorial(
    results: Results,
    loads: dict[str, Workload],
    files: dict[str, Path],
    port: int,
    checkpoint: Path,
    threads: int,
    timing: Timing,
) -> None:
    with servers.serving(servers.tutorial(port, checkpoint, threads)) as running:
        for c in SINGLE_CONCURRENCY:
            results.rows.append(measure("tutorial", running.server.url, loads["single"], files["single"], c, timing))


def qa_windows_per_request(results: Results) -> None:
    """QA rows count windows per second: the engine measured how many windows each request makes."""
    figure = best_engine(results.engine, "qa")
    if figure is None:
        return
    results.rows = [
        Row(r.server, r.workload, r.concurrency, r.result, figure.items_per_request) if r.workload == "qa" else r
        for r in results.rows
    ]


# ------------------------------------------------------------------------------------------------------------
# Targets
# ------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A measured value against its bound; n/a when a row it needs was not measured."""

    label: str
    measured: float | None
    op: str  # ">=", "<=" or "<"
    bound: float | None
    unit: str = "×"
    note: str = ""

    def verdict(self) -> str:
        if self.measured is None or self.bound is None or math.isnan(self.measured):
            return "n/a"
        ok = {">=": self.measured >= self.bound, "<=": self.measured <= self.bound, "<": self.measured < self.bound}
        return "PASS" if ok[self.op] and not self.note else "FAIL"

    def line(self) -> str:
        def show(value: float | None) -> str:
            if value is None:
                return "n/a"
            return f"{100 * value:.1f} %" if self.unit == "%" else f"{value:.2f}{self.unit}"

        note = f" ({self.note})" if self.note else ""
        return f"- {self.label}: {show(self.measured)}, target {self.op} {show(self.bound)}: **{self.verdict()}**{note}"


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def errors_note(*rows: Row | None) -> str:
    """A service row with failed requests passes nothing: its speed may come from refusing work."""
    bad = [r for r in rows if r is not None and r.server == "service" and r.result.errors]
    return "; ".join(f"service c={r.concurrency} had {r.result.errors} errors" for r in bad)


def targets(results: Results) -> list[Target]:
    out = []
    for c in (16, 64):
        service, naive = results.row("service", "single", c), results.row("naive", "single", c)
        out.append(
            Target(
                f"one text, c={c}: service / naive req/s",
                ratio(_rps(service), _rps(naive)),
                ">=",
                3.0,
                note=errors_note(service),
            )
        )
        out.append(
            Target(
                f"one text, c={c}: service p99 vs naive p99",
                _p(service, 99),
                "<",
                _p(naive, 99),
                " ms",
                note=errors_note(service),
            )
        )
    for c in SINGLE_CONCURRENCY:
        service, tutorial = results.row("service", "single", c), results.row("tutorial", "single", c)
        out.append(
            Target(
                f"one text, c={c}: service / tutorial req/s",
                ratio(_rps(service), _rps(tutorial)),
                ">=",
                2.0,
                note=errors_note(service),
            )
        )
    service, naive = results.row("service", "single", 1), results.row("naive", "single", 1)
    out.append(
        Target(
            "one client: service p50 vs naive p50",
            _p(service, 50),
            "<=",
            _p(naive, 50),
            " ms",
            note=errors_note(service),
        )
    )
    engine = best_engine(results.engine, "single")
    budget = None
    if engine is not None and results.batch_wait_ms is not None:
        budget = engine.single_p50_ms + results.batch_wait_ms + 3
    out.append(
        Target(
            "one client: service p50 vs engine single + batch wait + 3 ms",
            _p(service, 50),
            "<=",
            budget,
            " ms",
            note=errors_note(service),
        )
    )
    for key, c, share in (("batch32", BATCH_CONCURRENCY, 0.70), ("qa", QA_CONCURRENCY, 0.85)):
        row, engine = results.row("service", key, c), best_engine(results.engine, key)
        measured = ratio(row.items_per_s if row else None, engine.ceiling if engine else None)
        out.append(Target(f"{key}, c={c}: service / engine ceiling", measured, ">=", share, "%", note=errors_note(row)))
    for padding in results.padding:
        out.append(Target(f"padding, {padding.rows}", padding.share, "<=", 0.10, "%"))
    return out


def _rps(row: Row | None) -> float | None:
    return row.result.rps if row else None


def _p(row: Row | None, q: int) -> float | None:
    return None if row is None else row.result.p50_ms if q == 50 else row.result.p99_ms


# ------------------------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------------------------


def http_table(rows: list[Row], unit: str) -> list[str]:
    lines = [
        f"| server | concurrency | req/s | {unit}/s | p50 ms | p99 ms | errors | client CPU ms/request |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        errors = f"**{r.result.socket_errors} socket, {r.result.non2xx} non-2xx**" if r.result.errors else "0"
        lines.append(
            f"| {r.server} | {r.concurrency} | {r.result.rps:,.1f} | {r.items_per_s:,.1f} | "
            f"{r.result.p50_ms:.1f} | {r.result.p99_ms:.1f} | {errors} | "
            f"{r.result.client_cpu_ms_per_request:.3f} |"
        )
    return lines


def engine_table(figures: list[EngineFigure], loads: dict[str, Workload]) -> list[str]:
    lines = [
        "| workload | precision | one request p50 ms | ceiling items/s | best batch (requests) | items/request |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for f in figures:
        best = " (faster)" if best_engine(figures, f.workload) is f else ""
        lines.append(
            f"| {loads[f.workload].title} | {f.precision}{best} | {f.single_p50_ms:.1f} | "
            f"{f.ceiling:,.1f} {loads[f.workload].unit} | {f.best_batch} | {f.items_per_request:.2f} |"
        )
    return lines


def padding_table(padding: list[Padding]) -> list[str]:
    lines = ["| service rows | real tokens | padded tokens | padding share |", "|---|---:|---:|---:|"]
    for p in padding:
        share = "n/a (metric absent)" if p.share is None else f"{100 * p.share:.1f} %"
        lines.append(f"| {p.rows} | {p.real:,.0f} | {p.padded:,.0f} | {share} |")
    return lines


def report(results: Results, loads: dict[str, Workload], command: str, timing: Timing, threads: int) -> str:
    lines = [
        f"## Side by side: service, naive server, Serve tutorial, engine ({time.strftime('%Y-%m-%d %H:%M')})",
        "",
        f"Machine: {machine()}. Command: `{command}`.",
        f"Each server ran alone (started, warmed up {timing.warmup_s:g} s per row, measured {timing.seconds:g} s "
        "per row, stopped and gone before the next), all sent the same bodies by wrk (1 thread, connections = "
        f"concurrency). The engine ran in-process on {threads} threads, no HTTP, in each precision `auto` may "
        "choose for the model (int8 only within its recorded cost).",
    ]
    if results.precisions:
        lines.append(f"Service precision (`auto`, one replica's choice per model): {'; '.join(results.precisions)}.")
    for key, load in loads.items():
        rows = [r for r in results.rows if r.workload == key]
        if rows:
            lines += ["", f"### {load.title}", "", *http_table(rows, load.unit)]
    if results.engine:
        lines += ["", "### The engine alone", "", *engine_table(results.engine, loads)]
    if results.padding:
        lines += [
            "",
            "### Padding (the service's `ray_attention_serve_tokens_total`)",
            "",
            *padding_table(results.padding),
        ]
    lines += ["", "### Targets", "", *(t.line() for t in targets(results)), ""]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------------------------


def parse_only(value: str) -> tuple[str, ...]:
    chosen = tuple(name.strip() for name in value.split(",") if name.strip())
    unknown = set(chosen) - set(SERVERS)
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"choose from {', '.join(SERVERS)} (comma-separated), not {value!r}")
    return chosen


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.benchmark", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=15, help="seconds measured per row (default 15)")
    parser.add_argument("--warmup", type=float, default=5, help="seconds of load before each row (default 5)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 3 s per row, 1 s warm-up")
    parser.add_argument("--only", type=parse_only, default=SERVERS, help=f"a subset of {','.join(SERVERS)}")
    parser.add_argument("--write", type=Path, help="append the report, as markdown, to this file")
    parser.add_argument(
        "--sentences",
        type=Path,
        help="real sentences for the sentiment rows (one per line, or SST-2's TSV, e.g. ../shared/data/sst2/dev.tsv)",
    )
    parser.add_argument("--port", type=int, default=0, help="HTTP port every server uses in turn (default: a free one)")
    parser.add_argument("--metrics-port", type=int, default=0, help="the service's metrics port (default: free)")
    parser.add_argument(
        "--threads",
        type=int,
        default=len(os.sched_getaffinity(0)),
        help="torch threads of the engine and the naive server (default: this machine's cores)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    command = " ".join(["python -m loadtests.benchmark", *(argv if argv is not None else sys.argv[1:])])
    timing = Timing(3, 1, 0.5) if args.quick else Timing(args.duration, args.warmup, max(1.0, args.duration / 5))
    port, metrics_port = args.port or free_port(), args.metrics_port or free_port()
    loads = workloads(sentences=read_sentences(args.sentences) if args.sentences else None)
    results = Results([], [], [])
    with tempfile.TemporaryDirectory(prefix="benchmark-") as tmp:
        files = body_files(loads, Path(tmp))
        if "engine" in args.only:
            results.engine = engine_figures(loads, args.threads, timing.engine_s)
        if "service" in args.only:
            run_service(results, loads, files, (port, metrics_port), timing)
        if {"naive", "tutorial"} & set(args.only):
            checkpoints = servers.export_checkpoints(("sentiment", "qa"), Path(tmp))
            if "naive" in args.only:
                run_naive(results, loads, files, port, checkpoints, args.threads, timing)
            if "tutorial" in args.only:
                run_tutorial(results, loads, files, port, checkpoints["sentiment"], args.threads, timing)
    qa_windows_per_request(results)
    text = report(results, loads, command, timing, args.threads)
    print(text)
    if args.write:
        with args.write.open("a") as f:
            f.write("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
