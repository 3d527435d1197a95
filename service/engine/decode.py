"""Answer-span decoding for extractive QA: pure NumPy, the Hugging Face pipeline's semantics.

Per window, start and end logits are softmaxed over the context tokens (and [CLS], whose
probability is then dropped, as the pipeline does), every (start, end) with
start ≤ end < start + max_answer_len is scored p_start · p_end, and the best spans win.

"No answer" (the pipeline's `handle_impossible_answer`): a window's null score is p_start[CLS] · p_end[CLS],
taken before [CLS] is dropped; a context's is the minimum over its windows (the window most sure an answer is
there speaks for the context), and it competes with the spans as the empty answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Span:
    start_token: int
    end_token: int
    score: float


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


@dataclass(frozen=True)
class WindowSpans:
    """One window's best spans and its null score (p_start[CLS] · p_end[CLS]: how sure it is of no answer)."""

    spans: list[Span]
    null_score: float


def decode_window(
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    context_mask: np.ndarray,
    top_k: int,
    max_answer_len: int,
) -> WindowSpans:
    """The top_k spans of one window, best first, each wholly inside the context, and the window's null score
    (one softmax serves both, so the null score costs two multiplications)."""
    allowed = context_mask.copy()
    allowed[0] = True  # [CLS] takes part in the softmax, as in the reference pipeline ...
    start = _softmax(np.where(allowed, start_logits, -10000.0))
    end = _softmax(np.where(allowed, end_logits, -10000.0))
    null_score = float(start[0] * end[0])  # ... gives the null score ...
    start[0] = end[0] = 0.0  # ... and is then never a span
    return WindowSpans(_top_spans(start, end, context_mask, top_k, max_answer_len), null_score)


def best_spans(
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    context_mask: np.ndarray,
    top_k: int,
    max_answer_len: int,
) -> list[Span]:
    """The top_k spans of one window, best first, each wholly inside the context."""
    return decode_window(start_logits, end_logits, context_mask, top_k, max_answer_len).spans


def _top_spans(
    start: np.ndarray, end: np.ndarray, context_mask: np.ndarray, top_k: int, max_answer_len: int
) -> list[Span]:
    """The top_k (start, end) pairs by p_start · p_end, end ≥ start, at most max_answer_len tokens, in context."""
    scores = np.tril(np.triu(np.outer(start, end)), max_answer_len - 1)  # end ≥ start, length ≤ max
    scores[~context_mask, :] = 0.0
    scores[:, ~context_mask] = 0.0
    flat = scores.ravel()
    k = min(top_k, int(np.count_nonzero(flat)))
    if k == 0:
        return []
    best = np.argpartition(-flat, k - 1)[:k]
    best = best[np.argsort(-flat[best], kind="stable")]
    starts, ends = np.unravel_index(best, scores.shape)
    return [Span(int(s), int(e), float(scores[s, e])) for s, e in zip(starts, ends, strict=True)]


@dataclass(frozen=True)
class Candidate:
    """A span of one window, located in the context's characters; or, with no_answer, the empty answer (the
    window's [CLS], characters 0–0)."""

    score: float
    start_char: int
    end_char: int
    start_token: int
    end_token: int
    window: int
    no_answer: bool = False


@dataclass(frozen=True)
class WindowCandidates:
    """One window's best spans, located in the context, and its null score."""

    candidates: list[Candidate]
    null_score: float
    window: int


def window_candidates(
    context_offsets: list[tuple[int, int] | None],
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    top_k: int,
    max_answer_len: int,
    window: int = 0,
) -> WindowCandidates:
    """Best spans of one window, with character offsets taken from the tokens' offsets, and its null score."""
    context_mask = np.array([o is not None for o in context_offsets])
    decoded = decode_window(start_logits, end_logits, context_mask, top_k, max_answer_len)
    candidates = []
    for span in decoded.spans:
        start_offset, end_offset = context_offsets[span.start_token], context_offsets[span.end_token]
        assert start_offset is not None and end_offset is not None  # best_spans keeps to the context
        candidates.append(
            Candidate(span.score, start_offset[0], end_offset[1], span.start_token, span.end_token, window)
        )
    return WindowCandidates(candidates, decoded.null_score, window)


def merge_candidates(context: str, candidates: list[Candidate], top_k: int) -> list[Candidate]:
    """The top_k answers over all windows, as the Hugging Face pipeline ranks them.

    Spans whose text is the same (ignoring case) are one answer: their scores add up (the probability
    of that answer, whichever occurrence) and the first one found, in window order, gives the position.
    """
    merged: dict[str, Candidate] = {}
    for candidate in sorted(candidates, key=lambda c: (c.window, -c.score)):
        key = context[candidate.start_char : candidate.end_char].lower()
        if key in merged:
            first = merged[key]
            merged[key] = Candidate(
                first.score + candidate.score,
                first.start_char,
                first.end_char,
                first.start_token,
                first.end_token,
                first.window,
            )
        else:
            merged[key] = candidate
    return sorted(merged.values(), key=lambda c: -c.score)[:top_k]


def null_answer(windows: Sequence[WindowCandidates]) -> Candidate:
    """The context's "no answer": the lowest null score of its windows (the pipeline's min_null_score), at the
    [CLS] of the window that gave it (its attention is what the model looked at to say so)."""
    least = min(windows, key=lambda w: w.null_score)
    return Candidate(least.null_score, 0, 0, 0, 0, least.window, no_answer=True)


def rank_answers(
    context: str, windows: Sequence[WindowCandidates], top_k: int, handle_impossible_answer: bool = False
) -> list[Candidate]:
    """The top_k answers of one context over all its windows; with handle_impossible_answer the empty answer
    competes with the spans at the null score, as in the pipeline (it is ranked wherever its score puts it)."""
    merged = merge_candidates(context, [c for w in windows for c in w.candidates], top_k)
    if not handle_impossible_answer or not windows:
        return merged
    # Stable sort with the empty answer last: on a tie the span stays ahead, as in the pipeline.
    return sorted([*merged, null_answer(windows)], key=lambda c: -c.score)[:top_k]
