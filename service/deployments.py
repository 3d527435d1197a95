"""The model deployments: one per task, each batching its callers with @serve.batch.

They receive inputs the gateway already validated and tokenized, so one bad input can never fail a
batch, and they return plain dicts. The forward pass runs on a single worker thread, which keeps the
replica's event loop free to queue the next batch (and answer health checks) while the model works.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ray import serve

from service.engine.engine import EngineConfig, QAEngine, SentimentEngine
from service.engine.tokenize import QAInput, TextInput
from service.metrics import ModelMetrics
from service.settings import BatchSettings

logger = logging.getLogger("ray.serve")


class _TaskModel:
    """What both task deployments share: engine life cycle, live reconfiguration, health."""

    task: str
    engine_class: type[SentimentEngine] | type[QAEngine]

    def __init__(self, model_dir: str, threads: int, max_tokens: int) -> None:
        self._model_dir = model_dir
        self._threads = threads
        self._max_tokens = max_tokens
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{self.task}-forward")
        self._metrics = ModelMetrics(self.task)
        # Serve calls reconfigure(user_config) right after __init__ when the deployment has a user_config (the
        # app builder always gives one), so the model is loaded once, there, at the configured precision.
        self._batching = BatchSettings()
        self._engine: SentimentEngine | QAEngine | None = None
        self._batch_sizes: Counter[int] = Counter()
        self._replica_id = serve.get_replica_context().replica_id.unique_id

    def _load(self, batching: BatchSettings) -> SentimentEngine | QAEngine:
        config = EngineConfig(
            precision=batching.precision,
            threads=self._threads,
            token_budget=batching.token_budget,
            max_batch_size=batching.max_batch_size,
            max_tokens=self._max_tokens,
        )
        engine = self.engine_class(self._model_dir, config)
        self._metrics.set_model(engine.info.model_id, engine.info.version, batching.precision)
        logger.info("loaded %s model %s (%s)", self.task, engine.info.model_id, batching.precision)
        return engine

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Apply a new user_config on the running replica: batching at once, precision by reloading."""
        batching = BatchSettings.model_validate(user_config)
        if self._engine is None or batching.precision != self._batching.precision:
            if self._engine is not None:
                self._metrics.set_model(
                    self.engine.info.model_id, self.engine.info.version, self._batching.precision, serving=False
                )
            self._engine = self._load(batching)
        else:
            self._engine.config = dataclasses.replace(
                self._engine.config, token_budget=batching.token_budget, max_batch_size=batching.max_batch_size
            )
        self._batched.set_max_batch_size(batching.max_batch_size)
        self._batched.set_batch_wait_timeout_s(batching.batch_wait_timeout_s)
        self._batching = batching

    @property
    def engine(self) -> SentimentEngine | QAEngine:
        if self._engine is None:  # deployed without a user_config: defaults
            self.reconfigure(BatchSettings().model_dump())
        assert self._engine is not None
        return self._engine

    async def _in_worker(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _smoke(self) -> None:
        raise NotImplementedError

    async def check_health(self) -> None:
        """Serve calls this periodically: a tiny forward pass proves the model still answers."""
        await self._in_worker(self._smoke)
        # Ray drops gauge values that are not recorded again for a while; the health check renews it.
        info = self.engine.info
        self._metrics.set_model(info.model_id, info.version, self._batching.precision)

    async def ping(self) -> bool:
        await self._in_worker(self._smoke)
        return True

    def describe(self) -> dict[str, Any]:
        info = self.engine.info
        return {
            "task": self.task,
            "id": info.model_id,
            "version": info.version,
            "base": info.base,
            "precision": self._batching.precision,
            "max_tokens": self.engine.tokenizer.max_tokens,
            "labels": list(info.labels),
            "batching": self._batching.model_dump(),
        }

    def stats(self) -> dict[str, Any]:
        """Which replica this is and the sizes of the batches it has run (for operators and tests)."""
        return {"replica": self._replica_id, "batch_sizes": dict(self._batch_sizes)}

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.005)
    async def _batched(self, requests: list[tuple]) -> list[dict[str, Any]]:
        """Each request is (arguments…, arrival time); the batch runs on the forward worker."""
        started = time.monotonic()
        self._batch_sizes[len(requests)] += 1
        self._metrics.batch_started(len(requests), [started - r[-1] for r in requests])
        return await self._in_worker(self._run, [r[:-1] for r in requests])

    def _record(self, inference) -> None:
        for p in inference.passes:
            self._metrics.forward_pass(p.real_tokens, p.padded_tokens, p.padding_ratio, p.seconds)

    def _run(self, requests: list[tuple]) -> list[dict[str, Any]]:
        raise NotImplementedError


@serve.deployment(name="SentimentModel")
class SentimentModel(_TaskModel):
    task = "sentiment"
    engine_class = SentimentEngine

    async def classify(self, item: TextInput, return_attention: bool = False) -> dict[str, Any]:
        return await self._batched((item, return_attention, time.monotonic()))

    def _run(self, requests: list[tuple[TextInput, bool]]) -> list[dict[str, Any]]:
        engine: SentimentEngine = self.engine  # type: ignore[assignment]
        inference = engine.classify([r[0] for r in requests], [r[1] for r in requests])
        self._record(inference)
        self._metrics.truncated_inputs(sum(result.truncated for result in inference.results))
        model = {"id": engine.info.model_id, "version": engine.info.version}
        return [{**dataclasses.asdict(result), "model": model} for result in inference.results]

    def _smoke(self) -> None:
        engine: SentimentEngine = self.engine  # type: ignore[assignment]
        engine.classify([engine.encode("ok")])


@serve.deployment(name="QAModel")
class QAModel(_TaskModel):
    task = "qa"
    engine_class = QAEngine

    async def answer(
        self, item: QAInput, top_k: int = 1, max_answer_len: int = 15, return_attention: bool = False
    ) -> dict[str, Any]:
        return await self._batched((item, top_k, max_answer_len, return_attention, time.monotonic()))

    def _run(self, requests: list[tuple[QAInput, int, int, bool]]) -> list[dict[str, Any]]:
        engine: QAEngine = self.engine  # type: ignore[assignment]
        inference = engine.answer(
            [r[0] for r in requests], [r[1] for r in requests], [r[2] for r in requests], [r[3] for r in requests]
        )
        self._record(inference)
        model = {"id": engine.info.model_id, "version": engine.info.version}
        return [{**dataclasses.asdict(result), "model": model} for result in inference.results]

    def _smoke(self) -> None:
        engine: QAEngine = self.engine  # type: ignore[assignment]
        engine.answer([engine.encode("what?", "ok")])
