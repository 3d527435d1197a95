"""Long contexts: how fast one question over a long document is answered, per setting, side by side in one run.

    python -m loadtests.benchmark.bench_long [--questions 6] [--repeats 2] [--write docs/benchmarks.md]

A question over a long document is all its windows of 384 tokens, one after another on one replica's model
thread; the settings that could make it faster are measured on the same questions (the long-document load test's
gazetteers, loadtests/reliability/longdocs.py: 20-60 windows each) through the shipped QA engine:

- precision: fp32, bf16, and int8 (`precision: int8`, dynamic quantization of the linear layers: weights int8
  per output channel, activations quantized per batch);
- threads: the replica's one thread, or two (what spreading one request's windows over both of this machine's
  replicas could gain at best: the same cores working on one request);
- doc_stride (the tokens consecutive windows share; the API's `doc_stride`): fewer shared tokens, fewer windows.

Each row: windows per question, seconds per question (best of --repeats), windows/s, and how many questions
still have the asked-for fact in the best answer (the setting's cost in answers, on these documents).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import torch

from loadtests.benchmark.bench_engine import _report
from loadtests.common.machine import machine
from loadtests.reliability.longdocs import gazetteer_question
from service.engine.config import EngineConfig
from service.engine.engine import QAEngine
from service.settings import default_model_dir

SETTINGS = [  # precision, threads, doc_stride
    ("fp32", 1, 128),
    ("bf16", 1, 128),
    ("int8", 1, 128),
    ("fp32", 2, 128),
    ("bf16", 2, 128),
    ("int8", 2, 128),
    ("best", 1, 64),
    ("best", 1, 32),
]


def engines(model_dir: Path) -> dict[str, QAEngine]:
    return {p: QAEngine(model_dir, EngineConfig(precision=p)) for p in ("fp32", "bf16", "int8")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=2, help="best of N per question")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--write", type=Path)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    questions = [gazetteer_question(rng, rng.randint(4, 8), rng.randint(12, 22)) for _ in range(args.questions)]
    built = engines(default_model_dir("qa"))
    timings: dict[tuple[str, int, int], float] = {}
    lines = [
        f"## Long contexts: one question over a long document ({time.strftime('%Y-%m-%d')})",
        "",
        f"Machine: {machine()}.",
        "",
        f"Command: `python -m loadtests.benchmark.bench_long {' '.join(argv if argv is not None else sys.argv[1:])}`."
        f" {args.questions} gazetteer questions (loadtests/reliability/longdocs.py), the shipped QA model through"
        f" its engine, best of {args.repeats} per question. `best`: the fastest precision of the rows above on one"
        " thread.",
        "",
        "| precision | threads | doc_stride | windows / question | s / question | windows/s | vs fp32, 1 thread, 128 "
        "| answer found |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for precision, threads, stride in SETTINGS:
        if precision == "best":
            precision = max(("fp32", "bf16", "int8"), key=lambda p: -timings.get((p, 1, 128), float("inf")))
        torch.set_num_threads(threads)
        engine = built[precision]
        windows, seconds, found = 0, 0.0, 0
        for q in questions:
            item = engine.encode(q.question, q.context, doc_stride=stride)
            best = float("inf")
            for _ in range(args.repeats):
                began = time.perf_counter()
                result = engine.answer([item]).results[0]
                best = min(best, time.perf_counter() - began)
            windows += len(item.windows)
            seconds += best
            found += bool(result.answers) and q.answer in result.answers[0].text
        timings[(precision, threads, stride)] = seconds
        base = timings.get(("fp32", 1, 128), seconds)
        lines.append(
            f"| {precision} | {threads} | {stride} | {windows / len(questions):.1f} | {seconds / len(questions):.2f} "
            f"| {windows / seconds:.1f} | {base / seconds:.2f}× | {found}/{len(questions)} |"
        )
        print(lines[-1], flush=True)
    return _report(lines, args.write)


if __name__ == "__main__":
    sys.exit(main())
