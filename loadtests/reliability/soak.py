"""Soak: a mixed Locust load at a share of capacity for a long while; memory, errors and latency over time.

    python -m loadtests.reliability.soak --url http://127.0.0.1:8000 [--minutes 30] [--share 0.7] [--out runs/soak]

1. capacity: 60 s of the mixed profile with no think time and --probe-users users: the requests per second the
   service sustains and their median latency;
2. soak: users with 2-4 s of think time, as many as give about --share of that rate, for --minutes;
3. meanwhile the resident memory of every replica of the service (and Serve's proxy) is sampled every
   --sample-s seconds.

Reports, per replica, memory after the warm-up (--warmup-min) and at the end; per 5-minute window, requests per
second, p99 and failures (from Locust's history); and failures by kind. Exits 1 when a request failed with a 5xx
or a replica grew by more than --max-growth-mb after the warm-up. Run it on the service's machine (replicas are
found by their process titles).
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

from loadtests.common.stats import median
from loadtests.reliability.replicas import MB, replica_memory


def run_locust(url: str, users: int, seconds: int, out: Path, min_wait: float, max_wait: float) -> None:
    """loadtests.locust (Locust, headless, CSV history); an SLO verdict (exit 1) is ours to make, not its."""
    command = [
        sys.executable, "-m", "loadtests.locust", "--host", url, "--users", str(users),
        "--spawn-rate", str(min(users, 20)), "--duration", f"{seconds}s", "--out", str(out),
        "--min-wait", str(min_wait), "--max-wait", str(max_wait), "--max-requests", "10000000",
    ]  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    with (out / "run.log").open("w") as log:
        code = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT).returncode
    if code not in (0, 1):
        raise SystemExit(f"loadtests.locust failed with exit status {code}; see {out / 'run.log'}")


def aggregated(out: Path) -> dict:
    with (out / "locust_stats.csv").open() as f:
        return next(row for row in csv.DictReader(f) if row["Name"] == "Aggregated")


def capacity(url: str, users: int, out: Path) -> tuple[float, float]:
    """Requests per second and mean latency (s) with `users` sending back to back for 60 s (the mean, not the
    median: a user's rate is one over its mean time per request, and long QA contexts weigh in it)."""
    run_locust(url, users, 60, out, 0, 0)
    row = aggregated(out)
    return float(row["Requests/s"]), float(row["Average Response Time"]) / 1000


def sample_memory(apps: list[str], every_s: float, stop: threading.Event, samples: list[dict]) -> None:
    started = time.monotonic()
    while not stop.is_set():
        t = time.monotonic() - started
        samples += [{"t": t, "replica": name, "rss_mb": rss / MB} for name, rss in replica_memory(apps).items()]
        stop.wait(every_s)


def windows(out: Path, minutes: int = 5) -> list[dict]:
    """Per window of `minutes`: requests/s, the median of Locust's 10 s p99 readings, and new failures."""
    with (out / "locust_stats_history.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r["Name"] == "Aggregated" and r["99%"] not in ("", "N/A")]
    if not rows:
        return []
    start = int(rows[0]["Timestamp"])
    grouped: dict[int, list[dict]] = defaultdict(list)
    for row in rows:
        grouped[(int(row["Timestamp"]) - start) // (minutes * 60)].append(row)
    result = []
    for index, group in sorted(grouped.items()):
        p99s = sorted(float(r["99%"]) for r in group)
        result.append(
            {
                "window_min": f"{index * minutes}-{(index + 1) * minutes}",
                "requests_per_s": round(sum(float(r["Requests/s"]) for r in group) / len(group), 1),
                "p99_ms_median": median(p99s),
                "p99_ms_max": p99s[-1],
                "failures_total": int(group[-1]["Total Failure Count"]),
            }
        )
    return result


def failures(out: Path) -> dict[str, int]:
    with (out / "locust_failures.csv").open() as f:
        return {f"{r['Method']} {r['Name']}: {r['Error']}": int(r["Occurrences"]) for r in csv.DictReader(f)}


def memory_table(samples: list[dict], warmup_s: float) -> dict[str, dict]:
    by_replica: dict[str, list[dict]] = defaultdict(list)
    for s in samples:
        by_replica[s["replica"]].append(s)
    table = {}
    for replica, series in by_replica.items():
        after = [s for s in series if s["t"] >= warmup_s]
        if not after:
            continue
        table[replica] = {
            "start_mb": round(series[0]["rss_mb"]),
            "after_warmup_mb": round(after[0]["rss_mb"]),
            "end_mb": round(series[-1]["rss_mb"]),
            "max_mb": round(max(s["rss_mb"] for s in series)),
            "growth_after_warmup_mb": round(series[-1]["rss_mb"] - after[0]["rss_mb"], 1),
        }
    return table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--prefix", default="", help="the service's path_prefix (names its applications)")
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--share", type=float, default=0.7, help="share of the measured capacity to offer")
    parser.add_argument("--probe-users", type=int, default=32)
    parser.add_argument("--warmup-min", type=float, default=5)
    parser.add_argument("--sample-s", type=float, default=15)
    parser.add_argument("--max-growth-mb", type=float, default=50)
    parser.add_argument("--out", type=Path, default=Path("runs/soak"))
    options = parser.parse_args()
    from service.app import application_names

    rps, mean_s = capacity(options.url, options.probe_users, options.out / "capacity")
    # Think time of 2-4 s per user, long against the latency, so the offered rate hardly depends on how the
    # latency falls between idle and saturated; half the saturated mean is the guess for the latency at the share.
    think_s = 3.0
    users = max(1, round(options.share * rps * (think_s + mean_s / 2)))
    print(f"capacity {rps:.1f} req/s (mean {mean_s * 1000:.0f} ms): soaking with {users} users", flush=True)

    samples: list[dict] = []
    stop = threading.Event()
    apps = list(application_names(options.prefix).values())
    sampler = threading.Thread(target=sample_memory, args=(apps, options.sample_s, stop, samples), daemon=True)
    sampler.start()
    soak_out = options.out / "soak"
    run_locust(options.url, users, int(options.minutes * 60), soak_out, 2.0, 4.0)
    stop.set()
    sampler.join()

    row = aggregated(soak_out)
    report = {
        "capacity_rps": round(rps, 1),
        "users": users,
        "minutes": options.minutes,
        "requests": int(row["Request Count"]),
        "requests_per_s": round(float(row["Requests/s"]), 1),
        "p50_ms": float(row["50%"]),
        "p99_ms": float(row["99%"]),
        "failures": failures(soak_out),
        "windows": windows(soak_out),
        "memory": memory_table(samples, options.warmup_min * 60),
    }
    (options.out / "soak.json").write_text(json.dumps(report, indent=2) + "\n")
    with (options.out / "memory.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["t", "replica", "rss_mb"])
        writer.writeheader()
        writer.writerows(samples)
    print(json.dumps(report, indent=2))
    server_errors = sum(n for kind, n in report["failures"].items() if "HTTP 5" in kind or "no response" in kind)
    grew = [r for r, m in report["memory"].items() if m["growth_after_warmup_mb"] > options.max_growth_mb]
    if server_errors or grew:
        print(f"BROKEN: {server_errors} server errors; grew past {options.max_growth_mb} MB: {grew}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
