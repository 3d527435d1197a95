"""An in-process batch queue: jobs from many requests share forward passes, first come first served.

Why not `@serve.batch`: its token-aware mode (`batch_size_fn`) puts the job that does not fit at the back of
the queue, so a long request can be overtaken forever, and it sizes the batch again for every arrival. Here a
request's jobs enter the queue together and batches are cut from its head, so an earlier request's jobs always
run before a later one's: under load, early requests finish early instead of all finishing late together.

One worker thread runs the batches (the model is not re-entrant, and the event loop stays free to accept and
refuse requests meanwhile). The queue knows how much work waits in it and how fast batches go, so it can say
how long a new request would wait: the admission check refuses by that, not by a fixed count (and under what
limit: service/serving/admission.py).
Knows nothing of Ray, HTTP or tensors.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

logger = logging.getLogger(__name__)


class BatchFailed(Exception):
    """The model failed on a batch: every request in it gets this, its cause attached (and logged once)."""


class Job(Protocol):
    @property
    def tokens(self) -> int: ...


J = TypeVar("J", bound=Job)
Out = TypeVar("Out")


@dataclass(frozen=True)
class BatchLimits:
    max_batch_size: int  # jobs per batch
    token_budget: int  # real tokens per batch (the engine cuts it further into padding-free passes)
    wait_s: float  # how long the first job of a batch may wait for company


@dataclass(frozen=True)
class BatchReport:
    """What the worker says about one batch: its size and its time on the model."""

    jobs: int
    tokens: int
    seconds: float


@dataclass(frozen=True)
class Timing:
    """Where a request's time went, in seconds: waiting for its first batch, then on the model until its last."""

    queue_s: float
    inference_s: float


class BatchCost:
    """What a batch costs: a fixed part per batch plus a part per token, fitted to the batches run.

    A batch of one short text is mostly fixed cost, a full batch mostly per-token cost; a single tokens/s figure
    would call the queue slow after a run of tiny batches and fast after big ones. Least squares over recent
    batches (exponentially forgotten), starting from the speed measured when the model loaded.
    """

    def __init__(self, tokens_per_s: float, memory: float = 0.95) -> None:
        self.fixed_s = 0.0
        self.per_token_s = 1.0 / tokens_per_s
        self._memory = memory
        self._n = self._x = self._y = self._xx = self._xy = 0.0

    def observe(self, tokens: int, seconds: float) -> None:
        m = self._memory
        self._n = m * self._n + 1
        self._x = m * self._x + tokens
        self._y = m * self._y + seconds
        self._xx = m * self._xx + tokens * tokens
        self._xy = m * self._xy + tokens * seconds
        mean_x, mean_y = self._x / self._n, self._y / self._n
        spread = self._xx / self._n - mean_x * mean_x
        if spread > 1e-9 * max(1.0, mean_x * mean_x) and self._n > 2:
            slope = (self._xy / self._n - mean_x * mean_y) / spread
            if slope > 0 and mean_y - slope * mean_x >= 0:
                self.per_token_s, self.fixed_s = slope, mean_y - slope * mean_x
                return
            if slope > 0:
                # A slope steeper than the batches allow (they would need a negative fixed part): batches of
                # nearly one size, whose timing noise the fit read as a per-token cost (long QA documents cut into
                # full batches made it 8x the real one, and admission refused them). No fixed part, then, and the
                # per-token cost through the origin: the typical batch is estimated at what it took.
                self.per_token_s, self.fixed_s = self._xy / self._xx, 0.0
                return
        # Batches all alike: the parts cannot be told apart. Keep the per-token speed known (at first, the one
        # measured at load) and put the rest down to the fixed part; if they ran faster than that speed allows,
        # the speed was wrong: lower it to what they show.
        if mean_y >= self.per_token_s * mean_x:
            self.fixed_s = mean_y - self.per_token_s * mean_x
        else:
            self.per_token_s, self.fixed_s = mean_y / max(mean_x, 1.0), 0.0

    def seconds(self, tokens: float, batches: int) -> float:
        return batches * self.fixed_s + tokens * self.per_token_s

    @property
    def fitted(self) -> bool:
        """Whether any batch has been timed; until then the speed is only what was measured at load."""
        return self._n > 0

    def assume_speed(self, tokens_per_s: float) -> None:
        """Before any batch: take a speed measured again if it is faster. The load's measurement shares the cores
        with every other replica loading at the same time, so it can be half the speed of the idle model; an
        estimate that slow made admission refuse long documents it would have answered in time."""
        if not self.fitted:
            self.per_token_s = min(self.per_token_s, 1.0 / tokens_per_s)


@dataclass
class RequestSize:
    """Jobs and tokens of the requests submitted lately (moving averages): what an admitted request still on its
    way to the queue will probably bring."""

    jobs: float = 1.0
    tokens: float = 32.0

    def observe(self, jobs: int, tokens: int) -> None:
        self.jobs = 0.9 * self.jobs + 0.1 * jobs
        self.tokens = 0.9 * self.tokens + 0.1 * tokens


@dataclass
class _Slot(Generic[J, Out]):
    job: J
    future: asyncio.Future[Out]
    enqueued: float
    started: float = 0.0
    finished: float = 0.0


class Batcher(Generic[J, Out]):
    """FIFO batches of jobs under a size and a token limit, run one at a time on a worker thread."""

    def __init__(
        self,
        run: Callable[[list[J]], list[Out]],
        limits: BatchLimits,
        *,
        on_batch: Callable[[BatchReport, list[float]], None] | None = None,
        tokens_per_s: float = 5000.0,
        executor: ThreadPoolExecutor | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._run = run
        # Every reading of time (timings, the batch deadline, the wait estimate); the event loop still does the
        # waiting. Tests pass a fake one.
        self._clock = clock
        self.limits = limits
        self._on_batch = on_batch
        self._queue: deque[_Slot[J, Out]] = deque()
        self._queued_tokens = 0
        self._running_tokens = 0
        self._running_since = 0.0
        self._arrived = asyncio.Event()
        # The model's one thread; several models of a replica share one, so only one forward pass runs at a time.
        self._executor = executor or ThreadPoolExecutor(max_workers=1, thread_name_prefix="forward")
        self.cost = BatchCost(tokens_per_s)  # fitted to the batches run
        self._task: asyncio.Task | None = None
        self._announced = 0  # requests admitted and not over yet (see announce)
        self._request_size = RequestSize()
        self._submitted = 0  # of those, requests whose jobs are in the queue or on the model

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._serve(), name="batcher")

    @property
    def idle(self) -> bool:
        """Nothing queued, on the model or announced: the queue (and its model) can be let go."""
        return not self._queue and not self._running_tokens and self._submitted == 0 and self._announced == 0

    def close(self) -> None:
        """Stop serving (an unloaded model's queue): only when idle, so no request is left waiting."""
        if self._task is not None:
            self._task.cancel()
            self._task = None

    @property
    def executor(self) -> ThreadPoolExecutor:
        """The model's one thread: anything else that runs the model (health checks) goes through it too."""
        return self._executor

    def expected_wait_s(self) -> float:
        """How long a job queued now would wait before it starts: what is left of the batch on the model, the work
        queued, the work of requests admitted but still being read and tokenized (at the size requests have had
        lately), at the fitted batch cost.

        What is left, not the running batch's whole cost: counted whole, a batch as long as the limit shuts
        admission for its whole run, the next batch starts (nearly) empty, and the wait seen by admission jumps
        at every batch instead of standing where the queue stands (serving/admission.py reads it as a signal)."""
        on_the_way = max(0, self._announced - self._submitted)
        jobs = len(self._queue) + on_the_way * self._request_size.jobs
        tokens = self._queued_tokens + on_the_way * self._request_size.tokens
        running = 0.0
        if self._running_tokens:
            elapsed = self._clock() - self._running_since
            running = max(0.0, self.cost.seconds(self._running_tokens, 1) - elapsed)
        return running + self.seconds_for(jobs, tokens)

    def seconds_for(self, jobs: float, tokens: float) -> float:
        """Model time for this much work, cut into batches under the limits, at the fitted batch cost."""
        batches = max(math.ceil(jobs / self.limits.max_batch_size), math.ceil(tokens / self.limits.token_budget))
        return self.cost.seconds(tokens, batches)

    def announce(self) -> None:
        """A request was admitted and will submit its jobs soon (once read and tokenized)."""
        self._announced += 1

    def withdraw(self) -> None:
        """An announced request is over, whether it submitted jobs or not (refused, invalid, gone)."""
        self._announced -= 1

    def _company_coming(self) -> bool:
        """Whether a request is on its way to the queue: only then is a batch worth holding back for it. A lone
        client's request starts at once instead of waiting out batch_wait_timeout_s for nobody."""
        return self._announced > self._submitted

    @property
    def tokens_per_s(self) -> float:
        """The marginal speed: tokens per second of model time once a batch's fixed cost is paid."""
        return 1.0 / self.cost.per_token_s

    async def submit(self, jobs: Sequence[J]) -> tuple[list[Out], Timing]:
        """Queue one request's jobs together and wait for all their outputs (in order).

        Cancelled (the client left, or a timeout): the jobs not yet started are skipped, never run.
        """
        self.start()
        loop = asyncio.get_running_loop()
        now = self._clock()
        slots = [_Slot(job, loop.create_future(), now) for job in jobs]
        self._queue.extend(slots)
        self._queued_tokens += sum(job.tokens for job in jobs)
        self._request_size.observe(len(jobs), sum(job.tokens for job in jobs))
        self._submitted += 1
        self._arrived.set()
        try:
            outputs = await asyncio.gather(*(slot.future for slot in slots))
        except BaseException:
            for slot in slots:
                slot.future.cancel()
            raise
        finally:
            self._submitted -= 1
        started = min(slot.started for slot in slots)
        finished = max(slot.finished for slot in slots)
        return list(outputs), Timing(queue_s=started - now, inference_s=finished - started)

    def _take_batch(self) -> list[_Slot[J, Out]]:
        batch: list[_Slot[J, Out]] = []
        tokens = 0
        while self._queue and len(batch) < self.limits.max_batch_size:
            slot = self._queue[0]
            if slot.future.done():  # cancelled while queued: drop it, its work is nobody's
                self._queue.popleft()
                self._queued_tokens -= slot.job.tokens
                continue
            if batch and tokens + slot.job.tokens > self.limits.token_budget:
                break
            self._queue.popleft()
            self._queued_tokens -= slot.job.tokens
            tokens += slot.job.tokens
            batch.append(slot)
        return batch

    def _batch_ready(self) -> bool:
        tokens = count = 0
        for slot in self._queue:
            count += 1
            tokens += slot.job.tokens
            if count >= self.limits.max_batch_size or tokens >= self.limits.token_budget:
                return True
        return False

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._queue:
                self._arrived.clear()
                await self._arrived.wait()
            # The head job has waited since it arrived (perhaps behind a running batch): wait only the rest.
            deadline = self._queue[0].enqueued + self.limits.wait_s
            while not self._batch_ready() and self._company_coming() and (remaining := deadline - self._clock()) > 0:
                self._arrived.clear()
                try:
                    await asyncio.wait_for(self._arrived.wait(), remaining)
                except TimeoutError:
                    break
            batch = self._take_batch()
            if not batch:
                continue
            await self._run_batch(loop, batch)

    async def _run_batch(self, loop: asyncio.AbstractEventLoop, batch: list[_Slot[J, Out]]) -> None:
        tokens = sum(slot.job.tokens for slot in batch)
        self._running_tokens = tokens
        began = self._running_since = self._clock()
        for slot in batch:
            slot.started = began
        try:
            outputs = await loop.run_in_executor(self._executor, self._run, [slot.job for slot in batch])
            if len(outputs) != len(batch):
                raise RuntimeError(f"the model returned {len(outputs)} outputs for {len(batch)} jobs")
        except Exception as exc:  # the batch failed as a whole: each of its requests gets the error
            logger.exception("batch of %d jobs failed", len(batch))
            for slot in batch:
                if not slot.future.done():
                    failed = BatchFailed(f"the batch this request was in failed ({type(exc).__name__})")
                    failed.__cause__ = exc
                    slot.future.set_exception(failed)
            return
        finally:
            self._running_tokens = 0
        finished = self._clock()
        seconds = finished - began
        self.cost.observe(tokens, seconds)
        for slot, output in zip(batch, outputs, strict=True):
            slot.finished = finished
            if not slot.future.done():  # a cancelled request's future stays cancelled
                slot.future.set_result(output)
        if self._on_batch is not None:
            self._on_batch(BatchReport(len(batch), tokens, seconds), [began - slot.enqueued for slot in batch])
