"""Headless load test with SLOs: runs Locust on loadtests/locust/locustfile.py, writes its CSV and HTML report, and
exits non-zero when an SLO is broken.

    python -m loadtests.locust --host http://127.0.0.1:8000 --users 20 --spawn-rate 5 --duration 60s --out runs/load
    python -m loadtests.locust ... --slo-p95-ms 800 --slo-p95-ms /v1/qa=2000 --slo-error-ratio 0.001
    python -m loadtests.locust ... --profile qa --tags single          # one profile, one kind of request
    python -m loadtests.locust ... --shape step --users 40 --step-users 5 --step-time 30s --duration 10m

Writes to --out: locust_stats.csv, locust_stats_history.csv, locust_failures.csv, locust_exceptions.csv,
report.html, slo.json (the verdict), and with --shape step locust_steps.csv (per-step throughput/latency).

Exit status: 0 every SLO met; 1 an SLO broken; 2 bad arguments or a refused (non-loopback) host; 3 Locust
failed or made no requests. The load is bounded: loopback hosts only unless --allow-remote, at most
500 users, 1 h and --max-requests requests; Locust stops by itself and is killed if it overruns.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from loadtests.locust.guard import (
    DEFAULT_MAX_REQUESTS,
    MAX_DURATION_S,
    MAX_REQUESTS,
    MAX_SPAWN_RATE,
    MAX_USERS,
    loopback_problem,
    parse_duration,
)
from loadtests.locust.steps import find_knee, format_rows, read_rows

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PROFILES = {"mixed": "MixedUser", "sentiment": "SentimentUser", "qa": "QAUser"}
CSV_PREFIX = "locust"
STOP_TIMEOUT_S = 30  # users finish their request in flight before the test ends
AGGREGATED = "Aggregated"

EXIT_OK, EXIT_SLO, EXIT_USAGE, EXIT_LOCUST = 0, 1, 2, 3


@dataclass(frozen=True)
class Slo:
    p95_ms: float | None  # every request name and the aggregate
    p95_ms_by_name: dict[str, float]  # overrides for one request name, e.g. {"/v1/qa": 2000}
    max_error_ratio: float

    def limit_for(self, name: str) -> float | None:
        return self.p95_ms_by_name.get(name, self.p95_ms)


def read_stats(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _number(text: str | None) -> float:
    try:
        return float(text) if text not in (None, "", "N/A") else math.nan
    except ValueError:
        return math.nan


def evaluate_slo(rows: list[dict], slo: Slo) -> list[str]:
    """Every broken SLO, as a sentence; empty when all are met. `rows` are Locust's *_stats.csv rows."""
    aggregate = next((r for r in rows if r["Name"] == AGGREGATED), None)
    requests = int(aggregate["Request Count"]) if aggregate else 0
    if requests == 0:
        return ["no requests were made, so no SLO can be judged"]
    broken = []
    failures = int(aggregate["Failure Count"])
    if failures / requests > slo.max_error_ratio:
        broken.append(f"error ratio {failures}/{requests} = {failures / requests:.4f} > {slo.max_error_ratio}")
    names = {r["Name"] for r in rows}
    for name in sorted(set(slo.p95_ms_by_name) - names):
        broken.append(f"no requests named {name!r} to judge its p95 SLO")
    for row in rows:
        limit = slo.limit_for(row["Name"])
        if limit is None or int(row["Request Count"]) == 0:
            continue
        p95 = _number(row.get("95%"))
        if math.isnan(p95) or p95 > limit:
            label = "all requests" if row["Name"] == AGGREGATED else row["Name"]
            broken.append(f"p95 of {label} is {p95:g} ms > {limit:g} ms")
    return broken


def format_stats(rows: list[dict]) -> str:
    lines = [f"{'name':<16} {'requests':>8} {'failed':>7} {'req/s':>7} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7}"]
    for r in rows:
        lines.append(
            f"{r['Name']:<16} {r['Request Count']:>8} {r['Failure Count']:>7} {_number(r['Requests/s']):>7.2f} "
            f"{_number(r['50%']):>7.0f} {_number(r['95%']):>7.0f} {_number(r['99%']):>7.0f}"
        )
    return "\n".join(lines)


def _p95_limit(text: str) -> tuple[str | None, float]:
    name, sep, value = text.rpartition("=")
    try:
        limit = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not MS or NAME=MS: {text!r}") from None
    if limit <= 0 or (sep and not name):
        raise argparse.ArgumentTypeError(f"not MS or NAME=MS with MS > 0: {text!r}")
    return (name if sep else None), limit


def _duration(text: str) -> int:
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not 1 <= seconds <= MAX_DURATION_S:
        raise argparse.ArgumentTypeError(f"duration must be 1 s to {MAX_DURATION_S} s")
    return seconds


def _bounded(kind, low, high):
    def parse(text: str):
        value = kind(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be {low} to {high}")
        return value

    return parse


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m loadtests.locust",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--host", required=True, help="the service, e.g. http://127.0.0.1:8000 (loopback only)")
    p.add_argument("--allow-remote", action="store_true", help="allow a host that is not a loopback address")
    p.add_argument(
        "--users",
        type=_bounded(int, 1, MAX_USERS),
        default=10,
        help=f"concurrent users; with --shape step the top step (1-{MAX_USERS}, default 10)",
    )
    p.add_argument(
        "--spawn-rate",
        type=_bounded(float, 0.1, MAX_SPAWN_RATE),
        default=5.0,
        help="users started per second (default 5)",
    )
    p.add_argument("--duration", type=_duration, default=60, help="run time: 90, 90s, 2m, 1h (default 60s)")
    p.add_argument("--out", type=Path, default=Path("runs/load"), help="directory for CSV, HTML and slo.json")
    p.add_argument(
        "--profile",
        default="mixed",
        help="user classes, comma-separated: mixed, sentiment, qa (default mixed); users are split evenly between them",
    )
    p.add_argument(
        "--sentiment-weight",
        type=_bounded(int, 0, 1000),
        default=1,
        help="mixed profile: relative share of sentiment requests (default 1)",
    )
    p.add_argument(
        "--qa-weight",
        type=_bounded(int, 0, 1000),
        default=1,
        help="mixed profile: relative share of QA requests (default 1)",
    )
    p.add_argument("--tags", nargs="+", help="only tasks with these tags (sentiment qa single batch long attention)")
    p.add_argument("--exclude-tags", nargs="+", help="no tasks with these tags")
    p.add_argument("--min-wait", type=_bounded(float, 0, 60), default=0.1, help="think time, seconds (default 0.1)")
    p.add_argument("--max-wait", type=_bounded(float, 0, 60), default=0.5, help="... at most (default 0.5)")
    p.add_argument(
        "--request-timeout",
        type=_bounded(float, 0.1, 600),
        default=60.0,
        help="seconds before a request counts as failed (default 60)",
    )
    p.add_argument(
        "--max-requests",
        type=_bounded(int, 1, MAX_REQUESTS),
        default=DEFAULT_MAX_REQUESTS,
        help=f"stop after this many requests (default {DEFAULT_MAX_REQUESTS})",
    )
    p.add_argument(
        "--shape",
        choices=["constant", "step"],
        default="constant",
        help="constant: --users for --duration; step: +--step-users every --step-time up to --users",
    )
    p.add_argument("--step-users", type=_bounded(int, 1, MAX_USERS), default=5, help="step shape (default 5)")
    p.add_argument("--step-time", type=_duration, default=30, help="step shape: length of a step (default 30s)")
    p.add_argument(
        "--slo-p95-ms",
        type=_p95_limit,
        action="append",
        default=[],
        metavar="[NAME=]MS",
        help="p95 latency limit in ms for every request name (MS) or one (NAME=MS, e.g. /v1/qa=2000); "
        "repeatable (default 2000)",
    )
    p.add_argument(
        "--slo-error-ratio",
        type=_bounded(float, 0, 1),
        default=0.01,
        help="largest allowed failed/total requests (default 0.01)",
    )
    return p  # fmt: skip


def slo_from(args: argparse.Namespace) -> Slo:
    overall = [limit for name, limit in args.slo_p95_ms if name is None]
    by_name = {name: limit for name, limit in args.slo_p95_ms if name is not None}
    return Slo(p95_ms=overall[-1] if overall else 2000.0, p95_ms_by_name=by_name, max_error_ratio=args.slo_error_ratio)


def locust_command(args: argparse.Namespace, out: Path) -> list[str]:
    classes = []
    for name in args.profile.split(","):
        if name.strip() not in PROFILES:
            raise ValueError(f"unknown profile {name.strip()!r}: choose from {', '.join(PROFILES)}")
        classes.append(PROFILES[name.strip()])
    files = [str(HERE / "locustfile.py")] + ([str(HERE / "shapes.py")] if args.shape == "step" else [])
    cmd = [
        sys.executable, "-m", "locust", "-f", ",".join(files), "--headless", "--host", args.host,
        "--users", str(args.users), "--spawn-rate", str(args.spawn_rate), "--run-time", f"{args.duration}s",
        "--stop-timeout", str(STOP_TIMEOUT_S), "--csv", str(out / CSV_PREFIX), "--html", str(out / "report.html"),
        "--only-summary", "--loglevel", "INFO",
        "--sentiment-weight", str(args.sentiment_weight), "--qa-weight", str(args.qa_weight),
        "--min-wait", str(args.min_wait), "--max-wait", str(args.max_wait),
        "--request-timeout", str(args.request_timeout), "--max-requests", str(args.max_requests),
        "--max-run-time", f"{args.duration + STOP_TIMEOUT_S}s",
    ]  # fmt: skip
    if args.allow_remote:
        cmd.append("--allow-remote")
    if args.tags:
        cmd += ["--tags", *args.tags]
    if args.exclude_tags:
        cmd += ["--exclude-tags", *args.exclude_tags]
    if args.shape == "step":
        cmd += ["--step-users", str(args.step_users), "--step-time", f"{args.step_time}s"]
    return cmd + sorted(set(classes))


def run_locust(cmd: list[str], deadline_s: float) -> int:
    """Run Locust in its own process group; past the deadline, SIGTERM (it still writes its CSV) then SIGKILL."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    process = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True)
    try:
        return process.wait(timeout=deadline_s)
    except subprocess.TimeoutExpired:
        print(f"Locust overran its {deadline_s:.0f} s deadline: stopping it", file=sys.stderr)
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        return EXIT_LOCUST
    except KeyboardInterrupt:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait()
        raise


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if not args.allow_remote and (problem := loopback_problem(args.host)):
        print(f"refusing to send load to {args.host}: {problem} (--allow-remote to override)", file=sys.stderr)
        return EXIT_USAGE
    if "mixed" in args.profile and args.sentiment_weight + args.qa_weight == 0:
        print("--sentiment-weight and --qa-weight cannot both be 0", file=sys.stderr)
        return EXIT_USAGE
    if args.max_wait < args.min_wait:
        print("--max-wait must be at least --min-wait", file=sys.stderr)
        return EXIT_USAGE
    try:
        cmd = locust_command(args, args.out)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    slo = slo_from(args)
    args.out.mkdir(parents=True, exist_ok=True)
    stats_file = args.out / f"{CSV_PREFIX}_stats.csv"
    stats_file.unlink(missing_ok=True)  # never judge a previous run's numbers
    if args.shape == "step" and (steps := math.ceil(args.users / args.step_users)) * args.step_time > args.duration:
        print(f"note: --duration {args.duration}s ends the test before all {steps} steps of {args.step_time}s have run")
    print(" ".join(cmd), flush=True)
    code = run_locust(cmd, deadline_s=args.duration + STOP_TIMEOUT_S + 60)

    # Locust's own status: 1 means "some requests failed", which the error-ratio SLO judges instead.
    if code not in (0, 1) or not stats_file.exists():
        print(f"Locust failed (exit status {code}); no verdict", file=sys.stderr)
        return EXIT_LOCUST
    rows = read_stats(stats_file)
    if not any(r["Name"] == AGGREGATED and int(r["Request Count"]) > 0 for r in rows):
        print(f"Locust made no requests (exit status {code}); no verdict", file=sys.stderr)
        return EXIT_LOCUST
    broken = evaluate_slo(rows, slo)
    print("\n" + format_stats(rows))
    verdict = {"passed": not broken, "broken": broken, "slo": {"p95_ms": slo.p95_ms,
               "p95_ms_by_name": slo.p95_ms_by_name, "max_error_ratio": slo.max_error_ratio}}  # fmt: skip
    steps_file = args.out / f"{CSV_PREFIX}_steps.csv"
    if args.shape == "step" and steps_file.exists():
        steps = read_rows(steps_file)
        knee = find_knee(steps)
        print("\nper step:\n" + format_rows(steps))
        print(f"knee: {knee['users']} users, {knee['rps']:.1f} req/s" if knee else "knee: not reached (raise --users)")
        verdict["knee"] = knee
    (args.out / "slo.json").write_text(json.dumps(verdict, indent=2) + "\n")
    print(f"\nreport: {args.out / 'report.html'}")
    if broken:
        print("SLO BROKEN:\n  " + "\n  ".join(broken))
        return EXIT_SLO
    print("SLO met")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
