"""Span decoding: constraints, windows, and parity with the transformers QA pipeline."""

import numpy as np
import pytest

from service.engine.decode import best_spans, merge_candidates, window_candidates


def test_spans_respect_order_length_and_context():
    rng = np.random.default_rng(0)
    start, end = rng.normal(size=40), rng.normal(size=40)
    mask = np.zeros(40, dtype=bool)
    mask[10:39] = True  # [CLS] + question before, [SEP] after
    spans = best_spans(start, end, mask, top_k=200, max_answer_len=5)
    assert len(spans) == 29 + 28 + 27 + 26 + 25  # every span of ≤ 5 of the 29 context tokens, no more
    for span in spans:
        assert mask[span.start_token] and mask[span.end_token]
        assert 0 <= span.end_token - span.start_token < 5
    scores = [s.score for s in spans]
    assert scores == sorted(scores, reverse=True)


def test_impossible_spans_are_never_returned():
    start = np.array([9.0, 0.0, 0.0, 5.0])  # [CLS] would win; token 3 is outside the context
    end = np.array([9.0, 0.0, 5.0, 0.0])
    mask = np.array([False, True, True, False])
    spans = best_spans(start, end, mask, top_k=10, max_answer_len=15)
    assert {(s.start_token, s.end_token) for s in spans} == {(1, 1), (1, 2), (2, 2)}


def _peak(n: int, at: int) -> np.ndarray:
    logits = np.full(n, -5.0)
    logits[at] = 10.0
    return logits


def test_answer_in_second_window_and_at_window_boundary(tokenizer):
    context = " ".join(f"w{i}" for i in range(400))
    qa = tokenizer.encode_qa("which word?", context, max_seq_len=128, doc_stride=32)
    second = qa.windows[1]
    # Point at the last context token of the second window: an answer at the window's edge.
    last = max(t for t, o in enumerate(second.context_offsets) if o is not None)
    found = window_candidates(second.context_word_offsets, _peak(len(second), last), _peak(len(second), last), 1, 15, 1)
    start, end = found[0].start_char, found[0].end_char
    assert context[start:end] == context.split()[context[:start].count(" ")]
    assert found[0].window == 1


def test_same_answer_text_in_two_windows_counts_once(tokenizer):
    from service.engine.decode import Candidate

    context = "Paris is big. paris is old."
    merged = merge_candidates(context, [Candidate(0.2, 14, 19, 5, 5, 1), Candidate(0.3, 0, 5, 1, 1, 0)], top_k=3)
    assert len(merged) == 1 and merged[0].start_char == 0 and merged[0].score == pytest.approx(0.5)


def test_matches_transformers_pipeline(random_qa_checkpoint, random_qa_engine):
    transformers = pytest.importorskip("transformers")
    if not hasattr(transformers.pipelines, "QuestionAnsweringPipeline"):
        pytest.fail("installed transformers has no question-answering pipeline; the test extra pins transformers<5")
    pipe = transformers.pipeline("question-answering", model=str(random_qa_checkpoint), device="cpu")
    long_context = " ".join(
        f"Sentence {i} says the river Seine flows north through Paris towards Rouen." for i in range(40)
    )
    cases = [
        ("Which river flows through Paris?", long_context, 3),
        ("When was it built?", "The Eiffel Tower is a wrought-iron lattice tower in Paris, finished in 1889.", 2),
        ("Who?", "Marie Curie, née Skłodowska, won two Nobel prizes — physics and chemistry.", 1),
    ]
    for question, context, top_k in cases:
        expected = pipe(question=question, context=context, top_k=top_k, doc_stride=128, max_answer_len=15)
        expected = expected if isinstance(expected, list) else [expected]
        ours = random_qa_engine.answer_texts(question, context, top_k=top_k)
        assert [(a.start, a.end, a.text) for a in ours.answers] == [
            (e["start"], e["end"], e["answer"]) for e in expected
        ]
        assert [a.score for a in ours.answers] == pytest.approx([e["score"] for e in expected], rel=1e-3, abs=1e-6)
    assert random_qa_engine.answer_texts(*cases[0][:2]).windows > 1
