"""The task models shipped in the package load with no flags and get the obvious cases right.

A broken or missing artifact fails CI here, before any service test.
"""

from __future__ import annotations

import json

import pytest

from service.engine.layout import ARTIFACT_FILE
from service.settings import default_model_dir

OBVIOUS_SENTIMENT = [
    ("a gorgeous, moving film", "positive"),
    ("one of the best films of the year: funny, warm and beautifully acted", "positive"),
    ("I loved every minute of it", "positive"),
    ("a dull, lifeless mess", "negative"),
    ("the worst film I have seen in years; boring and badly written", "negative"),
    ("a tedious waste of two hours", "negative"),
]

OBVIOUS_QA = [
    ("What is the capital of France?", "Paris is the capital of France.", "Paris"),
    ("When was the bridge opened?", "The bridge was opened in 1932 after six years of work.", "1932"),
    ("Who wrote the report?", "The report was written by Maria Lopez, a civil engineer.", "Maria Lopez"),
    ("How many people live in the town?", "The town is home to about 12,000 people.", "12,000"),
]


def test_artifacts_are_small_and_documented():
    for task in ("sentiment", "qa"):
        size = sum(path.stat().st_size for path in default_model_dir(task).rglob("*") if path.is_file())
        assert size <= 30 * 1024 * 1024, f"the {task} model is {size / 2**20:.1f} MB; each stays within 30 MB"
        meta = json.loads((default_model_dir(task) / ARTIFACT_FILE).read_text())
        assert meta["task"] == task
        assert meta["recipe"]["epochs"] > 0 and len(meta["data"]["sha256"]) == 64


@pytest.mark.parametrize(("text", "label"), OBVIOUS_SENTIMENT)
def test_shipped_sentiment_model_gets_obvious_cases_right(sentiment_engine, text, label):
    result = sentiment_engine.classify_texts([text])[0]
    assert result.label == label
    assert result.probabilities[label] > 0.8


@pytest.mark.parametrize(("question", "context", "answer"), OBVIOUS_QA)
def test_shipped_qa_model_finds_a_literal_answer(qa_engine, question, context, answer):
    best = qa_engine.answer_texts(question, context).answers[0]
    assert best.text == answer
    assert context[best.start : best.end] == answer
