"""Rate limiting: the token buckets themselves, then the tight app's limit (5/s, burst 100) over real HTTP."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from service.http.rate_limit import TokenBuckets
from tests.service.conftest import TIGHT_AUTH


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_the_burst_then_the_rate():
    clock = FakeClock()
    buckets = TokenBuckets(per_second=2, burst=3, clock=clock)
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a") == pytest.approx(0.5)  # empty: the next token is half a second away
    clock.now += 0.5
    assert buckets.take("a") == 0.0
    assert buckets.take("b") == 0.0  # another client has its own bucket
    clock.now += 60
    assert [buckets.take("a") for _ in range(4)][-1] > 0  # refills to the burst, never beyond


def test_refused_requests_do_not_dig_the_hole_deeper():
    clock = FakeClock()
    buckets = TokenBuckets(per_second=1, burst=1, clock=clock)
    buckets.take("a")
    waits = [buckets.take("a") for _ in range(50)]
    assert max(waits) == pytest.approx(1.0)
    clock.now += 1
    assert buckets.take("a") == 0.0


def test_client_table_is_bounded():
    buckets = TokenBuckets(per_second=1, burst=1, max_clients=100, clock=FakeClock())
    for i in range(10_000):
        buckets.take(f"10.0.{i // 256}.{i % 256}")
    assert len(buckets) == 100
    assert buckets.take("10.0.39.15") > 0  # the newest (i = 9999) is remembered: its one token is spent ...
    assert buckets.take("10.0.0.0") == 0.0  # ... while the oldest was forgotten and starts again with a full bucket


@pytest.mark.integration
def test_tight_app_limits_each_client_address(service_url):
    """200 requests at once from one client without a key: ~100 reach the key check (401), the rest get 429.

    The client's address comes from X-Forwarded-For (the tight app trusts it, as behind a TLS-terminating front
    proxy: behind HAProxy the peer address is always HAProxy's). Limiting comes before the key check, so it
    also throttles key guessing; another client is not affected, and a forged first entry does not help.
    """
    client = {"X-Forwarded-For": "198.51.100.1, 203.0.113.7"}  # the front proxy appended the real one, last

    async def burst() -> tuple[list[httpx.Response], float]:
        limits = httpx.Limits(max_connections=20)
        async with httpx.AsyncClient(base_url=service_url, limits=limits, timeout=30, headers=client) as http:
            started = time.monotonic()
            replies = await asyncio.gather(*(http.post("/tight/v1/sentiment", json={"text": "x"}) for _ in range(200)))
            return list(replies), time.monotonic() - started

    replies, seconds = asyncio.run(burst())
    statuses = [reply.status_code for reply in replies]
    assert set(statuses) == {401, 429}, statuses
    assert 100 <= statuses.count(401) <= 100 + 5 * seconds + 1
    for reply in replies:
        if reply.status_code == 429:
            assert reply.json()["error"]["code"] == "rate_limited"
            assert reply.headers["retry-after"] == "1"
    forged = {"X-Forwarded-For": "203.0.113.7, 198.51.100.2", **TIGHT_AUTH}  # same first entry, another client
    assert httpx.post(f"{service_url}/tight/v1/sentiment", json={"text": "fine"}, headers=forged).status_code == 200
    time.sleep(1.1)
    again = httpx.post(f"{service_url}/tight/v1/sentiment", json={"text": "x"}, headers=client)
    assert again.status_code == 401  # a token came back after the Retry-After
