"""A real Prometheus scrapes the running service while traffic flows; its HTTP API must show the truth.

Also runs every PromQL query of the shipped Grafana dashboard against it, so no panel is silently empty.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import yaml

from loadtests.common.net import free_port
from tests.service.conftest import METRICS_PORT, TIGHT_AUTH
from tests.service.test_concurrency import distinct_texts, post_all
from tests.service.test_limits import LONG_CONTEXT
from tests.system_packages import ensure_debian_binary

pytestmark = pytest.mark.integration

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SENTIMENT_200 = (
    'sum(ray_attention_serve_requests_total{application="attention-serve-sentiment",task="sentiment",code="200"})'
)


@pytest.fixture(scope="module")
def prometheus(service_url, tmp_path_factory):
    """Prometheus from Debian, with the shipped config pointed at this Ray's metrics port, scraping every 1 s."""
    binary = ensure_debian_binary("prometheus", "prometheus")
    workdir = tmp_path_factory.mktemp("prometheus")
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [str(DEPLOY / "prometheus" / "alerts.yml")]
    config["scrape_configs"][0]["static_configs"] = [{"targets": [f"127.0.0.1:{METRICS_PORT}"]}]
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    process = subprocess.Popen(
        [binary, f"--config.file={workdir / 'prometheus.yml'}", f"--storage.tsdb.path={workdir / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=open(workdir / "prometheus.log", "w"),
    )  # fmt: skip
    api = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{api}/-/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError((workdir / "prometheus.log").read_text()[-2000:])
            time.sleep(0.3)
        yield api
    finally:
        process.terminate()
        process.wait(timeout=10)


def query(api: str, promql: str) -> list[dict]:
    reply = httpx.get(f"{api}/api/v1/query", params={"query": promql}, timeout=10).json()
    assert reply["status"] == "success", (promql, reply)
    return reply["data"]["result"]


def scalar(api: str, promql: str) -> float | None:
    result = query(api, promql)
    return float(result[0]["value"][1]) if result else None


def settled(api: str, promql: str, quiet_s: float = 14) -> float:
    """The value once it has not moved for `quiet_s` (Ray reports replica metrics every few seconds)."""
    deadline = time.monotonic() + 90
    while not query(api, 'up{job="ray"} == 1'):  # no verdict before Prometheus has scraped Ray at least once
        assert time.monotonic() < deadline, "Prometheus never scraped Ray's metrics endpoint"
        time.sleep(0.5)
    last, since = scalar(api, promql), time.monotonic()
    while time.monotonic() < deadline:
        value = scalar(api, promql)
        if value != last:
            last, since = value, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return value or 0.0  # a series that never appeared counts nothing yet
        time.sleep(1)
    raise AssertionError(f"{promql} never settled (last {last})")


def test_prometheus_counts_exactly_what_was_sent(prometheus, service_url):
    # One request first, so the series exist before the measured ones: a histogram that first appears with all
    # its counts already in has no increase for rate() to see (the test alone, on a fresh service).
    assert httpx.post(f"{service_url}/v1/sentiment", json={"text": "warm-up"}, timeout=60).status_code == 200
    before = settled(prometheus, SENTIMENT_200)
    replies = asyncio.run(post_all(service_url, "/v1/sentiment", [{"text": t} for t in distinct_texts(48)]))
    # Admission control may refuse a few of the burst (503 + Retry-After) when the replica's fitted batch cost is
    # still high from the slow batches of earlier tests; Prometheus must count exactly the 200s that were sent.
    answered = sum(r.status_code == 200 for r in replies)
    assert all(r.status_code == 200 or (r.status_code == 503 and r.headers.get("retry-after")) for r in replies)
    assert answered >= 24, [r.status_code for r in replies]
    assert settled(prometheus, SENTIMENT_200) - before == answered

    # Batches formed under that concurrency: some batch-size observations are above 1.
    batches = 'sum(ray_attention_serve_batch_size_count{task="sentiment"})'
    batches_of_one = 'sum(ray_attention_serve_batch_size_bucket{task="sentiment",le="1.0"})'
    above_one = scalar(prometheus, f"{batches} - {batches_of_one}")
    assert above_one is not None and above_one > 0

    buckets = 'rate(ray_attention_serve_request_duration_seconds_bucket{task="sentiment"}[5m])'
    p99 = scalar(prometheus, f"histogram_quantile(0.99, sum by (le) ({buckets}))")
    assert p99 is not None and math.isfinite(p99) and 0 < p99 < 30

    padded = scalar(prometheus, 'sum(ray_attention_serve_tokens_total{task="sentiment",kind="padded"})')
    real = scalar(prometheus, 'sum(ray_attention_serve_tokens_total{task="sentiment",kind="real"})')
    assert padded is not None and real is not None and 0 < real <= padded

    info = query(prometheus, 'ray_attention_serve_model_info{application=~"attention-serve-.+"} == 1')
    assert {r["metric"]["task"] for r in info} == {"sentiment", "qa"}
    assert {r["metric"]["precision"] for r in info} == {"fp32"}

    # Ray Serve's own metrics come through the same endpoint.
    assert scalar(prometheus, "sum(ray_serve_num_http_requests_total)") > 0


def test_alert_rules_are_loaded_and_healthy(prometheus):
    groups = httpx.get(f"{prometheus}/api/v1/rules", timeout=10).json()["data"]["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert len(rules) == 6
    assert all(rule["health"] == "ok" for rule in rules), [(r["name"], r.get("lastError")) for r in rules]
    firing = [r["name"] for r in rules if r["state"] == "firing"]
    assert "AttentionServeMetricsDown" not in firing


def test_every_dashboard_panel_has_data(prometheus, service_url):
    # Traffic of every kind the panels show: plain, attention maps, truncation, QA, shed (503), timed out (504).
    with httpx.Client(base_url=service_url, timeout=120) as http:
        http.post("/v1/sentiment", json={"text": "a long film. " * 300, "return_attention": True})
        http.post("/v1/qa", json={"question": "Who?", "context": "Ada wrote it.", "return_attention": True})
        slow = {"question": "What?", "context": LONG_CONTEXT}
        assert http.post("/tight/v1/qa", json=slow, headers=TIGHT_AUTH).status_code == 504
    bodies = [{"text": t * 20} for t in distinct_texts(60)]
    flood = asyncio.run(post_all(service_url, "/tight/v1/sentiment", bodies, headers=TIGHT_AUTH))
    assert 503 in {r.status_code for r in flood}
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "attention-serve.json").read_text())
    queries = [(panel["title"], target["expr"]) for panel in dashboard["panels"] for target in panel["targets"]]
    assert len(queries) >= 13

    def substitute(expr: str) -> str:
        return expr.replace("$__rate_interval", "1m").replace('"$application"', '".*"')

    deadline = time.monotonic() + 60
    empty = queries
    while empty and time.monotonic() < deadline:
        empty = [(title, expr) for title, expr in empty if not query(prometheus, substitute(expr))]
        time.sleep(2)
    assert not empty, f"panels with no data: {empty}"
    # No Grafana variable left unsubstituted ($1, $2 are label_replace's capture groups, not variables).
    assert not any(re.search(r"\$[A-Za-z_]\w*", substitute(expr)) for _, expr in queries)
