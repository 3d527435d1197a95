"""One model in a replica: its engine and batch queue; a request becomes its jobs here and its answer is put
together here. Knows nothing of Ray or HTTP, and nothing of tensors (the engine does the model's part).

`prepare` turns a validated request into work (limits checked, text tokenized: everything a request can get
wrong is found before anything is queued, so one bad input never fails a batch); `run` queues the work's jobs
together, so they share forward passes with other requests' jobs and keep their place in line, and puts the
request's own outputs back together. The model runs only on the replica's one model thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from service.engine.config import int8_cost
from service.engine.decode import WindowCandidates
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
from service.engine.errors import InputError
from service.engine.tokenize import QAInput, TextInput
from service.engine.weights import ModelMeta
from service.metrics import ModelMetrics
from service.protocol import ModelInfo, ModelRef, PrecisionSpeeds, QARequest, SentimentRequest, card_link
from service.serving.batcher import Batcher, BatchLimits, BatchReport, Timing
from service.settings import BatchSettings, DeploymentSettings, Settings
from service.tasks import Task

logger = logging.getLogger("ray.serve")
RECALIBRATIONS = 3  # speed measurements after load, before the first batch (see Worker.recalibrate)


class RequestLimitError(InputError):
    """A request over a limit fixed at start-up (items per request)."""

    code = "invalid_request"


class InputTooLongError(InputError):
    """A text, question or context over its character limit."""

    code = "input_too_long"


@dataclass(frozen=True)
class InputLimits:
    """The request limits fixed at start-up, checked before anything is queued."""

    max_items: int
    max_text_chars: int
    max_question_chars: int
    max_context_chars: int
    max_tokens: int
    max_seq_len: int
    max_question_len: int
    max_windows: int

    @classmethod
    def from_settings(cls, settings: Settings) -> InputLimits:
        s = settings
        return cls(s.max_items_per_request, s.max_text_chars, s.max_question_chars, s.max_context_chars,
                   s.max_tokens, s.max_seq_len, s.max_question_len, s.max_windows)  # fmt: skip


def _check_length(field: str, text: str, limit: int) -> None:
    if len(text) > limit:
        raise InputTooLongError(f"{field} is {len(text)} characters; the limit is {limit}", field)


@dataclass(frozen=True)
class SentimentWork:
    """A sentiment request, tokenized."""

    items: list[TextInput]
    return_attention: bool


@dataclass(frozen=True)
class QAWork:
    """A QA request, tokenized into windows, with its decoding options."""

    items: list[QAInput]
    top_k: int
    max_answer_len: int
    return_attention: bool
    handle_impossible_answer: bool


E = TypeVar("E", SentimentEngine, QAEngine)
J = TypeVar("J", SentimentJob, WindowJob)
Out = TypeVar("Out")


class Worker(Generic[E, J, Out]):
    """One model of a task: engine, batch queue and live settings."""

    task: Task
    engine_class: Callable[..., E]

    def __init__(
        self,
        model_dir: Path,
        *,
        model_id: str | None,
        deployment: DeploymentSettings,
        limits: InputLimits,
        batching: BatchSettings,
        executor: ThreadPoolExecutor,
        metrics: ModelMetrics,
    ) -> None:
        self._model_dir = model_dir
        self._deployment = deployment
        self.limits = limits
        self.metrics = metrics
        self.batching = batching
        self._recalibrations = 0
        self.batch_sizes: Counter[int] = Counter()  # batches run, by jobs in them (for operators and tests)
        self.engine: E = self._load(batching)
        self.id = model_id or self.engine.info.model_id  # what requests name in "model"
        self.batcher: Batcher[J, Out] = Batcher(
            self._run,
            self._limits(batching),
            on_batch=self._on_batch,
            tokens_per_s=self._initial_speed(),
            executor=executor,
        )

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
            max_tokens=self._max_tokens(),
            max_padding=batching.max_padding,
            device=self._deployment.device,
        )

    def _max_tokens(self) -> int:
        raise NotImplementedError

    def _load(self, batching: BatchSettings) -> E:
        began = time.perf_counter()
        engine = self.engine_class(self._model_dir, self._engine_config(batching))
        self.load_s = time.perf_counter() - began  # what this model costs cold: read, build, precision probe
        self.metrics.set_model(engine.info.model_id, engine.info.version, engine.precision)
        logger.info(
            "loaded %s model %s (%s) from %s on %s in %.2f s: precision %s (asked %s; measured tokens/s %s)",
            self.task,
            engine.info.model_id,
            engine.info.family,
            self._model_dir,
            self._deployment.device,
            self.load_s,
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

    def _on_batch(self, report: BatchReport, waited_s: list[float]) -> None:
        self.batch_sizes[report.jobs] += 1
        self.metrics.batch_started(report.jobs, waited_s)

    def _record(self, inference: Inference) -> None:
        for p in inference.passes:
            self.metrics.forward_pass(p.real_tokens, p.padded_tokens, p.padding_ratio, p.seconds)

    def _run(self, jobs: list[J]) -> list[Out]:
        raise NotImplementedError

    def smoke(self) -> None:
        """A tiny forward pass (call it on the model thread)."""
        raise NotImplementedError

    def recalibrate(self) -> None:
        """Until a batch has been timed, measure the model's speed again (on the model thread, from the health
        check), so the first requests are admitted by the idle model's speed, not the crowded load's. A few times
        only: readiness probes call it too, and by then the other replicas have loaded."""
        if not self.batcher.cost.fitted and self._recalibrations < RECALIBRATIONS:
            self._recalibrations += 1
            self.batcher.cost.assume_speed(self.engine.measure_speed())

    def renew_gauges(self) -> None:
        """Ray drops gauge values not recorded again for a while; the health check renews them."""
        self.metrics.set_model(self.engine.info.model_id, self.engine.info.version, self.engine.precision)

    def cost_s(self, work: SentimentWork | QAWork) -> float:
        """The model time a prepared request's own jobs will take, at the batch cost fitted so far."""
        tokens = sum(len(item) for item in work.items)
        jobs = len(work.items) if isinstance(work, SentimentWork) else sum(len(item.windows) for item in work.items)
        return self.batcher.seconds_for(jobs, tokens)

    def model_ref(self) -> ModelRef:
        return ModelRef(id=self.id, version=self.engine.info.version)

    def describe(self, path_prefix: str = "", default: bool = True) -> ModelInfo:
        """What is loaded; `path_prefix` is the API's, for the link to the model card."""
        info, engine = self.engine.info, self.engine
        return ModelInfo(
            task=self.task,
            id=self.id,
            default=default,
            family=info.family,
            version=info.version,
            base=info.base,
            precision=engine.precision,
            precision_speeds=PrecisionSpeeds(chosen=engine.precision, tokens_per_s=engine.probe.tokens_per_s)
            if engine.probe.tokens_per_s
            else None,
            device=self._deployment.device,
            max_tokens=engine.tokenizer.max_tokens,
            labels=list(info.labels),
            multi_label=info.multi_label,
            int8_cost_points=int8_cost(info.metadata),
            load_s=round(self.load_s, 3),
            batching=self.batching,
            card=card_link(path_prefix, info.model_id, info.version),
        )


class SentimentWorker(Worker[SentimentEngine, SentimentJob, SentimentResult]):
    task = "sentiment"
    engine_class = SentimentEngine

    def _max_tokens(self) -> int:
        return self.limits.max_tokens

    def prepare(self, body: SentimentRequest) -> SentimentWork:
        """Check the request's limits and tokenize its texts (a text past max_tokens is truncated, and says so)."""
        texts = body.texts()
        if not texts or len(texts) > self.limits.max_items:
            raise RequestLimitError(f"text must hold 1 to {self.limits.max_items} items, got {len(texts)}", "text")
        items = []
        for i, text in enumerate(texts):
            field = "text" if isinstance(body.text, str) else f"text.{i}"
            _check_length(field, text, self.limits.max_text_chars)
            items.append(self.engine.tokenizer.encode_text(text, field=field))
        return SentimentWork(items, body.return_attention)

    async def run(self, work: SentimentWork) -> tuple[list[SentimentResult], Timing]:
        self.metrics.accepted(len(work.items), work.return_attention)
        return await self.batcher.submit([SentimentJob(item, work.return_attention) for item in work.items])

    def _run(self, jobs: list[SentimentJob]) -> list[SentimentResult]:
        inference = self.engine.classify(jobs)
        self._record(inference)
        self.metrics.truncated_inputs(sum(result.truncated for result in inference.results))
        return inference.results

    def smoke(self) -> None:
        self.engine.classify([SentimentJob(self.engine.encode("ok"))])


class QAWorker(Worker[QAEngine, WindowJob, WindowCandidates]):
    task = "qa"
    engine_class = QAEngine

    def _max_tokens(self) -> int:
        return self.limits.max_seq_len

    def prepare(self, body: QARequest) -> QAWork:
        """Check the request's limits and split each context into windows."""
        pairs = body.pairs()
        if len(pairs) > self.limits.max_items:
            raise RequestLimitError(
                f"inputs must hold at most {self.limits.max_items} items, got {len(pairs)}", "inputs"
            )
        items = []
        for i, pair in enumerate(pairs):
            prefix = "" if body.inputs is None else f"inputs.{i}."
            _check_length(prefix + "question", pair.question, self.limits.max_question_chars)
            _check_length(prefix + "context", pair.context, self.limits.max_context_chars)
            try:
                item = self.engine.encode(
                    pair.question,
                    pair.context,
                    max_seq_len=self.limits.max_seq_len,
                    doc_stride=body.doc_stride,
                    max_question_len=self.limits.max_question_len,
                    max_windows=self.limits.max_windows,
                )
            except InputError as exc:
                exc.field = prefix + (exc.field or "")
                raise
            items.append(item)
        return QAWork(items, body.top_k, body.max_answer_len, body.return_attention, body.handle_impossible_answer)

    async def run(self, work: QAWork) -> tuple[list[QAResult], Timing]:
        """Every window of every pair is its own job; the engine puts each pair's answer together once all are
        scored (the empty answer, when asked for, competes only there: a window job does not depend on it)."""
        self.metrics.accepted(len(work.items), work.return_attention)
        n = len(work.items)
        jobs = [job for item in work.items for job in QAEngine.jobs(item, work.top_k, work.max_answer_len)]
        scored, timing = await self.batcher.submit(jobs)
        assembled = self.engine.assemble(work.items, scored, [work.top_k] * n, [work.handle_impossible_answer] * n)
        if not work.return_attention:
            return [result for result, _ in assembled], timing

        def attach() -> list[QAResult]:  # explicit passes: on the model thread
            results, passes = self.engine.attach_attention(work.items, assembled, [True] * n)
            self._record(Inference([], passes))
            return results

        return await asyncio.get_running_loop().run_in_executor(self.batcher.executor, attach), timing

    def _run(self, jobs: list[WindowJob]) -> list[WindowCandidates]:
        inference = self.engine.score_windows(jobs)
        self._record(inference)
        return inference.results

    def smoke(self) -> None:
        self.engine.score_windows(QAEngine.jobs(self.engine.encode("what?", "ok")))


WORKERS: dict[Task, type[SentimentWorker] | type[QAWorker]] = {"sentiment": SentimentWorker, "qa": QAWorker}


def describe_unloaded(
    model_id: str,
    meta: ModelMeta,
    deployment: DeploymentSettings,
    batching: BatchSettings,
    token_limit: int,
    path_prefix: str = "",
) -> ModelInfo:
    """A model the replica has not loaded, from what its directory's JSON files say (`token_limit`: the task's
    max_tokens or max_seq_len setting, which the model's positions may cap further)."""
    return ModelInfo(
        task=meta.task,
        id=model_id,
        default=False,
        loaded=False,
        family=meta.family,
        version=meta.version,
        base=meta.base,
        precision=batching.precision,
        device=deployment.device,
        max_tokens=min(token_limit, meta.max_position_embeddings),
        labels=list(meta.labels),
        multi_label=meta.multi_label,
        int8_cost_points=int8_cost(meta.metadata),
        load_s=None,
        batching=batching,
        card=card_link(path_prefix, meta.model_id, meta.version),
    )


def total_chars(body: SentimentRequest | QARequest) -> int:
    """How much text a request brings (tokenizing much of it is worth moving off the event loop)."""
    if isinstance(body, SentimentRequest):
        return sum(len(text) for text in body.texts())
    return sum(len(pair.question) + len(pair.context) for pair in body.pairs())
