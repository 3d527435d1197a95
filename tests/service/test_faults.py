"""Faults under load, short form of loadtests/faults.py: SIGKILL the sentiment replica, then the gateway."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from loadtests.faults import run
from service.cli import APP_NAME

pytestmark = pytest.mark.integration
USERS = 4


def test_killed_replicas_are_replaced_and_no_answer_goes_astray(service_url):
    faults, sent = asyncio.run(run(service_url, APP_NAME, USERS, ["SentimentModel", "Gateway"], warmup_s=3))
    model, gateway = (fault.summary(sent) for fault in faults)

    assert sum(1 for s in sent if s.correct is False) == 0  # no request ever got another's answer
    assert sum(1 for s in sent if s.status == 200) > 50
    # The model replica: the gateway asks again, so in-flight requests wait for the new replica instead of failing.
    assert model["failed"] == 0, model
    assert model["new_process_after_s"] is not None and model["recovered_after_s"] < 30, model
    # The only gateway replica: what it held in flight is lost (Ray's proxy answers 500; at most one per user),
    # the rest wait for the new one.
    assert gateway["failed"] <= USERS, gateway
    assert gateway["new_process_after_s"] is not None and gateway["recovered_after_s"] < 30, gateway
    assert httpx.get(f"{service_url}/readyz", timeout=30).status_code == 200
