"""What the engine answers, as plain dataclasses: the API returns these very types (service/protocol.py uses
them as its response fields), so a result has one definition. Imports neither torch nor pydantic."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Task = Literal["sentiment", "qa"]  # what the engine serves: a label per text, or answer spans in a context


@dataclass(frozen=True)
class TokenView:
    """One token of the model's input, with its character span in the text it came from (null for special
    tokens) and which text that is."""

    token: str
    start: int | None  # character span in the text it came from; None for special tokens
    end: int | None
    source: Literal["text", "question", "context", "special"]


@dataclass(frozen=True)
class AttentionMap:
    """Attention from the query tokens ([CLS] for sentiment, the answer span for QA) to each token: per layer
    averaged over heads, and attention rollout through all layers."""

    query: Literal["cls", "answer"]
    tokens: list[TokenView]
    layers: list[list[float]]  # num_layers × tokens, averaged over heads
    rollout: list[float]  # tokens


@dataclass(frozen=True)
class SentimentResult:
    """The label, each label's probability, whether the text was cut at max_tokens (only its start was read),
    the tokens read, and the attention map when asked for."""

    label: str
    probabilities: dict[str, float]
    truncated: bool
    tokens: int
    attention: AttentionMap | None = None


@dataclass(frozen=True)
class Answer:
    """An answer span: context[start:end] == text. The empty answer (text "", start = end = 0) says the context
    holds no answer; only a request with handle_impossible_answer gets one."""

    text: str
    score: float
    start: int  # character offsets in the context: context[start:end] == text
    end: int


@dataclass(frozen=True)
class QAResult:
    """The best answers (best first; empty when none was found), the context windows read, and the attention
    from the best answer when asked for (from [CLS] when the best answer is the empty one: that is where the
    model points for "no answer").

    With handle_impossible_answer, no_answer_score is the null score the empty answer competes with (the lowest
    over the windows of p_start[CLS] · p_end[CLS]), reported even when a span beats it, so a client can see how
    close the call was; without it, None."""

    answers: list[Answer]
    windows: int
    no_answer_score: float | None = None
    attention: AttentionMap | None = None
