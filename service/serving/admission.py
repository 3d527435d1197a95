"""The wait limit a task request is admitted under: generous at normal load, tight while a flood lasts.

Why not one fixed limit: a limit low enough to keep the accepted requests' latency near the machine's under a
flood (3x capacity) refuses requests in the busy moments of normal load, where a few big requests briefly queue a
second or more of work; one high enough for those lets every request wait that long under a flood.

What tells them apart, after CoDel (Nichols and Jacobson, "Controlling Queue Delay", 2012): a burst's queue
drains, a flood's stands. Each admission decision is a sample of the wait a request would see. The queue stands
when, for a whole interval, every request found at least the target wait and requests kept coming: at least
MIN_REQUESTS in the interval, half of them in each half of it. Without that, a minimum over a handful of samples
(a few requests behind one big one) or over one burst of them (60 requests at once, then quiet) would pass for a
flood. A flood of fewer, bigger requests does not bring that many in one interval; it shows when the queue,
having stood at the target for at least an interval and MIN_REQUESTS requests, reaches the generous limit
itself, so that counts as well. While the queue stands, the tight limit applies; it holds until no request has
found more than the tight limit for CALM_INTERVALS intervals. Under a flood the tight limit refuses requests
every few milliseconds, so a long calm means the flood is over, while a short one (a client that stalled, then
sends its backlog at once) must not open the generous limit to a flood that is still coming.

Knows nothing of HTTP or the batch queue: it is given waits, the live settings and a clock.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

from service.settings import BatchSettings

MIN_REQUESTS = 10  # within the last interval, half in each half of it, for its minimum to say the queue stood
CALM_INTERVALS = 10  # intervals without a request over the tight limit before the generous limit is back


class WaitLimit:
    """One task replica's admission limit, judged anew at every admission decision."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._standing_since: float | None = None  # first request of the current run that found the target
        self._recent: deque[float] = deque()  # when the run's requests within the last interval came
        self._run_requests = 0  # requests in the run so far
        self._overloaded = False
        self._last_over = 0.0  # while overloaded: when a request last found more than the tight limit

    @property
    def overloaded(self) -> bool:
        return self._overloaded

    def limit_s(self, settings: BatchSettings, deadline_s: float) -> float:
        """The limit in force now for a request with `deadline_s` left."""
        if self._overloaded and settings.overload_queue_wait_s is not None:
            return settings.overload_queue_wait_s
        return settings.generous_limit_s(deadline_s)

    def refresh(self, settings: BatchSettings, deadline_s: float) -> float:
        """The limit in force now, with no request to judge: after a flood, a replica left idle is calm once the
        calm intervals have passed, not only when the next request comes (the gauge reads this between requests)."""
        if self._overloaded and self._calm(self._clock(), settings):
            self._overloaded = False
        return self.limit_s(settings, deadline_s)

    def _calm(self, now: float, settings: BatchSettings) -> bool:
        """No request has found more than the tight limit for CALM_INTERVALS intervals: the flood is over."""
        return now - self._last_over >= CALM_INTERVALS * settings.overload_interval_s

    def judge(self, wait_s: float, settings: BatchSettings, deadline_s: float) -> float:
        """Record that a request with `deadline_s` left would wait `wait_s` now, and return the limit it is to be
        admitted under."""
        if settings.overload_queue_wait_s is None:  # off, perhaps turned off live: forget what was seen
            self._overloaded = False
            self._forget_run()
            return settings.generous_limit_s(deadline_s)
        now = self._clock()
        if self._overloaded:
            if wait_s > settings.overload_queue_wait_s:
                self._last_over = now
            elif self._calm(now, settings):
                self._overloaded = False
        elif self._standing(now, wait_s, settings, deadline_s):
            self._overloaded, self._last_over = True, now
            self._forget_run()
        return self.limit_s(settings, deadline_s)

    def _standing(self, now: float, wait_s: float, settings: BatchSettings, deadline_s: float) -> bool:
        """Whether, with this request, the queue has stood at the target for a whole interval."""
        if wait_s < settings.overload_target_s:
            self._forget_run()
            return False
        interval = settings.overload_interval_s
        if self._standing_since is None:
            self._standing_since = now
        self._recent.append(now)
        self._run_requests += 1
        while self._recent[0] < now - interval:
            self._recent.popleft()
        if now - self._standing_since < interval:
            return False
        if wait_s > settings.generous_limit_s(deadline_s) and self._run_requests >= MIN_REQUESTS:
            return True  # the generous limit refuses: the queue stood and still grows
        earlier, middle = 0, now - interval / 2
        for t in self._recent:  # in order of arrival
            if t >= middle:
                break
            earlier += 1
        return min(earlier, len(self._recent) - earlier) >= MIN_REQUESTS // 2

    def _forget_run(self) -> None:
        self._standing_since = None
        self._recent.clear()
        self._run_requests = 0


class QueueAdmission:
    """Refuse a task request when the work queued ahead of it would make it wait past the limit in force:
    max_queue_wait_s (or, where that is None, what is left of the request's deadline), or overload_queue_wait_s
    while the queue stands. The accepted requests' latency stays bounded, however many more arrive. It also tells
    the batch queue how many admitted requests are still on their way to it (reading, parsing, tokenizing), so a
    batch waits for company only when company is coming.

    `models` is the replica's TaskModels (anything with expected_wait_s, admission_limit, batching, announce and
    withdraw); the HTTP edge asks `admit` before reading a request's body, the route asks `fits` once it knows the
    request's own work."""

    def __init__(self, models: Callable[[], Any]) -> None:
        self._models = models

    def admit(self, deadline_s: float) -> str | None:
        """None to let in a request with `deadline_s` left, or why it is refused (the edge answers 503 with
        Retry-After)."""
        models = self._models()
        wait = models.expected_wait_s()
        limit = models.admission_limit(wait, deadline_s)
        if wait > limit:
            normal = models.batching.generous_limit_s(deadline_s)
            why = f"limit {limit:g} s" if limit == normal else f"limit {limit:g} s while overloaded, else {normal:g} s"
            if models.batching.max_queue_wait_s is None and limit == normal:
                why = f"more than the {deadline_s:.3g} s left of its deadline"
            return f"about {wait:.2f} s of work is queued on this replica ({why}); retry later"
        models.announce()
        return None

    def release(self) -> None:
        self._models().withdraw()


def finish_late(wait_s: float, own_s: float, deadline_s: float) -> str | None:
    """Why a request whose own work takes `own_s` behind `wait_s` of queued work would miss its deadline, or None.
    Deadline admission: the work ahead of a long request is no reason to refuse it, only not finishing in time."""
    if wait_s + own_s <= deadline_s:
        return None
    return (
        f"about {wait_s:.2f} s of queued work and {own_s:.2f} s of its own would end past the {deadline_s:.3g} s left "
        "of its deadline; retry later"
    )
