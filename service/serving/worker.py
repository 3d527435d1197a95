"""One task's model in a replica: the engine, its batch queue, its live settings. Knows nothing of Ray or HTTP.

A request's inputs become jobs (one per text, one per QA window), queued together so they share forward passes
with other requests' jobs and keep their place in line; the request gets its own outputs back and is put
together here. The model runs only on the batch queue's one worker thread.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Generic, TypeVar

from service.serving.admission import WaitLimit
from service.serving.batcher import Batcher, BatchLimits, BatchReport, Timing
from service.engine.decode import Candidate, WindowCandidates
from service.engine.engine import (
    EngineConfig,
    Inference,
    QAEngine,
    QAResult,
    SentimentEngine,
    SentimentJob,
    SentimentResult,
    WindowJob,
)
from service.engine.tokenize import QAInput, TextInput
from service.metrics import ModelMetrics
from service.protocol import Batching, ModelInfo, ModelRef, PrecisionSpeeds, card_link
from service.settings import BatchSettings, DeploymentSettings

logger = logging.getLogger("ray.serve")

E = TypeVar("E", SentimentEngine, QAEngine)
J = TypeVar("J", SentimentJob, WindowJob)
Out = TypeVar("Out")


class _Worker(Generic[E, J, Out]):
    task: str
    engine_class: Callable[..., E]

    def __init__(
        self, model_dir: Path, deployment: DeploymentSettings, max_tokens: int, batching: BatchSettings | None = None
    ) -> None:
        self._model_dir = model_dir
        self._deployment = deployment
        self._max_tokens = max_tokens
        self.metrics = ModelMetrics(self.task)
        self.batching = batching or deployment.batching
        self.batch_sizes: Counter[int] = Counter()  # batches run, by jobs in them (for operators and tests)
        self.engine: E = self._load(self.batching)
        self.batcher: Batcher[J, Out] = Batcher(
            self._run, self._limits(self.batching), on_batch=self._on_batch, tokens_per_s=self._initial_speed()
        )
        self.wait_limit = WaitLimit()
        self.metrics.set_wait_limit(self.batching.max_queue_wait_s)

    def _initial_speed(self) -> float:
        """Until batches have been timed, admission control assumes the speed measured at load."""
        measured = self.engine.probe.tokens_per_s.get(self.engine.precision)
        return measured if measured is not None else self.engine.measure_speed()

    @staticmethod
    def _limits(batching: BatchSettings) -> BatchLimits:
        return BatchLimits(batching.max_batch_size, batching.token_budget, batching.batch_wait_timeout_s)

    def _engine_config(self, batching: BatchSettings) -> EngineConfig:
        return EngineConfig(
            precision=batching.precision,
            threads=self._deployment.threads,
            token_budget=batching.token_budget,
            max_batch_size=batching.max_batch_size,
            max_tokens=self._max_tokens,
            max_padding=batching.max_padding,
            device=self._deployment.device,
        )

    def _load(self, batching: BatchSettings) -> E:
        engine = self.engine_class(self._model_dir, self._engine_config(batching))
        self.metrics.set_model(engine.info.model_id, engine.info.version, engine.precision)
        logger.info(
            "loaded %s model %s on %s: precision %s (asked %s; measured tokens/s %s)",
            self.task,
            engine.info.model_id,
            self._deployment.device,
            engine.precision,
            batching.precision,
            engine.probe.tokens_per_s or "not measured",
        )
        return engine

    async def reconfigure(self, batching: BatchSettings) -> None:
        """New live settings: batching at once; a new precision by loading the model again (on the model thread,
        so no batch runs half on the old model)."""
        if batching.precision != self.batching.precision:
            old = self.engine
            self.engine = await asyncio.get_running_loop().run_in_executor(self.batcher.executor, self._load, batching)
            self.metrics.set_model(old.info.model_id, old.info.version, old.precision, serving=False)
        else:
            self.engine.config = self._engine_config(batching)
        self.batcher.limits = self._limits(batching)
        self.batching = batching
        self.metrics.set_wait_limit(self.wait_limit.limit_s(batching))

    def admission_limit(self, wait_s: float) -> float:
        """The wait limit a request that would wait `wait_s` is admitted under (service/serving/admission.py); the gauge
        follows each change, so a dashboard shows when and how long the replica was overloaded."""
        before = self.wait_limit.overloaded
        limit = self.wait_limit.judge(wait_s, self.batching)
        if self.wait_limit.overloaded != before:
            self.metrics.set_wait_limit(limit)
        return limit

    def _on_batch(self, report: BatchReport, waited_s: list[float]) -> None:
        self.batch_sizes[report.jobs] += 1
        self.metrics.batch_started(report.jobs, waited_s)

    def _record(self, inference: Inference) -> None:
        for p in inference.passes:
            self.metrics.forward_pass(p.real_tokens, p.padded_tokens, p.padding_ratio, p.seconds)

    def _run(self, jobs: list[J]) -> list[Out]:
        raise NotImplementedError

    def _smoke(self) -> None:
        raise NotImplementedError

    async def ping(self) -> None:
        """A tiny forward pass on the model thread: the model still answers (health and readiness)."""
        await asyncio.get_running_loop().run_in_executor(self.batcher.executor, self._smoke)
        # Ray drops gauge values that are not recorded again for a while; the health check renews them (and lets
        # an idle replica's limit relax after a flood, which otherwise would wait for the next request).
        self.metrics.set_model(self.engine.info.model_id, self.engine.info.version, self.engine.precision)
        self.metrics.set_wait_limit(self.wait_limit.refresh(self.batching))

    def model_ref(self) -> ModelRef:
        return ModelRef(id=self.engine.info.model_id, version=self.engine.info.version)

    def describe(self, path_prefix: str = "") -> ModelInfo:
        """What is loaded; `path_prefix` is the API's, for the link to the model card."""
        info, engine = self.engine.info, self.engine
        return ModelInfo(
            task=self.task,  # type: ignore[arg-type]
            id=info.model_id,
            version=info.version,
            base=info.base,
            precision=engine.precision,
            precision_speeds=PrecisionSpeeds(chosen=engine.precision, tokens_per_s=engine.probe.tokens_per_s)
            if engine.probe.tokens_per_s
            else None,
            device=self._deployment.device,
            max_tokens=engine.tokenizer.max_tokens,
            labels=list(info.labels),
            batching=Batching(**self.batching.model_dump()),
            card=card_link(path_prefix, info.model_id, info.version),
        )


class SentimentWorker(_Worker[SentimentEngine, SentimentJob, SentimentResult]):
    task = "sentiment"
    engine_class = SentimentEngine

    def encode(self, text: str, field: str) -> TextInput:
        return self.engine.tokenizer.encode_text(text, field=field)

    async def classify(
        self, items: Sequence[TextInput], return_attention: bool
    ) -> tuple[list[SentimentResult], Timing]:
        return await self.batcher.submit([SentimentJob(item, return_attention) for item in items])

    def _run(self, jobs: list[SentimentJob]) -> list[SentimentResult]:
        inference = self.engine.classify(jobs)
        self._record(inference)
        self.metrics.truncated_inputs(sum(result.truncated for result in inference.results))
        return inference.results

    def _smoke(self) -> None:
        self.engine.classify([SentimentJob(self.engine.encode("ok"))])


class QAWorker(_Worker[QAEngine, WindowJob, WindowCandidates]):
    task = "qa"
    engine_class = QAEngine

    def encode(self, question: str, context: str, *, max_seq_len: int, doc_stride: int, max_question_len: int,
               max_windows: int) -> QAInput:  # fmt: skip
        return self.engine.tokenizer.encode_qa(
            question,
            context,
            max_seq_len=min(max_seq_len, self.engine.tokenizer.max_tokens),
            doc_stride=doc_stride,
            max_question_len=max_question_len,
            max_windows=max_windows,
        )

    async def answer(
        self,
        items: Sequence[QAInput],
        top_k: int,
        max_answer_len: int,
        return_attention: bool,
        handle_impossible_answer: bool = False,
    ) -> tuple[list[QAResult], Timing]:
        """Every window of every pair is its own job; the answers are merged per pair once all are scored (the
        empty answer, when asked for, competes only there: a window job does not depend on it)."""
        jobs = [QAEngine.jobs(item, top_k, max_answer_len) for item in items]
        scored, timing = await self.batcher.submit([job for per_item in jobs for job in per_item])
        results, at = [], 0
        for item, per_item in zip(items, jobs, strict=True):
            windows = scored[at : at + len(per_item)]
            at += len(per_item)
            result, top = QAEngine.merge(item, windows, top_k, handle_impossible_answer)
            if return_attention and top is not None:
                result = await self._with_attention(item, result, top)
            results.append(result)
        return results, timing

    async def _with_attention(self, item: QAInput, result: QAResult, top: Candidate) -> QAResult:
        def run() -> QAResult:
            with_map, passes = self.engine.with_attention(item, result, top)
            self._record(Inference([], passes))
            return with_map

        return await asyncio.get_running_loop().run_in_executor(self.batcher.executor, run)

    def _run(self, jobs: list[WindowJob]) -> list[WindowCandidates]:
        inference = self.engine.score_windows(jobs)
        self._record(inference)
        return inference.results

    def _smoke(self) -> None:
        self.engine.score_windows(QAEngine.jobs(self.engine.encode("what?", "ok")))
