"""A task's models in one replica: every model the task serves, the default first.

They share the replica's one model thread (one forward pass at a time, whichever model it is for), its batching
settings and its admission limit; each has its own batch queue, so a batch never mixes models. By default all are
loaded when the replica starts, so no request pays for a cold load. With `max_loaded_models` a replica holds at most
that many: the others load when a request names one (that request waits for the load, the cost /v1/models reports
as load_s), and the least recently used idle model other than the default is let go. Knows nothing of Ray or HTTP.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Generic, TypeVar

from service.engine.errors import EngineError
from service.engine.weights import check_model_dir
from service.metrics import ModelMetrics
from service.protocol import ModelInfo
from service.serving.admission import WaitLimit, finish_late
from service.serving.worker import WORKERS, InputLimits, QAWorker, SentimentWorker, describe_unloaded
from service.settings import BatchSettings, Settings
from service.tasks import Task

W = TypeVar("W", SentimentWorker, QAWorker)


class UnknownModelError(EngineError):
    """A request named a model this task does not serve."""

    code = "model_not_found"


class TaskModels(Generic[W]):
    """The models of one task in one replica, by id, least recently used first."""

    def __init__(self, task: Task, settings: Settings, batching: BatchSettings | None = None) -> None:
        self._deployment = deployment = getattr(settings, task)
        self.task = task
        self.batching = batching or deployment.batching
        self.metrics = ModelMetrics(task)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="forward")
        self.wait_limit = WaitLimit()
        self.request_timeout_s = settings.request_timeout_s  # a request's deadline unless its client sets a shorter one
        self._limits = InputLimits.from_settings(settings)
        self.max_loaded = deployment.max_loaded_models
        entries = deployment.model_entries(task)
        self.workers: OrderedDict[str, W] = OrderedDict()  # loaded, least recently used first
        for model_id, model_dir in entries[: self.max_loaded or len(entries)]:
            worker = self._new_worker(model_id, model_dir)
            if worker.id in self.workers:
                raise ValueError(f"two {task} models have the id {worker.id!r}: name them (models: {{id: dir}})")
            self.workers[worker.id] = worker
        self.default: W = next(iter(self.workers.values()))
        # Every model this task serves, loaded or not (ids are given whenever there are several).
        self.directories: dict[str, Path] = {model_id or self.default.id: d for model_id, d in entries}
        self._loading: dict[str, asyncio.Future[W]] = {}
        # What /v1/models says of a model while it is not loaded, read from its directory once (never per request).
        self._unloaded_meta = {model_id: check_model_dir(d, task) for model_id, d in self.directories.items()}
        self.metrics.set_wait_limit(self.batching.generous_limit_s(self.request_timeout_s))

    def _new_worker(self, model_id: str | None, model_dir: Path) -> W:
        return WORKERS[self.task](  # type: ignore[return-value]
            model_dir,
            model_id=model_id,
            deployment=self._deployment,
            limits=self._limits,
            batching=self.batching,
            executor=self.executor,
            metrics=self.metrics,
        )

    def _unknown(self, model_id: str) -> UnknownModelError:
        served = ", ".join(repr(m) for m in self.directories)
        return UnknownModelError(f"no {self.task} model {model_id!r}; this service serves {served}", "model")

    async def acquire(self, model_id: str | None) -> W:
        """The model a request names (the default when none), loading it first if it is not loaded."""
        model_id = model_id or self.default.id
        if model_id in self.workers:
            self.workers.move_to_end(model_id)
            return self.workers[model_id]
        if model_id not in self.directories:
            raise self._unknown(model_id)
        if model_id not in self._loading:  # one load, however many requests wait for it
            self._loading[model_id] = asyncio.ensure_future(self._load(model_id))
        return await asyncio.shield(self._loading[model_id])

    async def _load(self, model_id: str) -> W:
        try:
            # Off the event loop (requests keep being admitted and refused) and off the model thread (the loaded
            # models keep answering); the load's own precision probe then shares the cores with them.
            worker = await asyncio.to_thread(self._new_worker, model_id, self.directories[model_id])
            self.workers[model_id] = worker
            self._evict()
            return worker
        finally:
            del self._loading[model_id]

    def _evict(self) -> None:
        """Over the bound, let go of the least recently used idle models other than the default (a busy one stays
        until a later load finds it idle: no request is dropped to make room)."""
        if self.max_loaded is None:
            return
        for model_id in list(self.workers):
            if len(self.workers) <= self.max_loaded:
                break
            worker = self.workers[model_id]
            if worker is not self.default and worker.batcher.idle:
                worker.batcher.close()
                del self.workers[model_id]

    # Admission: the models share one thread, so a request waits behind every model's queue.
    def expected_wait_s(self) -> float:
        return sum(worker.batcher.expected_wait_s() for worker in self.workers.values())

    def admission_limit(self, wait_s: float, deadline_s: float) -> float:
        """The wait limit a request that would wait `wait_s`, with `deadline_s` left, is admitted under
        (serving/admission.py); the gauge follows each change, so a dashboard shows when and how long the replica was
        overloaded."""
        before = self.wait_limit.overloaded
        limit = self.wait_limit.judge(wait_s, self.batching, deadline_s)
        if self.wait_limit.overloaded != before:
            self.metrics.set_wait_limit(limit)
        return limit

    def late(self, worker: W, work: object, deadline_s: float) -> str | None:
        """Deadline admission (max_queue_wait_s None): why a prepared request would not be answered within the
        `deadline_s` it has left, or None. Checked once its own work is known, before it is queued."""
        if self.batching.max_queue_wait_s is not None:
            return None
        return finish_late(self.expected_wait_s(), worker.cost_s(work), deadline_s)  # type: ignore[arg-type]

    def announce(self) -> None:
        """An admitted request is on its way (its model is not known before its body is read: the default's
        queue holds a batch back for it)."""
        self.default.batcher.announce()

    def withdraw(self) -> None:
        self.default.batcher.withdraw()

    async def reconfigure(self, batching: BatchSettings) -> None:
        for worker in self.workers.values():
            await worker.reconfigure(batching)
        self.batching = batching
        self.metrics.set_wait_limit(self.wait_limit.limit_s(batching, self.request_timeout_s))

    async def ping(self) -> None:
        """A tiny forward pass of every model on the model thread: each still answers (health and readiness)."""
        loop = asyncio.get_running_loop()
        for worker in self.workers.values():
            await loop.run_in_executor(self.executor, worker.smoke)
            await loop.run_in_executor(self.executor, worker.recalibrate)
            worker.renew_gauges()
        # ... and an idle replica's limit relaxes after a flood, which otherwise would wait for the next request.
        self.metrics.set_wait_limit(self.wait_limit.refresh(self.batching, self.request_timeout_s))

    def describe(self, path_prefix: str = "") -> list[ModelInfo]:
        """Every model of the task in its configured order, the ones not loaded from their directories."""
        described = []
        for model_id in self.directories:
            worker = self.workers.get(model_id)
            if worker is not None:
                described.append(worker.describe(path_prefix, default=worker is self.default))
            else:
                limit = self._limits.max_tokens if self.task == "sentiment" else self._limits.max_seq_len
                meta = self._unloaded_meta[model_id]
                described.append(describe_unloaded(model_id, meta, self._deployment, self.batching, limit, path_prefix))
        return described

    def batch_sizes(self) -> dict[str, dict[int, int]]:
        return {model_id: dict(worker.batch_sizes) for model_id, worker in self.workers.items()}
