"""Faults under load, short form of loadtests/reliability/faults.py: SIGKILL the sentiment ingress replica."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from loadtests.reliability.faults import run, targets

pytestmark = pytest.mark.integration
USERS = 4


def test_a_killed_replica_is_replaced_and_no_answer_goes_astray(service_url):
    faults, sent = asyncio.run(run(service_url, USERS, targets(["sentiment"]), warmup_s=3))
    (ingress,) = (fault.summary(sent) for fault in faults)

    assert sum(1 for s in sent if s.correct is False) == 0  # no request ever got another's answer
    assert sum(1 for s in sent if s.status == 200) > 50
    # The only replica of the task: what it held in flight is lost (at most one per user: the proxy answers
    # those), the rest wait for the new one.
    assert ingress["failed"] <= USERS, ingress
    assert ingress["new_process_after_s"] is not None and ingress["recovered_after_s"] < 30, ingress
    assert httpx.get(f"{service_url}/readyz", timeout=30).status_code == 200
