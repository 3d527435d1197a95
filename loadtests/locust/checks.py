"""What a correct response looks like. A 200 with the wrong shape is a failure, so the load test measures
answers, not just status codes. Pure functions (no Locust, no HTTP): each returns None when the body is
right and otherwise a short, stable reason, which Locust groups failures by.
"""

from __future__ import annotations

import math
from typing import Any

LABELS = {"negative", "positive"}
TOKEN_SOURCES = {"text", "question", "context", "special"}


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _check_model(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "body is not a JSON object"
    model = body.get("model")
    if not isinstance(model, dict) or not all(isinstance(model.get(k), str) and model[k] for k in ("id", "version")):
        return "model.id / model.version missing"
    if not isinstance(body.get("results"), list):
        return "results is not a list"
    return None


def check_attention(attention: Any, query: str) -> str | None:
    """Tokens with offsets, one weight per token per layer, and a rollout over the same tokens."""
    if not isinstance(attention, dict):
        return "attention missing"
    if attention.get("query") != query:
        return f"attention.query is not {query!r}"
    tokens, layers, rollout = attention.get("tokens"), attention.get("layers"), attention.get("rollout")
    if not isinstance(tokens, list) or not tokens:
        return "attention.tokens empty"
    for token in tokens:
        if not isinstance(token, dict) or not isinstance(token.get("token"), str):
            return "attention token malformed"
        if token.get("source") not in TOKEN_SOURCES:
            return "attention token source unknown"
        start, end = token.get("start"), token.get("end")
        if (start is None) != (end is None) or (start is not None and not (_is_int(start) and _is_int(end))):
            return "attention token offsets malformed"
    n = len(tokens)
    if not isinstance(layers, list) or not layers:
        return "attention.layers empty"
    if any(not isinstance(row, list) or len(row) != n or not all(_is_number(w) for w in row) for row in layers):
        return "attention.layers not one weight per token"
    if not isinstance(rollout, list) or len(rollout) != n or not all(_is_number(w) for w in rollout):
        return "attention.rollout not one weight per token"
    return None


def _check_attention_if_asked(result: dict, asked: bool, query: str) -> str | None:
    if asked:
        return check_attention(result.get("attention"), query)
    return "attention sent but not asked for" if result.get("attention") is not None else None


def check_sentiment(body: Any, texts: int, attention: bool) -> str | None:
    """One result per text: a known label that is the most probable one, probabilities that sum to 1."""
    if reason := _check_model(body):
        return reason
    results = body["results"]
    if len(results) != texts:
        return "not one result per text"
    for result in results:
        if not isinstance(result, dict):
            return "result is not an object"
        probabilities = result.get("probabilities")
        if not isinstance(probabilities, dict) or set(probabilities) != LABELS:
            return "probabilities are not negative/positive"
        if not all(_is_number(p) and 0.0 <= p <= 1.0 for p in probabilities.values()):
            return "probability outside [0, 1]"
        if abs(sum(probabilities.values()) - 1.0) > 1e-3:
            return "probabilities do not sum to 1"
        if result.get("label") not in LABELS or result["label"] != max(probabilities, key=probabilities.__getitem__):
            return "label is not the most probable one"
        if not isinstance(result.get("truncated"), bool):
            return "truncated is not a boolean"
        if not _is_int(result.get("tokens")) or result["tokens"] < 3:  # [CLS] at least one token [SEP]
            return "tokens is not a count"
        if reason := _check_attention_if_asked(result, attention, "cls"):
            return reason
    return None


def check_qa(body: Any, contexts: list[str], top_k: int, attention: bool) -> str | None:
    """One result per (question, context): 1..top_k answers, best first, each exactly context[start:end]."""
    if reason := _check_model(body):
        return reason
    results = body["results"]
    if len(results) != len(contexts):
        return "not one result per question"
    for result, context in zip(results, contexts, strict=True):
        if not isinstance(result, dict):
            return "result is not an object"
        if not _is_int(result.get("windows")) or result["windows"] < 1:
            return "windows is not a positive count"
        answers = result.get("answers")
        if not isinstance(answers, list) or not 1 <= len(answers) <= top_k:
            return "not 1 to top_k answers"
        scores = []
        for answer in answers:
            if not isinstance(answer, dict) or not isinstance(answer.get("text"), str):
                return "answer malformed"
            start, end, score = answer.get("start"), answer.get("end"), answer.get("score")
            if not (_is_int(start) and _is_int(end) and 0 <= start <= end <= len(context)):
                return "answer offsets outside the context"
            if context[start:end] != answer["text"]:
                return "answer text is not context[start:end]"
            if not _is_number(score) or score < 0:
                return "answer score is not a non-negative number"
            scores.append(score)
        if scores != sorted(scores, reverse=True):
            return "answers are not best first"
        if reason := _check_attention_if_asked(result, attention, "answer"):
            return reason
    return None


def error_code(body: Any) -> str:
    """The service's error envelope's code, or a note that the body is not the envelope."""
    if isinstance(body, dict) and isinstance(body.get("error"), dict) and isinstance(body["error"].get("code"), str):
        return body["error"]["code"]
    return "no error envelope"


def answer_matches(found: str, expected: str) -> bool:
    """Loose agreement with the corpus's answer (the model may take a word more or less)."""
    a, b = found.strip().lower(), expected.strip().lower()
    return bool(a) and (a in b or b in a)
