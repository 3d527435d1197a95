"""The headless runner's pure parts: SLO verdicts on Locust's CSV, argument bounds, the Locust command line.
Also that Locust itself loads the locustfile (a subprocess: importing Locust here would gevent-patch pytest)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from loadtests.locust import run
from loadtests.locust.run import Slo, evaluate_slo, locust_command, parser, read_stats, slo_from

HEADER = (
    "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,Min Response Time,"
    "Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%"
)
SAMPLE = f"""{HEADER}
POST,/v1/qa,120,1,340,402.5,95.1,2210.4,6898.2,4.0,0.03,340,380,420,450,700,1100,1600,2000,2200,2200,2200
POST,/v1/sentiment,380,0,45,60.2,8.3,640.0,8786.9,12.7,0.0,45,52,60,66,90,150,300,420,640,640,640
,Aggregated,500,1,60,143.4,8.3,2210.4,8331.1,16.7,0.03,60,80,110,140,380,700,1300,1700,2200,2200,2200
"""


@pytest.fixture
def rows(tmp_path):
    path = tmp_path / "locust_stats.csv"
    path.write_text(SAMPLE)
    return read_stats(path)


def test_slo_met(rows):
    assert evaluate_slo(rows, Slo(p95_ms=1500, p95_ms_by_name={}, max_error_ratio=0.01)) == []


def test_p95_is_judged_per_request_name_and_overall(rows):
    broken = evaluate_slo(rows, Slo(p95_ms=800, p95_ms_by_name={}, max_error_ratio=0.01))
    assert broken == ["p95 of /v1/qa is 1100 ms > 800 ms"]
    broken = evaluate_slo(rows, Slo(p95_ms=100, p95_ms_by_name={"/v1/qa": 1200}, max_error_ratio=0.01))
    assert broken == ["p95 of /v1/sentiment is 150 ms > 100 ms", "p95 of all requests is 700 ms > 100 ms"]


def test_an_impossible_latency_slo_breaks(rows):
    assert len(evaluate_slo(rows, Slo(p95_ms=0.001, p95_ms_by_name={}, max_error_ratio=1.0))) == 3


def test_error_ratio(rows):
    assert evaluate_slo(rows, Slo(p95_ms=None, p95_ms_by_name={}, max_error_ratio=0.002)) == []
    assert evaluate_slo(rows, Slo(p95_ms=None, p95_ms_by_name={}, max_error_ratio=0.0)) == [
        "error ratio 1/500 = 0.0020 > 0.0"
    ]


def test_an_slo_for_a_name_that_was_never_requested_breaks(rows):
    broken = evaluate_slo(rows, Slo(p95_ms=None, p95_ms_by_name={"/v1/qaa": 500}, max_error_ratio=1))
    assert broken == ["no requests named '/v1/qaa' to judge its p95 SLO"]


def test_no_requests_cannot_pass(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text(f"{HEADER}\n,Aggregated,0,0,0,0.0,0,0,0,0.0,0.0,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A\n")
    assert evaluate_slo(read_stats(path), Slo(None, {}, 1.0)) == ["no requests were made, so no SLO can be judged"]


def test_slo_arguments():
    args = parser().parse_args(["--host", "http://127.0.0.1:8000"])
    assert slo_from(args) == Slo(p95_ms=2000.0, p95_ms_by_name={}, max_error_ratio=0.01)
    args = parser().parse_args(
        ["--host", "h", "--slo-p95-ms", "500", "--slo-p95-ms", "/v1/qa=1500", "--slo-error-ratio", "0"]
    )
    assert slo_from(args) == Slo(p95_ms=500.0, p95_ms_by_name={"/v1/qa": 1500.0}, max_error_ratio=0.0)


@pytest.mark.parametrize(
    "argv",
    [
        ["--users", "0"],
        ["--users", "501"],
        ["--duration", "2h"],
        ["--duration", "0"],
        ["--duration", "soon"],
        ["--spawn-rate", "0"],
        ["--slo-p95-ms", "fast"],
        ["--slo-p95-ms", "=5"],
        ["--slo-p95-ms", "-1"],
        ["--slo-error-ratio", "2"],
        ["--shape", "spike"],
        ["--max-requests", "0"],
    ],
)
def test_unbounded_or_malformed_arguments_are_refused(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parser().parse_args(["--host", "http://127.0.0.1:8000", *argv])
    assert exit_info.value.code == 2


def test_a_non_loopback_host_is_refused_before_any_load(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(run, "run_locust", lambda *a, **k: pytest.fail("Locust must not start"))
    assert run.main(["--host", "http://192.0.2.10:8000", "--out", str(tmp_path)]) == run.EXIT_USAGE
    assert "not a loopback address" in capsys.readouterr().err


def test_an_unknown_profile_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(run, "run_locust", lambda *a, **k: pytest.fail("Locust must not start"))
    assert run.main(["--host", "http://127.0.0.1:1", "--profile", "qa,chat", "--out", str(tmp_path)]) == 2


def test_locust_command(tmp_path):
    args = parser().parse_args(
        ["--host", "http://127.0.0.1:8000", "--profile", "qa,sentiment", "--users", "4", "--duration", "2m",
         "--tags", "single", "batch", "--qa-weight", "3"]
    )  # fmt: skip
    cmd = locust_command(args, tmp_path)
    assert cmd[:3] == [sys.executable, "-m", "locust"]
    assert cmd[cmd.index("-f") + 1].endswith("loadtests/locust/locustfile.py")
    assert "--headless" in cmd and cmd[cmd.index("--run-time") + 1] == "120s"
    assert cmd[cmd.index("--csv") + 1] == str(tmp_path / "locust")
    assert cmd[cmd.index("--html") + 1] == str(tmp_path / "report.html")
    assert cmd[cmd.index("--tags") + 1 : cmd.index("--tags") + 3] == ["single", "batch"]
    assert cmd[cmd.index("--qa-weight") + 1] == "3"
    assert cmd[-2:] == ["QAUser", "SentimentUser"]
    assert "--allow-remote" not in cmd

    step = locust_command(parser().parse_args(["--host", "h", "--shape", "step", "--step-time", "1m"]), tmp_path)
    assert step[step.index("-f") + 1].endswith("locustfile.py," + str(run.HERE / "shapes.py"))
    assert step[step.index("--step-time") + 1] == "60s"
    assert step[-1] == "MixedUser"


def locust(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "locust", "-f", f"{run.HERE / 'locustfile.py'},{run.HERE / 'shapes.py'}", *args],
        capture_output=True, text=True, timeout=60, cwd=run.ROOT,
    )  # fmt: skip


def test_locust_loads_the_locustfile_and_the_shape():
    listed = locust("--list")
    assert listed.returncode == 0, listed.stderr
    assert {"SentimentUser", "QAUser", "MixedUser"} <= set(listed.stdout.split())

    ratio = locust("--show-task-ratio-json", "--qa-weight", "3", "--step-users", "2")
    assert ratio.returncode == 0, ratio.stderr
    tasks = json.loads(ratio.stdout)["per_class"]
    assert set(tasks["SentimentUser"]["tasks"]) == {
        "sentiment_single", "sentiment_batch", "sentiment_long", "sentiment_attention"
    }  # fmt: skip
    assert set(tasks["QAUser"]["tasks"]) == {"qa_single", "qa_long", "qa_batch", "qa_attention"}
