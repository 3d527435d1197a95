"""The admission limit, alone, on a fake clock: generous for bursts, tight while a flood's queue stands."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from service.serving.admission import CALM_INTERVALS, MIN_REQUESTS, QueueAdmission, WaitLimit, finish_late
from service.settings import BatchSettings, QABatching, Settings

SETTINGS = BatchSettings(
    max_queue_wait_s=2.0, overload_queue_wait_s=0.25, overload_target_s=0.4, overload_interval_s=0.1
)

DEADLINE = 30.0  # seconds a request has left: request_timeout_s's default


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def judged(limit: WaitLimit, clock: Clock, arrivals: list[tuple[float, float]], settings=SETTINGS) -> list[float]:
    """The limit each request is judged under: arrivals are (seconds from now, the wait it would see)."""
    start, limits = clock.now, []
    for at, wait in arrivals:
        clock.now = start + at
        limits.append(limit.judge(wait, settings, DEADLINE))
    return limits


def flood(seconds: float, per_s: float, wait: float, after: float = 0.0) -> list[tuple[float, float]]:
    return [(after + i / per_s, wait) for i in range(int(seconds * per_s))]


def test_a_standing_queue_tightens_the_limit():
    """Three times a sentiment replica's capacity (~65 requests/s), all finding 0.6 s queued: after an interval."""
    clock = Clock()
    limit = WaitLimit(clock)
    limits = judged(limit, clock, flood(0.5, 195, 0.6))
    first_tight = limits.index(0.25)
    assert 0.1 <= first_tight / 195 < 0.15, "tight once the queue has stood for the 0.1 s interval, not before"
    assert set(limits[first_tight:]) == {0.25} and limit.overloaded


def test_a_burst_that_drains_keeps_the_generous_limit():
    """60 requests at once find a growing queue; then normal load finds it draining, then drained."""
    clock = Clock()
    limit = WaitLimit(clock)
    burst = [(i * 0.0005, 0.05 * i) for i in range(60)]  # up to 3 s queued within 30 ms
    draining = [(0.03 + i * 0.05, max(0.0, 2.0 - 0.015 * i)) for i in range(150)]  # 20 requests/s for 7.5 s
    limits = judged(limit, clock, burst + draining)
    assert set(limits) == {2.0} and not limit.overloaded


def test_a_few_requests_behind_big_ones_are_no_flood():
    """Normal mixed load: a handful of requests a second, some behind a long text, for a minute."""
    clock = Clock()
    limit = WaitLimit(clock)
    limits = judged(limit, clock, [(i * 0.2, 1.5 if i % 10 < 6 else 0.1) for i in range(300)])
    assert set(limits) == {2.0}


def test_requests_must_keep_coming_through_the_interval():
    """A queue above the target seen by one clump of requests: the minimum over it says nothing of the rest."""
    clock = Clock()
    limit = WaitLimit(clock)
    clump = [(i * 0.001, 0.6) for i in range(30)]  # 30 requests in 30 ms
    stragglers = [(0.05 + i * 0.04, 0.6) for i in range(10)]  # then 25 a second, still finding 0.6 s
    assert set(judged(limit, clock, clump + stragglers)) == {2.0}


def test_a_flood_of_big_requests_tightens_once_the_generous_limit_refuses():
    """Too few requests in an interval to count as a flood, but the queue stood and grew to the generous limit."""
    clock = Clock()
    limit = WaitLimit(clock)
    rising = [(i * 0.05, 0.5 + 0.1 * i) for i in range(MIN_REQUESTS + 8)]  # 20 requests/s, the queue growing
    limits = judged(limit, clock, rising)
    refused = next(i for i, (_, wait) in enumerate(rising) if wait > 2.0)
    assert limits[:refused] == [2.0] * refused
    assert limits[refused] == 0.25 and limit.overloaded


def test_one_big_request_reaching_the_generous_limit_is_no_flood():
    """A few requests find a queue that one huge request made: refused past 2 s, but the limit stays generous."""
    clock = Clock()
    limit = WaitLimit(clock)
    limits = judged(limit, clock, [(0.0, 0.1), (0.2, 2.5), (0.35, 2.3), (0.6, 2.1), (0.7, 1.9), (1.5, 1.1)])
    assert set(limits) == {2.0}


def test_the_generous_limit_comes_back_after_a_calm():
    clock = Clock()
    limit = WaitLimit(clock)
    judged(limit, clock, flood(0.5, 195, 0.6))
    assert limit.overloaded
    calm_s = CALM_INTERVALS * SETTINGS.overload_interval_s
    # The flood stops: requests now find the queue within the tight limit.
    after = judged(limit, clock, [(i * 0.05, 0.1) for i in range(1, int(calm_s / 0.05) + 3)])
    assert after[0] == 0.25, "one calm request is not the end of a flood"
    assert after[-1] == 2.0 and not limit.overloaded


def test_an_idle_replica_relaxes_without_a_request():
    """After a flood nothing comes: the limit (and the gauge the health check renews from it) goes back to the
    generous one once the calm has passed, not at the next request."""
    clock = Clock()
    limit = WaitLimit(clock)
    judged(limit, clock, flood(0.5, 195, 0.6))
    calm_s = CALM_INTERVALS * SETTINGS.overload_interval_s
    clock.now += calm_s / 2
    assert limit.refresh(SETTINGS, DEADLINE) == 0.25 and limit.overloaded
    clock.now += calm_s / 2
    assert limit.refresh(SETTINGS, DEADLINE) == 2.0 and not limit.overloaded


def test_a_short_pause_in_the_flood_keeps_the_limit_tight():
    """A client that stalls for half a second and then sends its backlog at once must meet the tight limit."""
    clock = Clock()
    limit = WaitLimit(clock)
    judged(limit, clock, flood(0.5, 195, 0.6))
    limits = judged(limit, clock, [(0.5, 0.0)] + flood(0.2, 1000, 0.9, after=0.5))
    assert set(limits) == {0.25}


def test_each_request_over_the_tight_limit_restarts_the_calm():
    clock = Clock()
    limit = WaitLimit(clock)
    judged(limit, clock, flood(0.5, 195, 0.6))
    # Every 0.5 s a request still finds more than the tight limit: never a whole second of calm.
    limits = judged(limit, clock, [(i * 0.1, 0.3 if i % 5 == 4 else 0.1) for i in range(1, 60)])
    assert set(limits) == {0.25}


def test_off_means_the_generous_limit_always_and_turning_it_off_live_resets():
    clock = Clock()
    limit = WaitLimit(clock)
    off = BatchSettings(max_queue_wait_s=2.0)
    assert set(judged(limit, clock, flood(0.5, 195, 0.6), off)) == {2.0}
    judged(limit, clock, flood(0.5, 195, 0.6))
    assert limit.overloaded
    assert limit.judge(0.6, off, DEADLINE) == 2.0 and not limit.overloaded


def test_the_interval_is_live():
    """A longer interval (user_config) needs the queue to stand longer before the limit tightens."""
    clock = Clock()
    limit = WaitLimit(clock)
    slow = SETTINGS.model_copy(update={"overload_interval_s": 0.4})
    limits = judged(limit, clock, flood(0.6, 195, 0.6), slow)
    assert limits.index(0.25) / 195 >= 0.4


def test_the_overload_limit_must_be_the_tighter_one():
    with pytest.raises(ValidationError, match="must not exceed"):
        BatchSettings(max_queue_wait_s=0.5, overload_queue_wait_s=1.0)
    assert Settings().sentiment.batching.overload_queue_wait_s == 0.25
    assert Settings().qa.batching.overload_queue_wait_s == 2.0  # under QA's deadline admission


class FakeModels:
    """What QueueAdmission asks of a replica's TaskModels: its queued wait, its limit, its announcements."""

    def __init__(self, wait: float, limit: WaitLimit) -> None:
        self.wait, self.announced, self.batching, self._limit = wait, 0, SETTINGS, limit

    def expected_wait_s(self) -> float:
        return self.wait

    def admission_limit(self, wait_s: float, deadline_s: float) -> float:
        return self._limit.judge(wait_s, self.batching, deadline_s)

    def announce(self) -> None:
        self.announced += 1

    def withdraw(self) -> None:
        self.announced -= 1


def test_queue_admission_refuses_under_the_limit_in_force_and_says_which():
    clock = Clock()
    models = FakeModels(0.6, WaitLimit(clock))
    admission = QueueAdmission(lambda: models)
    assert admission.admit(DEADLINE) is None and models.announced == 1  # 0.6 s is within the generous 2 s
    admission.release()
    assert models.announced == 0
    for _ in range(MIN_REQUESTS * 3):  # a flood: the queue stands at 0.6 s
        clock.now += 0.005
        refusal = admission.admit(DEADLINE)
    assert refusal is not None and "limit 0.25 s while overloaded, else 2 s" in refusal
    models.wait = 3.0
    models.batching = BatchSettings(max_queue_wait_s=2.0)  # turned off: the generous limit, said plainly
    assert "(limit 2 s)" in admission.admit(DEADLINE)


def test_deadline_admission_lets_in_whatever_would_finish_in_time_and_says_why_otherwise():
    """QA (max_queue_wait_s None): long requests ahead are no reason to refuse, only missing the deadline is."""
    models = FakeModels(12.0, WaitLimit(Clock()))
    models.batching = QABatching()
    admission = QueueAdmission(lambda: models)
    assert admission.admit(DEADLINE) is None  # 12 s of long papers ahead: the old 5 s limit refused this
    assert admission.admit(10.0) is not None  # the client gives it 10 s: refused at once, not answered too late
    assert "more than the 10 s left of its deadline" in admission.admit(10.0)
    assert finish_late(12.0, 6.0, DEADLINE) is None
    late = finish_late(12.0, 20.0, DEADLINE)
    assert late is not None and "20.00 s of its own would end past the 30 s left" in late


def test_a_closed_loop_over_long_documents_is_no_flood_but_a_qa_flood_is():
    """QA's defaults: eight clients asking about long papers (one answer every ~0.6 s, each finding up to 25 s
    queued) keep deadline admission for ten minutes; 25 requests a second finding 3 s queued are a flood within
    the 1 s interval."""
    qa = QABatching()
    clock = Clock()
    limit = WaitLimit(clock)
    closed_loop = [(i * 0.6, 5.0 + 20.0 * (i % 7) / 6) for i in range(1000)]
    assert set(judged(limit, clock, closed_loop, qa)) == {DEADLINE} and not limit.overloaded
    limit = WaitLimit(clock)
    limits = judged(limit, clock, flood(3, 25, 3.0), qa)
    first_tight = limits.index(qa.overload_queue_wait_s)
    assert 1.0 <= first_tight / 25 < 1.2 and limit.overloaded
