"""The load test against the real service, briefly, so the locustfile and its runner cannot rot: every user
class runs, both endpoints answer with bodies that pass the locustfile's checks, and the SLO verdict is the
runner's exit status.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from loadtests.locust.run import read_stats

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def run_load(service_url: str, out: Path, *options: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "loadtests.locust", "--host", service_url, "--out", str(out), *options],
        cwd=ROOT, capture_output=True, text=True, timeout=180,
    )  # fmt: skip


def test_a_short_load_run_meets_its_slo(service_url, tmp_path):
    # One user per profile (sentiment, QA, mixed), so each endpoint is certain to be called.
    done = run_load(
        service_url, tmp_path, "--profile", "sentiment,qa,mixed", "--users", "3", "--spawn-rate", "3",
        "--duration", "5s", "--slo-p95-ms", "60000", "--slo-error-ratio", "0",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    stats = {row["Name"]: row for row in read_stats(tmp_path / "locust_stats.csv")}
    for name in ("/v1/sentiment", "/v1/qa"):
        assert int(stats[name]["Request Count"]) > 0, name
        assert int(stats[name]["Failure Count"]) == 0, (tmp_path / "locust_failures.csv").read_text()
    assert int(stats["Aggregated"]["Failure Count"]) == 0
    assert (tmp_path / "report.html").stat().st_size > 10_000
    assert json.loads((tmp_path / "slo.json").read_text())["passed"] is True


def test_a_broken_slo_fails_the_run(service_url, tmp_path):
    done = run_load(
        service_url, tmp_path, "--profile", "sentiment", "--users", "1", "--duration", "3s",
        "--slo-p95-ms", "0.001",
    )  # fmt: skip
    assert done.returncode == 1, done.stdout[-4000:] + done.stderr[-4000:]
    assert "SLO BROKEN" in done.stdout and "p95 of /v1/sentiment" in done.stdout
    assert json.loads((tmp_path / "slo.json").read_text())["passed"] is False
