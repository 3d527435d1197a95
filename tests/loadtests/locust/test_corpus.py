"""The load tests' own corpus: enough of it, the lengths it promises, and answers that are in their contexts."""

from __future__ import annotations

from loadtests.locust import corpus
from loadtests.locust.corpus import QA_ITEMS, SENTIMENT_TEXTS


def test_sizes_and_uniqueness():
    assert len(SENTIMENT_TEXTS) >= 100
    assert len(QA_ITEMS) >= 40
    assert len(set(SENTIMENT_TEXTS)) == len(SENTIMENT_TEXTS)
    assert len({(q.question, q.context) for q in QA_ITEMS}) == len(QA_ITEMS)
    assert all(t.strip() for t in SENTIMENT_TEXTS)


def test_sentiment_lengths_run_from_a_few_words_to_several_paragraphs(tokenizer):
    words = [len(t.split()) for t in SENTIMENT_TEXTS]
    assert min(words) <= 3
    assert sum(w <= 12 for w in words) >= 20
    assert sum("\n\n" in t for t in SENTIMENT_TEXTS) >= 10
    encoded = [tokenizer.encode_text(t) for t in SENTIMENT_TEXTS]
    assert sum(e.truncated for e in encoded) >= 3, "some texts must run past the model's 512 tokens"


def test_every_answer_is_a_span_of_its_context():
    for item in QA_ITEMS:
        assert item.answer and item.answer in item.context, item
        assert item.question.endswith("?")


def test_contexts_run_from_one_sentence_to_several_windows(tokenizer):
    lengths = [len(q.context) for q in QA_ITEMS]
    assert sum(n < 120 for n in lengths) >= 5
    assert sum("\n\n" in q.context for q in QA_ITEMS) >= 20
    assert sum(n >= 1800 for n in lengths) >= 8
    windows = [len(tokenizer.encode_qa(q.question, q.context, 384, 128, 64, 64).windows) for q in QA_ITEMS]
    assert sum(w >= 2 for w in windows) >= 8
    assert max(windows) >= 3


def test_the_corpus_is_the_same_every_time():
    assert corpus._sentiment_texts() == SENTIMENT_TEXTS  # seeded: the same payloads on every run and machine
    assert corpus._qa_items() == QA_ITEMS
