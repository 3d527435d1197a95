"""Hostile input over real HTTP (the cases live in loadtests/reliability/hostile.py, which also reports them)."""

from __future__ import annotations

import httpx
import pytest

from loadtests.reliability.hostile import CASES, crowd, send, slow_body
from loadtests.reliability.replicas import MB, replica_memory
from tests.service.conftest import MAIN_APPS, TIGHT_AUTH

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_hostile_request_gets_its_documented_answer(client, case):
    outcome = send(client, case)
    assert (outcome.status, outcome.code) == outcome.expected


def test_slow_body_is_cut_off_with_408(service_url):
    # The tight app gives bodies 2 s; the client would trickle for 20.
    status, seconds = slow_body(f"{service_url}/tight", send_for_s=20, headers=TIGHT_AUTH)
    assert status == 408
    assert seconds < 8


def test_idle_connections_do_not_starve_real_requests(service_url):
    status, seconds = crowd(service_url, connections=500)
    assert status == 200
    assert seconds < 10


def test_replica_memory_stays_bounded_under_hostile_input(service_url):
    with httpx.Client(base_url=service_url, timeout=120) as client:
        for case in CASES:  # warm-up: allocators keep what they grew to once
            send(client, case)
        before = replica_memory(MAIN_APPS.values())
        for _ in range(4):
            for case in CASES:
                assert send(client, case).ok, case.name
        after = replica_memory(MAIN_APPS.values())
    assert len(before) >= 3, before  # the front and both task ingresses (and Serve's proxy when it is Python)
    growth = {name: (after[name] - rss) / MB for name, rss in before.items()}
    # Keeping the bodies would add 80 MB (two 10 MB cases, four rounds); measured: under 10 MB each.
    assert max(growth.values()) < 40, growth
