"""Sentiment and QA inference over tokenized inputs: sub-batch, forward, decode, back in input order.

The unit of work is a job: one text (`SentimentJob`) or one window of a QA context (`WindowJob`). A caller
that batches across requests (the service) queues jobs, runs them together, and puts each request back
together from its own jobs' outputs; `classify_texts` / `answer_texts` do all of it in one call for scripts.
"""

from __future__ import annotations

import copy
import dataclasses
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, Literal, TypeVar

import numpy as np
import torch

from service.engine.attention_maps import head_averaged, summarize
from service.engine.config import EngineConfig, Precision, auto_precisions
from service.engine.decode import Candidate, WindowCandidates, null_answer, rank_answers, window_candidates
from service.engine.passes import PassStats, plan_batches
from service.engine.results import Answer, AttentionMap, QAResult, SentimentResult, Task, TokenView
from service.engine.tokenize import Offset, QAInput, QAWindow, TextInput, TextTokenizer
from service.engine.weights import LoadedModel, ModelMeta, load_task_model

_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
# What `precision="auto"` times: a batch the size of a busy moment (16 short texts / 4 QA windows).
_PROBE_SHAPES: dict[str, tuple[int, int]] = {"sentiment": (16, 32), "qa": (4, 384)}
PROBE_ROUNDS = 3  # turns each precision takes (see _probe_precisions)
PROBE_PASSES, PROBE_SECONDS = 2, 0.05  # per turn, at least (see _time); a QA pass is ~0.15 s


@dataclass(frozen=True)
class SentimentJob:
    """One text to classify."""

    item: TextInput
    return_attention: bool = False

    @property
    def tokens(self) -> int:
        return len(self.item)


@dataclass(frozen=True)
class WindowJob:
    """One window of a QA context, with the decoding options of the request it belongs to."""

    window: QAWindow
    index: int  # the window's position in its context (answers found in earlier windows win ties)
    top_k: int = 1
    max_answer_len: int = 15

    @property
    def tokens(self) -> int:
        return len(self.window)


R = TypeVar("R")


@dataclass(frozen=True)
class Inference(Generic[R]):
    results: list[R]
    passes: list[PassStats]


@dataclass(frozen=True)
class PrecisionProbe:
    """What `precision="auto"` measured at load: tokens/s per precision, and the one it kept."""

    chosen: Precision
    tokens_per_s: dict[str, float] = field(default_factory=dict)


def in_precision(fp32: torch.nn.Module, precision: Precision) -> torch.nn.Module:
    """The model to serve in `precision`; `fp32` itself is left as it is (bf16 and int8 are copies).

    int8 is dynamic quantization of every linear layer (torch's fbgemm / oneDNN CPU kernels): weights stored in
    int8 with a scale per output channel, each batch's activations quantized on the fly. Per channel, not per
    tensor: on the shipped sentiment model per-tensor scales cost 0.57 points of SST-2 dev accuracy, per-channel
    ones none. Embeddings, LayerNorms, the softmax and the attention products stay fp32, so the attention weights
    are still a softmax over scaled dot products."""
    if precision == "fp32":
        return fp32
    if precision == "int8":
        with warnings.catch_warnings():  # deprecated for torchao's; present in the pinned torch 2.13, tested there
            warnings.simplefilter("ignore", (DeprecationWarning, UserWarning))
            per_channel = {torch.nn.Linear: torch.ao.quantization.per_channel_dynamic_qconfig}
            return torch.ao.quantization.quantize_dynamic(fp32, per_channel, dtype=torch.qint8)
    return copy.deepcopy(fp32).to(_DTYPES[precision])


def _resolve_device(device: str) -> torch.device:
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} was asked for, but torch sees no CUDA device here")
    return resolved


class _Engine:
    task: Task

    def __init__(self, model_dir: str | Path, config: EngineConfig | None = None) -> None:
        self.config = config or EngineConfig()
        if self.config.threads:
            torch.set_num_threads(self.config.threads)
        self.device = _resolve_device(self.config.device)
        loaded: LoadedModel = load_task_model(model_dir, self.task)
        self.info: ModelMeta = loaded.info
        max_tokens = min(self.config.max_tokens, loaded.info.max_position_embeddings)
        self.tokenizer = TextTokenizer(loaded.tokenizer_file, max_tokens=max_tokens, pad_id=loaded.pad_token_id)
        fp32 = loaded.model.float().eval().to(self.device)
        if self.config.precision == "int8" and self.device.type != "cpu":
            raise ValueError("precision int8 runs on the CPU only (dynamic quantization); use fp32 or bf16 on a GPU")
        if self.config.precision == "auto":
            self.probe, self.model = self._probe_precisions(fp32)
        else:
            self.probe, self.model = PrecisionProbe(self.config.precision), in_precision(fp32, self.config.precision)
        self.precision: Precision = self.probe.chosen

    def _probe_precisions(self, fp32: torch.nn.Module) -> tuple[PrecisionProbe, torch.nn.Module]:
        """Time a few forward passes in each precision `auto` may choose (config.auto_precisions) and keep the
        fastest, with its model: on one CPU bf16 is 3× faster, on another (which also reports AVX-512 BF16) it is
        slower, and int8's gain depends on VNNI, so only a measurement can tell.

        The precisions take turns, PROBE_ROUNDS times, and each keeps its best round: replicas load side by side
        on the same cores, so a precision timed alone could be timed while another replica's load ran, the other
        not; taking turns exposes both to the same moments, and the best round is the speed without them."""
        candidates = auto_precisions(self.info.metadata, on_cpu=self.device.type == "cpu")
        models = {p: in_precision(fp32, p) for p in candidates}
        speeds = dict.fromkeys(models, 0.0)
        for _ in range(PROBE_ROUNDS):
            for precision, model in models.items():
                speeds[precision] = max(speeds[precision], self._time(model))
        chosen: Precision = max(speeds, key=speeds.__getitem__)  # type: ignore[assignment]
        return PrecisionProbe(chosen, {k: round(v, 1) for k, v in speeds.items()}), models[chosen]

    def measure_speed(self) -> float:
        """Tokens per second of the loaded model on a busy moment's batch (what `auto` compares)."""
        return self._time(self.model)

    def _time(self, model: torch.nn.Module) -> float:
        """Tokens/s of the best pass: at least PROBE_PASSES passes and PROBE_SECONDS of them. The best, because a
        pass slowed by another process sharing the core says nothing of the model; many short passes, because a
        sentiment pass takes milliseconds and three of them can all fall on another replica's load."""
        rows, width = _PROBE_SHAPES[self.task]
        ids = torch.full((rows, width), self.tokenizer.cls_id, dtype=torch.long, device=self.device)
        mask, types = torch.ones_like(ids), torch.zeros_like(ids)
        best, passes = float("inf"), 0
        with torch.inference_mode():
            model(ids, mask, types)  # warm-up: first-call allocation and kernel choice
            started = time.perf_counter()
            while passes < PROBE_PASSES or time.perf_counter() - started < PROBE_SECONDS:
                began = time.perf_counter()
                model(ids, mask, types)
                if self.device.type == "cuda":
                    torch.cuda.synchronize(self.device)
                best = min(best, time.perf_counter() - began)
                passes += 1
        return rows * width / best

    def _plan(self, lengths: list[int], groups: Sequence[bool] | None = None) -> list[list[int]]:
        c = self.config
        return plan_batches(lengths, c.token_budget, c.max_batch_size, groups, c.max_padding)

    def _forward(
        self, sequences: Sequence[tuple[list[int], list[int] | None]], need_weights: bool
    ) -> tuple[object, list[torch.Tensor], PassStats]:
        """Pad one sub-batch, run it, and account for its real and padded tokens."""
        width = max(len(ids) for ids, _ in sequences)
        ids = torch.full((len(sequences), width), self.tokenizer.pad_id, dtype=torch.long)
        types = torch.zeros_like(ids)
        mask = torch.zeros_like(ids)
        for row, (seq_ids, seq_types) in enumerate(sequences):
            ids[row, : len(seq_ids)] = torch.tensor(seq_ids)
            mask[row, : len(seq_ids)] = 1
            if seq_types is not None:
                types[row, : len(seq_types)] = torch.tensor(seq_types)
        began = time.perf_counter()
        with torch.inference_mode():
            out, weights = self.model(ids.to(self.device), mask.to(self.device), types.to(self.device), need_weights)
            out = tuple(o.float().cpu() for o in out) if isinstance(out, tuple) else out.float().cpu()
            weights = [w.cpu() for w in weights]
        real = sum(len(s) for s, _ in sequences)
        stats = PassStats(len(sequences), real, width * len(sequences), time.perf_counter() - began)
        return out, weights, stats

    def _token_views(self, ids: list[int], sources: list[tuple[str, Offset | None]]) -> list[TokenView]:
        return [
            TokenView(self.tokenizer.id_to_token(token_id), *(offset or (None, None)), source)  # type: ignore[arg-type]
            for token_id, (source, offset) in zip(ids, sources, strict=True)
        ]


class SentimentEngine(_Engine):
    task: Task = "sentiment"

    def encode(self, text: str) -> TextInput:
        return self.tokenizer.encode_text(text)

    def classify_texts(self, texts: Sequence[str], return_attention: bool = False) -> list[SentimentResult]:
        """Convenience for scripts: tokenize and classify in one call."""
        return self.classify([SentimentJob(self.encode(t), return_attention) for t in texts]).results

    def classify(self, jobs: Sequence[SentimentJob]) -> Inference[SentimentResult]:
        results: list[SentimentResult | None] = [None] * len(jobs)
        passes = []
        wants = [job.return_attention for job in jobs]
        for batch in self._plan([job.tokens for job in jobs], wants):
            need = wants[batch[0]]
            logits, weights, stats = self._forward([(jobs[i].item.ids, None) for i in batch], need)
            passes.append(stats)
            # One distribution over the labels, or (multi-label checkpoints) each label on its own, as transformers.
            probs = (logits.sigmoid() if self.info.multi_label else logits.softmax(dim=-1)).tolist()
            for row, i in enumerate(batch):
                item = jobs[i].item
                best = int(np.argmax(probs[row]))
                attention = None
                if need:
                    n = len(item)
                    averaged = head_averaged([w[row, :, :n, :n] for w in weights])
                    layers, rolled = summarize(averaged, [0])
                    sources = (
                        [("special", None)] * item.prefix
                        + [("text", o) for o in item.text_offsets]
                        + [("special", None)] * item.suffix
                    )
                    attention = AttentionMap("cls", self._token_views(item.ids, sources), layers, rolled)
                results[i] = SentimentResult(
                    label=self.info.labels[best],
                    probabilities=dict(zip(self.info.labels, probs[row], strict=True)),
                    truncated=item.truncated,
                    tokens=len(item),
                    attention=attention,
                )
        return Inference([r for r in results if r is not None], passes)


class QAEngine(_Engine):
    task: Task = "qa"

    def encode(
        self,
        question: str,
        context: str,
        max_seq_len: int = 384,
        doc_stride: int = 128,
        max_question_len: int = 64,
        max_windows: int = 64,
    ) -> QAInput:
        max_seq_len = min(max_seq_len, self.tokenizer.max_tokens)
        return self.tokenizer.encode_qa(question, context, max_seq_len, doc_stride, max_question_len, max_windows)

    @staticmethod
    def jobs(item: QAInput, top_k: int = 1, max_answer_len: int = 15) -> list[WindowJob]:
        """One job per window of a (question, context) pair, in window order."""
        return [WindowJob(window, k, top_k, max_answer_len) for k, window in enumerate(item.windows)]

    def answer_texts(
        self, question: str, context: str, top_k: int = 1, handle_impossible_answer: bool = False, **encode_options: int
    ) -> QAResult:
        """Convenience for scripts: one question, one context."""
        item = self.encode(question, context, **encode_options)
        return self.answer([item], top_k=[top_k], handle_impossible_answer=[handle_impossible_answer]).results[0]

    def answer(
        self,
        items: Sequence[QAInput],
        top_k: Sequence[int] | None = None,
        max_answer_len: Sequence[int] | None = None,
        return_attention: Sequence[bool] | None = None,
        handle_impossible_answer: Sequence[bool] | None = None,
    ) -> Inference[QAResult]:
        """Whole (question, context) pairs at once: every window of every pair shares the forward passes."""
        n = len(items)
        top_k = list(top_k) if top_k is not None else [1] * n
        max_answer_len = list(max_answer_len) if max_answer_len is not None else [15] * n
        wants = list(return_attention) if return_attention is not None else [False] * n
        impossible = list(handle_impossible_answer) if handle_impossible_answer is not None else [False] * n
        jobs = [job for i, item in enumerate(items) for job in self.jobs(item, top_k[i], max_answer_len[i])]
        scored = self.score_windows(jobs)
        assembled = self.assemble(items, scored.results, top_k, impossible)
        results, attention_passes = self.attach_attention(items, assembled, wants)
        return Inference(results, scored.passes + attention_passes)

    def assemble(
        self,
        items: Sequence[QAInput],
        scored: Sequence[WindowCandidates],
        top_k: Sequence[int],
        handle_impossible_answer: Sequence[bool],
    ) -> list[tuple[QAResult, Candidate | None]]:
        """Each pair's answer and best candidate from the candidates of its windows: `scored` holds every window of
        every pair, in order (as `jobs` made them). The service, which scores windows in its own batches, puts its
        answers together here too."""
        if len(scored) != sum(len(item.windows) for item in items):
            raise ValueError(f"{len(scored)} scored windows for {sum(len(i.windows) for i in items)} windows")
        assembled, at = [], 0
        for i, item in enumerate(items):
            windows = scored[at : at + len(item.windows)]
            at += len(item.windows)
            assembled.append(self.merge(item, windows, top_k[i], handle_impossible_answer[i]))
        return assembled

    def attach_attention(
        self, items: Sequence[QAInput], assembled: Sequence[tuple[QAResult, Candidate | None]], wants: Sequence[bool]
    ) -> tuple[list[QAResult], list[PassStats]]:
        """The results, with the attention map of each best answer whose request asked for one (one explicit pass
        per such pair, on the model thread)."""
        results, passes = [], []
        for item, (result, top), want in zip(items, assembled, wants, strict=True):
            if want and top is not None:
                result, attention_passes = self.with_attention(item, result, top)
                passes += attention_passes
            results.append(result)
        return results, passes

    def score_windows(self, jobs: Sequence[WindowJob]) -> Inference[WindowCandidates]:
        """The best spans of each window (2·top_k + 10 of them, enough to merge across windows) and its null
        score (always: it costs nothing, and the window need not know what its request asked)."""
        scored: list[WindowCandidates | None] = [None] * len(jobs)
        passes = []
        for batch in self._plan([job.tokens for job in jobs]):
            (start_logits, end_logits), _, stats = self._forward(
                [(jobs[j].window.ids, jobs[j].window.type_ids) for j in batch], need_weights=False
            )
            passes.append(stats)
            start_np, end_np = start_logits.numpy(), end_logits.numpy()
            for row, j in enumerate(batch):
                job, length = jobs[j], jobs[j].tokens
                scored[j] = window_candidates(
                    job.window.context_word_offsets,
                    start_np[row, :length],
                    end_np[row, :length],
                    2 * job.top_k + 10,
                    job.max_answer_len,
                    job.index,
                )
        return Inference([s for s in scored if s is not None], passes)

    @staticmethod
    def merge(
        item: QAInput, windows: Sequence[WindowCandidates], top_k: int, handle_impossible_answer: bool = False
    ) -> tuple[QAResult, Candidate | None]:
        """One pair's answer from the candidates of all its windows, and its best one (None: nothing found).

        With handle_impossible_answer the empty answer competes at the null score, and that score is reported."""
        best = rank_answers(item.context, windows, top_k, handle_impossible_answer)
        answers = [Answer(item.context[c.start_char : c.end_char], c.score, c.start_char, c.end_char) for c in best]
        null = null_answer(windows).score if handle_impossible_answer and windows else None
        return QAResult(answers, len(item.windows), no_answer_score=null), (best[0] if best else None)

    def with_attention(self, item: QAInput, result: QAResult, top: Candidate) -> tuple[QAResult, list[PassStats]]:
        """Re-run the best answer's window on the explicit path and summarise attention from the answer (from
        [CLS], token 0, when the best answer is the empty one)."""
        window = item.windows[top.window]
        _, weights, stats = self._forward([(window.ids, window.type_ids)], True)
        length = len(window)
        averaged = head_averaged([w[0, :, :length, :length] for w in weights])
        layers, rolled = summarize(averaged, list(range(top.start_token, top.end_token + 1)))
        sources = [
            ("question", q) if q is not None else ("context", c) if c is not None else ("special", None)
            for q, c in zip(window.question_offsets, window.context_offsets, strict=True)
        ]
        query: Literal["cls", "answer"] = "cls" if top.no_answer else "answer"
        attention = AttentionMap(query, self._token_views(window.ids, sources), layers, rolled)
        return dataclasses.replace(result, attention=attention), [stats]
