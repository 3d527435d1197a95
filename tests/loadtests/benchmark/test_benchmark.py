"""The side-by-side benchmark's parts: wrk's output, the body file, the service's token counters, the target
verdicts, stopping a server's whole process tree, and one short real wrk run against a tiny local server.

Nothing here asserts a speed: the machine is shared and noisy. The wrk run checks counts and that the
percentiles are ordered, not how fast anything was.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psutil
import pytest

from loadtests.benchmark import servers
from loadtests.benchmark.benchmark import (
    TEXTS_PER_REQUEST,
    EngineFigure,
    Padding,
    Results,
    Row,
    Target,
    padding_share,
    parse_tokens,
    targets,
    workloads,
)
from loadtests.benchmark.wrk import MARKER, WrkResult, parse_output, run_wrk, write_bodies
from loadtests.common.net import free_port

WRK_STDOUT = f"""Running 2s test @ http://127.0.0.1:38010/v1/sentiment
  1 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.20ms  310.00us   4.10ms   80.00%
  6512 requests in 2.00s, 0.98MB read
  Non-2xx or 3xx responses: 2170
Requests/sec:   3255.80
{MARKER}{{"requests": 6512, "duration_us": 2000125, "socket_errors": 1, "non2xx": 2170, "p50_us": 1150, "p99_us": 3980}}
"""


def test_wrk_output_is_read_from_the_lua_line():
    result = parse_output(WRK_STDOUT, client_cpu_s=0.5)
    assert result == WrkResult(6512, 2.000125, 1.15, 3.98, 1, 2170, 0.5)
    assert result.errors == 2171
    assert result.rps == pytest.approx(6512 / 2.000125)
    assert result.client_cpu_ms_per_request == pytest.approx(500 / 6512)


def test_wrk_output_without_the_lua_line_is_an_error():
    with pytest.raises(RuntimeError, match="no result line"):
        parse_output("Running 2s test @ http://127.0.0.1:1/\nunable to connect\n")


def test_body_file_has_one_compact_json_body_per_line(tmp_path):
    bodies = [
        {"text": "a warm, funny film"},
        {"text": ["déjà vu", "línea\ncon salto"]},
        {"question": "q", "context": "c"},
    ]
    path = tmp_path / "bodies.jsonl"
    assert write_bodies(bodies, path) == 3
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == bodies
    assert "déjà vu" in lines[1]  # UTF-8 as is, not \u escapes: the same bytes every server parses
    with pytest.raises(ValueError):
        write_bodies([], path)


def test_workloads_are_distinct_and_shaped_as_the_rows_say():
    loads = workloads(single=50, batched=4, qa=10)
    singles = [b["text"] for b in loads["single"].bodies]
    assert len(set(singles)) == 50
    assert all(len(b["text"]) == TEXTS_PER_REQUEST for b in loads["batch32"].bodies)
    batched = [t for b in loads["batch32"].bodies for t in b["text"]]
    assert len(set(batched)) == len(batched) and not set(batched) & set(singles)
    assert loads["batch32"].items(loads["batch32"].bodies[0]) == TEXTS_PER_REQUEST


def test_each_qa_body_is_one_nearly_full_384_token_window(qa_engine):
    for body in workloads(single=1, batched=1, qa=40)["qa"].bodies:
        encoded = qa_engine.encode(body["question"], body["context"])
        assert len(encoded.windows) == 1
        assert 300 <= len(encoded.windows[0]) <= 384


EXPOSITION = """# HELP ray_attention_serve_tokens_total tokens through the encoder
# TYPE ray_attention_serve_tokens_total counter
ray_attention_serve_tokens_total{kind="real",task="sentiment",ReplicaId="a"} 900.0
ray_attention_serve_tokens_total{kind="padded",task="sentiment",ReplicaId="a"} 1000.0
ray_attention_serve_tokens_total{kind="real",task="sentiment",ReplicaId="b"} 100.0
ray_attention_serve_tokens_total{kind="padded",task="sentiment",ReplicaId="b"} 200.0
ray_attention_serve_tokens_total{kind="real",task="qa",ReplicaId="c"} 380.0
ray_attention_serve_tokens_total{kind="padded",task="qa",ReplicaId="c"} 384.0
# HELP ray_serve_num_http_requests_total requests
# TYPE ray_serve_num_http_requests_total counter
ray_serve_num_http_requests_total{route="/"} 7.0
"""


def test_token_counters_are_summed_over_replicas_and_padding_is_their_difference():
    tokens = parse_tokens(EXPOSITION)
    assert tokens == {
        ("sentiment", "real"): 1000.0,
        ("sentiment", "padded"): 1200.0,
        ("qa", "real"): 380.0,
        ("qa", "padded"): 384.0,
    }
    before = {("sentiment", "real"): 500.0, ("sentiment", "padded"): 600.0}
    assert padding_share(before, tokens, "sentiment") == (500.0, 600.0, pytest.approx(100 / 600))


def test_padding_is_none_without_the_metric():
    assert parse_tokens("# HELP other counter\n# TYPE other counter\nother_total 3.0\n") == {}
    assert padding_share({}, {}, "sentiment") == (0.0, 0.0, None)


@pytest.mark.parametrize(
    ("target", "verdict"),
    [
        (Target("ratio", 3.2, ">=", 3.0), "PASS"),
        (Target("ratio", 2.9, ">=", 3.0), "FAIL"),
        (Target("p99", 80.0, "<", 80.0, " ms"), "FAIL"),
        (Target("p99", 79.9, "<", 80.0, " ms"), "PASS"),
        (Target("p50", 12.0, "<=", 12.0, " ms"), "PASS"),
        (Target("padding", 0.04, "<=", 0.10, "%"), "PASS"),
        (Target("ratio", None, ">=", 2.0), "n/a"),
        (Target("p99", 50.0, "<", None, " ms"), "n/a"),
        (Target("ratio", 5.0, ">=", 3.0, note="service c=16 had 4 errors"), "FAIL"),
    ],
)
def test_target_verdicts(target, verdict):
    assert target.verdict() == verdict
    assert target.line().endswith(f"**{verdict}**" + (f" ({target.note})" if target.note else ""))


def test_target_line_shows_shares_as_percent():
    assert Target("qa, c=4: service / engine ceiling", 0.912, ">=", 0.85, "%").line() == (
        "- qa, c=4: service / engine ceiling: 91.2 %, target >= 85.0 %: **PASS**"
    )


def row(server: str, workload: str, c: int, rps: float, p50: float, p99: float, errors: int = 0, items=1.0) -> Row:
    return Row(server, workload, c, WrkResult(int(rps * 10), 10.0, p50, p99, 0, errors, 0.1), items)


def test_targets_from_one_run():
    results = Results(
        rows=[
            row("service", "single", 1, 100, 12.0, 20.0),
            row("service", "single", 16, 400, 40.0, 60.0),
            row("service", "single", 64, 420, 150.0, 200.0, errors=3),
            row("naive", "single", 1, 60, 15.0, 30.0),
            row("naive", "single", 16, 100, 160.0, 300.0),
            row("naive", "single", 64, 100, 640.0, 900.0),
            row("tutorial", "single", 1, 40, 25.0, 50.0),
            row("tutorial", "single", 16, 150, 100.0, 200.0),
            row("tutorial", "single", 64, 250, 250.0, 400.0),
            row("service", "batch32", 4, 10, 400.0, 500.0, items=32),
            row("service", "qa", 4, 18, 220.0, 300.0),
        ],
        engine=[
            EngineFigure("single", "bf16", 6.0, 400.0, 64, 1.0),
            EngineFigure("single", "fp32", 9.0, 190.0, 16, 1.0),
            EngineFigure("batch32", "bf16", 110.0, 400.0, 2, 32.0),
            EngineFigure("qa", "bf16", 60.0, 20.0, 8, 1.0),
        ],
        padding=[Padding("one text per request", 900.0, 1000.0, 0.1), Padding("QA windows", 0.0, 0.0, None)],
        batch_wait_ms=5.0,
    )
    verdicts = {t.label: t.verdict() for t in targets(results)}
    assert verdicts == {
        "one text, c=16: service / naive req/s": "PASS",  # 4.0
        "one text, c=16: service p99 vs naive p99": "PASS",
        "one text, c=64: service / naive req/s": "FAIL",  # 4.2, but 3 of its requests failed
        "one text, c=64: service p99 vs naive p99": "FAIL",
        "one text, c=1: service / tutorial req/s": "PASS",  # 2.5
        "one text, c=16: service / tutorial req/s": "PASS",  # 2.67
        "one text, c=64: service / tutorial req/s": "FAIL",  # 1.68
        "one client: service p50 vs naive p50": "PASS",
        "one client: service p50 vs engine single + batch wait + 3 ms": "PASS",  # 12 <= 6 + 5 + 3
        "batch32, c=4: service / engine ceiling": "PASS",  # 320 / 400 texts/s = 80 %
        "qa, c=4: service / engine ceiling": "PASS",  # 18 / 20 = 90 %
        "padding, one text per request": "PASS",  # exactly 10 %
        "padding, QA windows": "n/a",
    }


def test_a_server_is_stopped_with_every_process_it_started(tmp_path):
    # Background jobs of a non-interactive shell ignore SIGINT, like a Ray worker that outlives its driver:
    # stop() must find them by session and kill them by PID.
    process = subprocess.Popen(["sh", "-c", "sleep 300 & sleep 300 & wait"], start_new_session=True)
    time.sleep(0.5)
    running = servers.Running(servers.Server("sh", [], 0, "/"), process, tmp_path / "log")
    started = servers.session_processes(process.pid)
    assert len(started) == 3
    servers.stop(running, grace_s=2)
    assert not [p.pid for p in started if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


class TinyHandler(BaseHTTPRequestHandler):
    """Answers 200, or 503 for a body whose text is "bad"; counts what it answered."""

    protocol_version = "HTTP/1.1"
    wbufsize = 65536  # one write per response: no delayed-ACK stalls between header and body
    answered = 0
    lock = threading.Lock()

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        reply = b'{"ok": true}'
        self.send_response(503 if body["text"] == "bad" else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)
        with TinyHandler.lock:
            TinyHandler.answered += 1

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def tiny_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), TinyHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    TinyHandler.answered = 0
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_wrk_counts_requests_and_failures_against_a_real_server(tiny_server, tmp_path):
    bodies = tmp_path / "bodies.jsonl"
    write_bodies([{"text": "fine"}, {"text": "good"}, {"text": "bad"}], bodies)
    connections = 4
    result = run_wrk(tiny_server + "/v1/sentiment", bodies, connections, seconds=2)
    assert result.requests > 0
    # The server answered every counted request, plus at most the ones in flight when wrk stopped.
    assert result.requests <= TinyHandler.answered <= result.requests + connections
    assert result.socket_errors == 0
    assert abs(result.non2xx - result.requests / 3) <= connections + 1  # every third body is refused
    assert result.seconds >= 1.9
    assert 0 < result.p50_ms <= result.p99_ms
    assert result.client_cpu_s > 0


def test_real_sentences_replace_the_made_up_reviews(tmp_path):
    """`--sentences` takes SST-2's TSV (header and labels dropped) or plain lines; each request's text distinct."""
    from loadtests.benchmark.benchmark import read_sentences, workloads

    tsv = tmp_path / "dev.tsv"
    tsv.write_text("sentence\tlabel\nit 's a charming journey .\t1\nunfunny and lifeless .\t0\n")
    sentences = read_sentences(tsv)
    assert sentences == ["it 's a charming journey .", "unfunny and lifeless ."]
    loads = workloads(single=4, batched=1, qa=1, sentences=sentences)
    texts = [body["text"] for body in loads["single"].bodies]
    assert texts[0].startswith("it 's a charming journey .") and texts[1].startswith("unfunny")
    assert len(set(texts)) == 4 and "real sentences" in loads["single"].title
