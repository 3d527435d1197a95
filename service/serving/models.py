"""A task's models in one replica: every model the task serves, the default first.

They share the replica's one model thread (one forward pass at a time, whichever model it is for), its batching
settings and its admission limit; each has its own batch queue, so a batch never mixes models. All are loaded when
the replica starts: a request never pays for a cold load. Knows nothing of Ray or HTTP.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

from service.engine.errors import EngineError
from service.metrics import ModelMetrics
from service.protocol import ModelInfo
from service.serving.admission import WaitLimit
from service.serving.worker import WORKERS, InputLimits, QAWorker, SentimentWorker
from service.settings import BatchSettings, Settings
from service.tasks import Task

W = TypeVar("W", SentimentWorker, QAWorker)


class UnknownModelError(EngineError):
    """A request named a model this task does not serve."""

    code = "model_not_found"


class TaskModels(Generic[W]):
    """The models of one task in one replica, by id."""

    def __init__(self, task: Task, settings: Settings, batching: BatchSettings | None = None) -> None:
        deployment = getattr(settings, task)
        self.task = task
        self.batching = batching or deployment.batching
        self.metrics = ModelMetrics(task)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="forward")
        self.wait_limit = WaitLimit()
        limits = InputLimits.from_settings(settings)
        self.workers: dict[str, W] = {}
        for model_id, model_dir in deployment.model_entries(task):
            worker = WORKERS[task](
                model_dir,
                model_id=model_id,
                deployment=deployment,
                limits=limits,
                batching=self.batching,
                executor=self.executor,
                metrics=self.metrics,
            )
            if worker.id in self.workers:
                raise ValueError(f"two {task} models have the id {worker.id!r}: name them (models: {{id: dir}})")
            self.workers[worker.id] = worker  # type: ignore[assignment]
        self.default: W = next(iter(self.workers.values()))
        self.metrics.set_wait_limit(self.batching.max_queue_wait_s)

    def get(self, model_id: str | None) -> W:
        """The model a request names, or the default."""
        if model_id is None:
            return self.default
        try:
            return self.workers[model_id]
        except KeyError:
            served = ", ".join(repr(m) for m in self.workers)
            raise UnknownModelError(
                f"no {self.task} model {model_id!r}; this service serves {served}", "model"
            ) from None

    # Admission: the models share one thread, so a request waits behind every model's queue.
    def expected_wait_s(self) -> float:
        return sum(worker.batcher.expected_wait_s() for worker in self.workers.values())

    def admission_limit(self, wait_s: float) -> float:
        """The wait limit a request that would wait `wait_s` is admitted under (serving/admission.py); the gauge
        follows each change, so a dashboard shows when and how long the replica was overloaded."""
        before = self.wait_limit.overloaded
        limit = self.wait_limit.judge(wait_s, self.batching)
        if self.wait_limit.overloaded != before:
            self.metrics.set_wait_limit(limit)
        return limit

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
        self.metrics.set_wait_limit(self.wait_limit.limit_s(batching))

    async def ping(self) -> None:
        """A tiny forward pass of every model on the model thread: each still answers (health and readiness)."""
        loop = asyncio.get_running_loop()
        for worker in self.workers.values():
            await loop.run_in_executor(self.executor, worker.smoke)
            worker.renew_gauges()
        # ... and an idle replica's limit relaxes after a flood, which otherwise would wait for the next request.
        self.metrics.set_wait_limit(self.wait_limit.refresh(self.batching))

    def describe(self, path_prefix: str = "") -> list[ModelInfo]:
        return [w.describe(path_prefix, default=w is self.default) for w in self.workers.values()]

    def batch_sizes(self) -> dict[str, dict[int, int]]:
        return {model_id: dict(worker.batch_sizes) for model_id, worker in self.workers.items()}
