"""Sentiment and QA inference over tokenized inputs: sub-batch, forward, decode, back in input order."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, Literal, TypeVar

import numpy as np
import torch

from service.engine.attention_maps import head_averaged, summarize
from service.engine.batching import PassStats, plan_batches
from service.engine.decode import Candidate, merge_candidates, window_candidates
from service.engine.tokenize import Offset, QAInput, TextInput, TextTokenizer
from service.engine.weights import LoadedModel, ModelInfo, Task, load_task_model

Precision = Literal["fp32", "bf16"]
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class EngineConfig:
    precision: Precision = "bf16"
    threads: int | None = None  # None: leave torch's default (all cores)
    token_budget: int = 8192  # padded tokens per forward pass
    max_batch_size: int = 64  # sequences per forward pass
    max_tokens: int = 512  # sentiment inputs longer than this are truncated


@dataclass(frozen=True)
class TokenView:
    token: str
    start: int | None  # character span in the text it came from; None for special tokens
    end: int | None
    source: Literal["text", "question", "context", "special"]


@dataclass(frozen=True)
class AttentionMap:
    """Attention from the query tokens ([CLS], or the answer span) to each token."""

    query: Literal["cls", "answer"]
    tokens: list[TokenView]
    layers: list[list[float]]  # num_layers × tokens, averaged over heads
    rollout: list[float]  # tokens


@dataclass(frozen=True)
class SentimentResult:
    label: str
    probabilities: dict[str, float]
    truncated: bool
    tokens: int
    attention: AttentionMap | None = None


@dataclass(frozen=True)
class Answer:
    text: str
    score: float
    start: int  # character offsets in the context: context[start:end] == text
    end: int


@dataclass(frozen=True)
class QAResult:
    answers: list[Answer]
    windows: int
    attention: AttentionMap | None = None


R = TypeVar("R")


@dataclass(frozen=True)
class Inference(Generic[R]):
    results: list[R]
    passes: list[PassStats]


class _Engine:
    task: Task

    def __init__(self, model_dir: str | Path, config: EngineConfig | None = None) -> None:
        self.config = config or EngineConfig()
        if self.config.threads:
            torch.set_num_threads(self.config.threads)
        loaded: LoadedModel = load_task_model(model_dir, self.task)
        self.info: ModelInfo = loaded.info
        self.dtype = _DTYPES[self.config.precision]
        self.model = loaded.model.to(self.dtype).eval()
        max_tokens = min(self.config.max_tokens, loaded.info.max_position_embeddings)
        self.tokenizer = TextTokenizer(loaded.tokenizer_file, max_tokens=max_tokens)

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
            out, weights = self.model(ids, mask, types, need_weights=need_weights)
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
        items = [self.encode(t) for t in texts]
        return self.classify(items, [return_attention] * len(items)).results

    def classify(
        self, items: Sequence[TextInput], return_attention: Sequence[bool] | None = None
    ) -> Inference[SentimentResult]:
        wants = list(return_attention) if return_attention is not None else [False] * len(items)
        results: list[SentimentResult | None] = [None] * len(items)
        passes = []
        for batch in plan_batches([len(x) for x in items], self.config.token_budget, self.config.max_batch_size, wants):
            need = wants[batch[0]]
            logits, weights, stats = self._forward([(items[i].ids, None) for i in batch], need)
            passes.append(stats)
            probs = logits.float().softmax(dim=-1).tolist()
            for row, i in enumerate(batch):
                item = items[i]
                best = int(np.argmax(probs[row]))
                attention = None
                if need:
                    n = len(item)
                    averaged = head_averaged([w[row, :, :n, :n] for w in weights])
                    layers, rolled = summarize(averaged, [0])
                    sources = [("special", None)] + [("text", o) for o in item.offsets[1:-1]] + [("special", None)]
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

    def answer_texts(self, question: str, context: str, top_k: int = 1, **encode_options: int) -> QAResult:
        """Convenience for scripts: one question, one context."""
        return self.answer([self.encode(question, context, **encode_options)], top_k=[top_k]).results[0]

    def answer(
        self,
        items: Sequence[QAInput],
        top_k: Sequence[int] | None = None,
        max_answer_len: Sequence[int] | None = None,
        return_attention: Sequence[bool] | None = None,
    ) -> Inference[QAResult]:
        n = len(items)
        top_k = list(top_k) if top_k is not None else [1] * n
        max_answer_len = list(max_answer_len) if max_answer_len is not None else [15] * n
        wants = list(return_attention) if return_attention is not None else [False] * n
        windows = [(i, w, k) for i, item in enumerate(items) for k, w in enumerate(item.windows)]
        candidates: list[list[Candidate]] = [[] for _ in range(n)]
        passes = []
        lengths = [len(w) for _, w, _ in windows]
        for batch in plan_batches(lengths, self.config.token_budget, self.config.max_batch_size):
            (start_logits, end_logits), _, stats = self._forward(
                [(windows[j][1].ids, windows[j][1].type_ids) for j in batch], need_weights=False
            )
            passes.append(stats)
            start_np, end_np = start_logits.float().numpy(), end_logits.float().numpy()
            for row, j in enumerate(batch):
                i, window, k = windows[j]
                length = len(window)
                candidates[i] += window_candidates(
                    window.context_word_offsets,
                    start_np[row, :length],
                    end_np[row, :length],
                    2 * top_k[i] + 10,
                    max_answer_len[i],
                    k,
                )
        best = [merge_candidates(items[i].context, c, top_k[i]) for i, c in enumerate(candidates)]
        results = [
            QAResult(
                [Answer(item.context[c.start_char : c.end_char], c.score, c.start_char, c.end_char) for c in b],
                len(item.windows),
            )
            for item, b in zip(items, best, strict=True)
        ]
        attention_items = [i for i in range(n) if wants[i] and best[i]]
        if attention_items:
            passes.extend(self._attach_attention(items, [b[0] for b in best], attention_items, results))
        return Inference(results, passes)

    def _attach_attention(
        self, items: Sequence[QAInput], best: list[Candidate], indices: list[int], results: list[QAResult]
    ) -> list[PassStats]:
        """Re-run each best answer's window on the explicit path and summarise attention from the answer."""
        passes = []
        windows = {i: items[i].windows[best[i].window] for i in indices}
        lengths = [len(windows[i]) for i in indices]
        for batch in plan_batches(lengths, self.config.token_budget, self.config.max_batch_size):
            chosen = [indices[b] for b in batch]
            _, weights, stats = self._forward([(windows[i].ids, windows[i].type_ids) for i in chosen], True)
            passes.append(stats)
            for row, i in enumerate(chosen):
                window, length = windows[i], len(windows[i])
                averaged = head_averaged([w[row, :, :length, :length] for w in weights])
                layers, rolled = summarize(averaged, list(range(best[i].start_token, best[i].end_token + 1)))
                sources = [
                    ("question", q) if q is not None else ("context", c) if c is not None else ("special", None)
                    for q, c in zip(window.question_offsets, window.context_offsets, strict=True)
                ]
                attention = AttentionMap("answer", self._token_views(window.ids, sources), layers, rolled)
                results[i] = QAResult(results[i].answers, results[i].windows, attention)
        return passes
