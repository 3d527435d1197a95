"""Response checks: a body built from the service's own response models passes; each way of being wrong fails."""

from __future__ import annotations

import copy

import pytest

from loadtests.locust.checks import answer_matches, check_qa, check_sentiment, error_code
from service.engine.results import Answer, QAResult, SentimentResult
from service.engine.results import AttentionMap as Attention
from service.engine.results import TokenView as Token
from service.protocol import ErrorBody, ErrorResponse, ModelRef, QAResponse, SentimentResponse

MODEL = ModelRef(id="sentiment-minilm", version="1")
CONTEXT = "The Marlow Viaduct was completed in 1861 by the railway company."


def attention(query: str, n: int = 4) -> Attention:
    tokens = [Token(token="[CLS]", start=None, end=None, source="special")]
    tokens += [Token(token=f"t{i}", start=i, end=i + 1, source="text") for i in range(n - 2)]
    tokens += [Token(token="[SEP]", start=None, end=None, source="special")]
    return Attention(query=query, tokens=tokens, layers=[[1 / n] * n] * 6, rollout=[1 / n] * n)


def sentiment_body(texts: int = 2, with_attention: bool = False) -> dict:
    result = SentimentResult(
        label="positive",
        probabilities={"negative": 0.2, "positive": 0.8},
        truncated=False,
        tokens=7,
        attention=attention("cls") if with_attention else None,
    )
    return SentimentResponse(model=MODEL, results=[result] * texts).model_dump(mode="json")


def qa_body(with_attention: bool = False) -> dict:
    answers = [Answer(text="1861", score=0.7, start=36, end=40), Answer(text="1861 by", score=0.1, start=36, end=43)]
    result = QAResult(answers=answers, windows=1, attention=attention("answer") if with_attention else None)
    return QAResponse(model=MODEL, results=[result]).model_dump(mode="json")


def test_valid_bodies_pass():
    assert check_sentiment(sentiment_body(2), texts=2, attention=False) is None
    assert check_sentiment(sentiment_body(1, True), texts=1, attention=True) is None
    assert check_qa(qa_body(), [CONTEXT], top_k=2, attention=False) is None
    assert check_qa(qa_body(True), [CONTEXT], top_k=3, attention=True) is None


def broken(body: dict, path: str, value) -> dict:
    body = copy.deepcopy(body)
    *parents, last = path.split(".")
    node = body
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if value is DELETE:
        del node[int(last) if isinstance(node, list) else last]
    else:
        node[int(last) if isinstance(node, list) else last] = value
    return body


DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "reason"),
    [
        ("model", DELETE, "model.id"),
        ("results", {}, "results is not a list"),
        ("results.1", DELETE, "not one result per text"),
        ("results.0.label", "neutral", "label"),
        ("results.0.label", "negative", "label is not the most probable"),
        ("results.0.probabilities", {"negative": 0.5, "positive": 0.7}, "sum to 1"),
        ("results.0.probabilities", {"neg": 0.2, "pos": 0.8}, "negative/positive"),
        ("results.0.probabilities.positive", "0.8", "outside"),
        ("results.0.truncated", "no", "truncated"),
        ("results.0.tokens", 1.5, "tokens"),
        ("results.0.attention", {"query": "cls"}, "attention sent but not asked for"),
    ],
)
def test_wrong_sentiment_bodies_fail(path, value, reason):
    found = check_sentiment(broken(sentiment_body(2), path, value), texts=2, attention=False)
    assert found is not None and reason in found


@pytest.mark.parametrize(
    ("path", "value", "reason"),
    [
        ("results.0.attention", None, "attention missing"),
        ("results.0.attention.query", "answer", "attention.query"),
        ("results.0.attention.rollout", [0.5], "rollout"),
        ("results.0.attention.layers.2", [0.1, 0.2], "layers"),
        ("results.0.attention.tokens.1.source", "title", "source"),
        ("results.0.attention.tokens.1.start", None, "offsets"),
    ],
)
def test_wrong_attention_fails(path, value, reason):
    found = check_sentiment(broken(sentiment_body(1, True), path, value), texts=1, attention=True)
    assert found is not None and reason in found


@pytest.mark.parametrize(
    ("path", "value", "reason"),
    [
        ("results.0.answers.0.text", "1862", "context[start:end]"),
        ("results.0.answers.0.end", 400, "outside the context"),
        ("results.0.answers.0.start", -1, "outside the context"),
        ("results.0.answers.1.score", 0.9, "best first"),
        ("results.0.answers.0.score", float("nan"), "score"),
        ("results.0.answers", [], "answers"),
        ("results.0.windows", 0, "windows"),
        ("results", [], "not one result per question"),
    ],
)
def test_wrong_qa_bodies_fail(path, value, reason):
    found = check_qa(broken(qa_body(), path, value), [CONTEXT], top_k=2, attention=False)
    assert found is not None and reason in found


def test_more_answers_than_top_k_fail():
    assert "top_k" in check_qa(qa_body(), [CONTEXT], top_k=1, attention=False)


def test_qa_attention_must_be_from_the_answer():
    body = qa_body(with_attention=True)
    assert check_qa(body, [CONTEXT], top_k=2, attention=True) is None
    assert "attention.query" in check_qa(broken(body, "results.0.attention.query", "cls"), [CONTEXT], 2, True)


def test_non_objects_fail_cleanly():
    for body in (None, [], "text", 3):
        assert check_sentiment(body, 1, False) == "body is not a JSON object"
        assert check_qa(body, [CONTEXT], 1, False) == "body is not a JSON object"


def test_error_code_reads_the_envelope():
    envelope = ErrorResponse(error=ErrorBody(code="overloaded", message="full")).model_dump(mode="json")
    assert error_code(envelope) == "overloaded"
    assert error_code({"detail": "Not Found"}) == "no error envelope"
    assert error_code(None) == "no error envelope"


def test_answer_matching_is_loose():
    assert answer_matches("1861", "1861")
    assert answer_matches("in 1861", "1861")
    assert answer_matches("Eliza", "Eliza Marwood")
    assert not answer_matches("1862", "1861")
    assert not answer_matches(" ", "1861")
