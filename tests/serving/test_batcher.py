"""The in-process batch queue, alone (no Ray, no model): order, limits, cancellation, failures, the wait estimate."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass

import pytest

from service.serving.batcher import BatchCost, BatchFailed, Batcher, BatchLimits


@dataclass(frozen=True)
class Job:
    request: str
    tokens: int


class Recorder:
    """A stand-in model that records the batches it ran (the real one is tested in tests/service/test_api.py)."""

    def __init__(self, seconds: float = 0.0, fail_on: str | None = None) -> None:
        self.batches: list[list[str]] = []
        self.seconds = seconds
        self.fail_on = fail_on
        self.threads: set[str] = set()

    def __call__(self, jobs: list[Job]) -> list[str]:
        self.threads.add(threading.current_thread().name)
        self.batches.append([job.request for job in jobs])
        time.sleep(self.seconds)
        if self.fail_on is not None and any(job.request == self.fail_on for job in jobs):
            raise ValueError("model failure")
        return [f"{job.request}:{job.tokens}" for job in jobs]


def run(coro):
    return asyncio.run(coro)


def test_each_request_gets_its_own_outputs_in_order():
    async def main():
        model = Recorder()
        batcher = Batcher(model, BatchLimits(max_batch_size=8, token_budget=1000, wait_s=0.01))
        a, b = await asyncio.gather(
            batcher.submit([Job("a", 1), Job("a", 2), Job("a", 3)]), batcher.submit([Job("b", 4), Job("b", 5)])
        )
        return model, a, b

    model, (a, timing_a), (b, _) = run(main())
    assert a == ["a:1", "a:2", "a:3"] and b == ["b:4", "b:5"]
    assert model.batches == [["a", "a", "a", "b", "b"]], "concurrent requests share one batch"
    assert timing_a.queue_s >= 0 and timing_a.inference_s >= 0
    assert model.threads and all(name.startswith("forward") for name in model.threads)


def test_an_earlier_request_is_never_overtaken():
    """Batches are cut from the head of the queue: a long early request goes before a short later one."""

    async def main():
        model = Recorder(seconds=0.01)
        batcher = Batcher(model, BatchLimits(max_batch_size=4, token_budget=100, wait_s=0.0))
        early = asyncio.ensure_future(batcher.submit([Job("early", 40) for _ in range(10)]))
        await asyncio.sleep(0)
        late = asyncio.ensure_future(batcher.submit([Job("late", 5)]))
        await asyncio.gather(early, late)
        return model

    model = run(main())
    flat = [request for batch in model.batches for request in batch]
    assert flat.index("late") > max(i for i, request in enumerate(flat) if request == "early")
    for batch in model.batches:  # the token budget: 40-token jobs go two at a time (80 ≤ 100 < 120)
        assert len(batch) <= 4
        assert sum(40 if r == "early" else 5 for r in batch) <= 100 or len(batch) == 1


def test_a_job_over_the_budget_runs_alone():
    async def main():
        model = Recorder()
        batcher = Batcher(model, BatchLimits(max_batch_size=8, token_budget=50, wait_s=0.0))
        outputs, _ = await batcher.submit([Job("big", 500), Job("small", 5)])
        return model, outputs

    model, outputs = run(main())
    assert outputs == ["big:500", "small:5"]
    assert model.batches == [["big"], ["small"]]


def test_a_cancelled_request_is_skipped_and_the_next_one_served():
    async def main():
        model = Recorder(seconds=0.05)
        batcher = Batcher(model, BatchLimits(max_batch_size=1, token_budget=100, wait_s=0.0))
        first = asyncio.ensure_future(batcher.submit([Job("first", 1)]))
        await asyncio.sleep(0.01)  # "first" is on the model now
        gone = asyncio.ensure_future(batcher.submit([Job("gone", 1), Job("gone", 1)]))
        await asyncio.sleep(0)
        gone.cancel()  # the client left while its jobs were queued
        last = await batcher.submit([Job("last", 1)])
        return model, await first, last, gone

    model, first, last, gone = run(main())
    assert gone.cancelled()
    assert first[0] == ["first:1"] and last[0] == ["last:1"]
    assert ["gone"] not in model.batches, "a cancelled request's queued jobs must not run"


def test_a_failing_batch_fails_its_requests_only():
    async def main():
        model = Recorder(fail_on="bad")
        batcher = Batcher(model, BatchLimits(max_batch_size=1, token_budget=100, wait_s=0.0))
        bad, good = await asyncio.gather(
            batcher.submit([Job("bad", 1)]), batcher.submit([Job("good", 1)]), return_exceptions=True
        )
        return bad, good

    bad, good = run(main())
    assert isinstance(bad, BatchFailed) and isinstance(bad.__cause__, ValueError)  # retryable, its cause kept
    assert good[0] == ["good:1"]


def test_wait_estimate_follows_queued_work_and_measured_speed():
    async def main():
        model = Recorder(seconds=0.02)
        batcher = Batcher(model, BatchLimits(max_batch_size=1, token_budget=1000, wait_s=0.0), tokens_per_s=1000)
        assert batcher.expected_wait_s() == 0
        pending = asyncio.ensure_future(batcher.submit([Job("x", 100) for _ in range(5)]))
        await asyncio.sleep(0)
        queued = batcher.expected_wait_s()
        await pending
        return queued, batcher

    queued, batcher = run(main())
    assert queued == pytest.approx(0.5)  # 500 tokens at the assumed 1,000 tokens/s
    assert batcher.expected_wait_s() == 0
    assert batcher.tokens_per_s > 1000  # measured: 100 tokens in ~20 ms is ~5,000 tokens/s


def test_a_batch_waits_for_company_only_when_company_is_coming():
    """A lone request starts at once; with another admitted request still on its way, the batch waits for it."""

    async def main():
        model = Recorder()
        batcher = Batcher(model, BatchLimits(max_batch_size=8, token_budget=1000, wait_s=0.5))
        began = time.perf_counter()
        await batcher.submit([Job("alone", 1)])
        alone_s = time.perf_counter() - began

        batcher.announce()  # the second request was admitted and is still being tokenized
        batcher.announce()
        first = asyncio.ensure_future(batcher.submit([Job("first", 1)]))
        await asyncio.sleep(0.05)
        second = asyncio.ensure_future(batcher.submit([Job("second", 1)]))
        await asyncio.gather(first, second)
        batcher.withdraw()
        batcher.withdraw()
        return model, alone_s

    model, alone_s = run(main())
    assert alone_s < 0.25, "nobody else was coming: the lone request must not wait out the 0.5 s batch wait"
    assert model.batches == [["alone"], ["first", "second"]]


def test_batch_cost_separates_the_fixed_part_from_the_per_token_part():
    """Tiny batches are mostly fixed cost: a run of them must not make the queue look slow per token."""
    cost = BatchCost(tokens_per_s=1000)
    for _ in range(20):
        for tokens in (10, 100, 1000):
            cost.observe(tokens, 0.010 + tokens * 0.0001)  # 10 ms per batch + 10,000 tokens/s
    assert cost.fixed_s == pytest.approx(0.010, rel=0.01)
    assert cost.per_token_s == pytest.approx(0.0001, rel=0.01)
    assert cost.seconds(2000, batches=3) == pytest.approx(0.23, rel=0.01)
    for _ in range(200):
        cost.observe(5, 0.0105)  # then only tiny batches: the per-token speed it learned stays put
    assert cost.seconds(2000, batches=3) < 0.5


def test_batch_cost_of_identical_batches_keeps_the_known_speed():
    cost = BatchCost(tokens_per_s=10_000)
    for _ in range(50):
        cost.observe(5, 0.0105)
    assert cost.per_token_s == pytest.approx(0.0001)
    assert cost.fixed_s == pytest.approx(0.01, rel=0.01)


def test_admitted_requests_still_on_their_way_count_in_the_wait():
    """A burst admitted faster than it is tokenized must not all look like an empty queue to admission."""

    async def main():
        limits = BatchLimits(max_batch_size=8, token_budget=1000, wait_s=0.0)
        batcher = Batcher(Recorder(seconds=0.1), limits, tokens_per_s=1000)
        await batcher.submit([Job("a", 100)])  # a request of one 100-token job took 0.1 s
        empty = batcher.expected_wait_s()
        for _ in range(5):
            batcher.announce()
        return empty, batcher.expected_wait_s()

    empty, with_five_coming = run(main())
    assert empty == 0
    assert with_five_coming > 0.1  # five requests of about the recent size (~40 tokens at ~1 ms a token) are coming


def test_the_wait_counts_what_is_left_of_the_running_batch():
    """Counted whole, a batch would shut admission under a tight limit for all its run (then the next batch starts
    nearly empty): the wait a new request sees falls as the batch on the model runs."""

    async def main():
        batcher = Batcher(Recorder(seconds=0.5), BatchLimits(max_batch_size=1, token_budget=1000, wait_s=0.0),
                          tokens_per_s=1000)  # fmt: skip
        pending = asyncio.ensure_future(batcher.submit([Job("x", 300)]))  # 0.3 s at the assumed speed
        await asyncio.sleep(0.02)
        early = batcher.expected_wait_s()
        await asyncio.sleep(0.15)
        later = batcher.expected_wait_s()
        await pending
        return early, later

    early, later = run(main())
    assert 0 < early < 0.3
    assert later <= early - 0.1
