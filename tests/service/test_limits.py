"""Overload and timeouts, on the tight application (one-slot queues, 1 s timeout) mounted at /tight."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.service.conftest import TIGHT_AUTH, TIGHT_KEY

pytestmark = pytest.mark.integration


def test_overload_is_shed_quickly_with_503_and_retry_after(service_url):
    async def flood() -> list[tuple[httpx.Response, float]]:
        limits = httpx.Limits(max_connections=60)
        async with httpx.AsyncClient(base_url=service_url, timeout=60, limits=limits, headers=TIGHT_AUTH) as http:

            async def one(i: int) -> tuple[httpx.Response, float]:
                started = time.monotonic()
                reply = await http.post("/tight/v1/sentiment", json={"text": f"review number {i} " * 40})
                return reply, time.monotonic() - started

            return await asyncio.gather(*(one(i) for i in range(60)))

    outcomes = asyncio.run(flood())
    statuses = [reply.status_code for reply, _ in outcomes]
    assert set(statuses) <= {200, 503, 504}, statuses
    shed = [(reply, seconds) for reply, seconds in outcomes if reply.status_code == 503]
    assert shed, "60 concurrent requests into a 3-slot deployment were never shed"
    assert statuses.count(200) >= 1
    for reply, seconds in shed:
        assert reply.headers["retry-after"] == "2"
        assert reply.json()["error"]["code"] == "overloaded"
        assert seconds < 5, "shedding must be fast, not after waiting in a queue"


# About 50 windows of 384 tokens: seconds of model time against the tight app's 1 s timeout.
LONG_CONTEXT = " ".join(f"Paragraph {i} tells of the harbour, the ships and the weather." for i in range(1000))


def test_request_past_its_timeout_gets_504(service_url):
    context = LONG_CONTEXT
    with httpx.Client(base_url=service_url, timeout=60, headers=TIGHT_AUTH) as http:
        started = time.monotonic()
        reply = http.post("/tight/v1/qa", json={"question": "What does it tell of?", "context": context})
        elapsed = time.monotonic() - started
        assert reply.status_code == 504, reply.text
        assert reply.json()["error"]["code"] == "timeout"
        assert elapsed < 5
        # The tight app recovers: once the abandoned work drains, a small request is answered again.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            small = http.post("/tight/v1/qa", json={"question": "Where?", "context": "In the harbour."})
            if small.status_code == 200:
                break
            time.sleep(1)
        assert small.status_code == 200


def test_body_limit_is_per_application(service_url):
    body = {"text": "a long but acceptable review " * 2500}  # ~72 KB: over /tight's 64 KiB, under the default
    with httpx.Client(base_url=service_url, timeout=60) as http:
        assert http.post("/v1/sentiment", json=body).status_code == 200
        refused = http.post("/tight/v1/sentiment", json=body, headers=TIGHT_AUTH)
    assert refused.status_code == 413
    assert "65536" in refused.json()["error"]["message"]


def test_content_type_is_checked_under_a_route_prefix(service_url):
    headers = {"Content-Type": "text/plain", **TIGHT_AUTH}
    reply = httpx.post(f"{service_url}/tight/v1/sentiment", content=b"text=hi", headers=headers)
    assert reply.status_code == 415


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-API-Key": "wrong"}, {"Authorization": "Bearer wrong"}, {"Authorization": TIGHT_KEY}],
    ids=["missing", "wrong-x-api-key", "wrong-bearer", "no-bearer-prefix"],
)
def test_api_key_is_required_when_set(service_url, headers):
    reply = httpx.post(f"{service_url}/tight/v1/sentiment", json={"text": "fine"}, headers=headers)
    assert reply.status_code == 401
    assert reply.json()["error"]["code"] == "unauthorized"
    assert reply.headers["www-authenticate"] == "Bearer"


def test_api_key_lets_requests_through_and_stays_out_of_logs(service_url):
    import ray

    bearer = {"Authorization": f"Bearer {TIGHT_KEY}"}
    assert httpx.post(f"{service_url}/tight/v1/sentiment", json={"text": "fine"}, headers=bearer).status_code == 200
    assert httpx.get(f"{service_url}/tight/v1/models", headers=TIGHT_AUTH).status_code == 200
    assert httpx.get(f"{service_url}/tight/healthz").status_code == 200  # probes need no key
    assert httpx.post(f"{service_url}/v1/sentiment", json={"text": "fine"}).status_code == 200  # main app: no key
    from pathlib import Path

    log_dir = Path(ray._private.worker._global_node.get_logs_dir_path()) / "serve"
    assert not [p.name for p in log_dir.glob("*.log") if TIGHT_KEY in p.read_text(errors="replace")]
