"""Overload, short form: 3x the measured capacity for 10 s (loadtests/reliability/overload.py runs the full minute)."""

from __future__ import annotations

import asyncio
import json

import pytest

from loadtests.reliability.overload import run

pytestmark = pytest.mark.integration


def test_three_times_capacity_is_shed_and_the_service_recovers(service_url):
    report = asyncio.run(run(service_url, factor=3, seconds=10, timeout_s=30, baseline_s=4, capacity_s=8))
    summary = report.summary()
    assert summary["statuses"].get("503", 0) > 0, summary  # 3x capacity must be shed, not queued
    assert summary["statuses"].get("200", 0) > 0, summary
    # Only answers and clean sheds with Retry-After, every answer its request's own, accepted p99 under the
    # timeout, latency back to twice the baseline within 10 s of the load stopping.
    # The accepted-p99 ratio is a speed target: `python -m loadtests.reliability.overload` measures it on a quiet
    # machine (docs/reliability.md); under the suite's shared cores it is noise, so the test keeps to the promises.
    assert report.broken_promises(recovery_goal_s=10, latency_goal=False) == [], json.dumps(summary)


def test_a_qa_flood_of_long_and_short_contexts_is_shed_with_retry_after_and_no_wrong_answers(service_url):
    """QA admits by deadline, so a few clients' long documents are not refused (tests/serving/test_admission.py);
    a flood at 3x capacity still is: the standing queue tightens QA's limit to 2 s of queued work."""
    report = asyncio.run(run(service_url, factor=3, seconds=10, timeout_s=30, baseline_s=4, capacity_s=8, task="qa"))
    summary = report.summary()
    assert summary["statuses"].get("503", 0) > 0, summary
    assert summary["statuses"].get("200", 0) > 0, summary
    assert report.broken_promises(recovery_goal_s=10, latency_goal=False) == [], json.dumps(summary)
