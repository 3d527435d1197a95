"""Sub-batching under a token budget; batched results equal single results, in input order."""

import pytest

from service.engine.engine import EngineConfig, QAEngine, SentimentJob
from service.engine.passes import plan_batches


def test_plan_respects_budget_and_groups():
    lengths = [5, 100, 7, 50, 6, 90, 8, 400]
    groups = [False, False, True, False, True, False, False, False]
    batches = plan_batches(lengths, token_budget=200, max_batch_size=3, groups=groups)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        assert len({groups[i] for i in batch}) == 1
        assert len(batch) <= 3
        assert len(batch) == 1 or len(batch) * max(lengths[i] for i in batch) <= 200
    assert [7] in batches  # longer than the budget: runs alone


def test_similar_lengths_share_a_batch():
    lengths = [10, 300, 11, 290, 12, 310]
    batches = plan_batches(lengths, token_budget=10_000, max_batch_size=3)
    assert sorted(map(sorted, batches)) == [[0, 2, 4], [1, 3, 5]]


def test_batched_sentiment_equals_single_and_keeps_order(sentiment_engine):
    texts = ["terrible", "a gorgeous, moving film", "it was fine I guess, though long " * 8, "meh", "superb!"]
    items = [SentimentJob(sentiment_engine.encode(t)) for t in texts]
    batched = sentiment_engine.classify(items)
    assert len(batched.passes) >= 1
    for item, result in zip(items, batched.results, strict=True):
        alone = sentiment_engine.classify([item]).results[0]
        assert result.label == alone.label
        for label, p in result.probabilities.items():
            assert p == pytest.approx(alone.probabilities[label], abs=1e-4)
    total = batched.passes
    assert sum(p.real_tokens for p in total) == sum(job.tokens for job in items)
    assert all(p.padded_tokens >= p.real_tokens for p in total)


def test_qa_batched_equals_single(random_qa_checkpoint):
    engine = QAEngine(random_qa_checkpoint, EngineConfig(precision="fp32", token_budget=1024, max_batch_size=4))
    pairs = [
        ("Who wrote it?", "The novel was written by Jane Austen in 1813 and published in London."),
        ("Where?", " ".join(f"Fact {i}: the museum is in Vienna." for i in range(80))),
        ("What colour?", "The sky is blue."),
    ]
    items = [engine.encode(q, c, max_seq_len=128, doc_stride=32) for q, c in pairs]
    batched = engine.answer(items, top_k=[2, 2, 2]).results
    for item, result in zip(items, batched, strict=True):
        alone = engine.answer([item], top_k=[2]).results[0]
        assert [(a.start, a.end) for a in result.answers] == [(a.start, a.end) for a in alone.answers]
        assert all(a.text == item.context[a.start : a.end] for a in result.answers)
    assert batched[1].windows > 1


def test_padding_stays_under_the_bound_by_cutting_passes():
    lengths = [8, 9, 10, 12, 15, 18, 22, 30, 31, 32, 40, 64]
    batches = plan_batches(lengths, token_budget=10_000, max_batch_size=64, max_padding=0.1)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        computed = len(batch) * max(lengths[i] for i in batch)
        assert computed - sum(lengths[i] for i in batch) <= 0.1 * computed
    # Without the bound the same lengths share one pass, padded to 64.
    assert len(plan_batches(lengths, token_budget=10_000, max_batch_size=64)) == 1


def test_engine_passes_respect_the_padding_bound(sentiment_engine):
    texts = ["bad", "a fine film", "a long and winding review that goes on " * 6, "ok then", "superb acting all round"]
    inference = sentiment_engine.classify([SentimentJob(sentiment_engine.encode(t)) for t in texts])
    assert sentiment_engine.config.max_padding == 0.1
    assert all(p.padding_ratio <= 0.1 for p in inference.passes), inference.passes
