"""Step load: the schedule, per-step statistics and the knee of the throughput curve. Pure (no Locust), so
the arithmetic is unit-tested; `shapes.py` drives Locust with it and the runner reports with it.

Users rise by `step_users` every `step_time_s` up to `max_users`; the last step is held for one full step and
then the test stops (or earlier, at `run_time_s`). Each step is measured after its new users have been
spawned (the settle time), so a row describes `users` steady clients.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

from loadtests.common.stats import percentile

STEP_COLUMNS = ["step", "users", "seconds", "requests", "failures", "rps", "p50_ms", "p95_ms", "p99_ms"]


@dataclass(frozen=True)
class StepPlan:
    step_users: int
    step_time_s: float
    max_users: int
    spawn_rate: float
    run_time_s: float | None = None

    def __post_init__(self) -> None:
        if self.step_users < 1 or self.max_users < 1 or self.step_time_s <= 0 or self.spawn_rate <= 0:
            raise ValueError("step users, max users, step time and spawn rate must be positive")

    @property
    def steps(self) -> int:
        return math.ceil(self.max_users / self.step_users)

    @property
    def total_s(self) -> float:
        planned = self.steps * self.step_time_s
        return planned if self.run_time_s is None else min(planned, self.run_time_s)

    @property
    def settle_s(self) -> float:
        """Time to spawn one step's new users (at most half a step), left out of the step's statistics."""
        return min(self.step_users / self.spawn_rate, self.step_time_s / 2)

    def at(self, t: float) -> tuple[int, int] | None:
        """(step index, target users) at `t` seconds into the test; None once it is over."""
        if t < 0 or t >= self.total_s:
            return None
        step = int(t // self.step_time_s)
        return step, min(self.max_users, (step + 1) * self.step_users)


@dataclass
class StepStats:
    """Requests that started in one step's measured window."""

    plan: StepPlan
    times_ms: dict[int, list[float]] = field(default_factory=dict)
    failures: dict[int, int] = field(default_factory=dict)

    def record(self, t: float, response_time_ms: float, failed: bool) -> None:
        """A request that started `t` seconds into the test."""
        where = self.plan.at(t)
        if where is None or t - where[0] * self.plan.step_time_s < self.plan.settle_s:
            return
        self.times_ms.setdefault(where[0], []).append(response_time_ms)
        self.failures[where[0]] = self.failures.get(where[0], 0) + failed

    def rows(self, elapsed_s: float) -> list[dict]:
        """One row per step that was reached, for a test that ran `elapsed_s` seconds."""
        out = []
        for step in range(self.plan.steps):
            start = step * self.plan.step_time_s + self.plan.settle_s
            end = min((step + 1) * self.plan.step_time_s, elapsed_s, self.plan.total_s)
            if end <= start:
                break
            times = sorted(self.times_ms.get(step, []))
            seconds = end - start
            out.append({
                "step": step + 1,
                "users": min(self.plan.max_users, (step + 1) * self.plan.step_users),
                "seconds": round(seconds, 1),
                "requests": len(times),
                "failures": self.failures.get(step, 0),
                "rps": round(len(times) / seconds, 2),
                "p50_ms": round(percentile(times, 50), 1),
                "p95_ms": round(percentile(times, 95), 1),
                "p99_ms": round(percentile(times, 99), 1),
            })  # fmt: skip
        return out


def write_rows(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=STEP_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return [
            {k: (int(v) if k in ("step", "users", "requests", "failures") else float(v)) for k, v in row.items()}
            for row in csv.DictReader(f)
        ]


def find_knee(rows: list[dict], min_gain: float = 0.1) -> dict | None:
    """The knee: the last step before adding users stops buying throughput, i.e. the first step whose next
    step raises requests/s by less than `min_gain` (10 %) while adding users. None when every step still
    gained (the service was not saturated: raise the users) or there are fewer than two measured steps."""
    measured = [r for r in rows if r["requests"] > 0]
    for here, there in zip(measured, measured[1:], strict=False):
        if there["users"] > here["users"] and there["rps"] < here["rps"] * (1 + min_gain):
            return here
    return None


def format_rows(rows: list[dict]) -> str:
    header = f"{'step':>4} {'users':>5} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'failed':>7}"
    lines = [header]
    for r in rows:
        lines.append(
            f"{r['step']:>4} {r['users']:>5} {r['rps']:>8.2f} {r['p50_ms']:>8.0f} {r['p95_ms']:>8.0f} "
            f"{r['p99_ms']:>8.0f} {r['failures']:>7}"
        )
    return "\n".join(lines)
