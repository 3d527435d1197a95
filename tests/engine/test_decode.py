"""Span decoding: constraints, windows, "no answer", and parity with the transformers QA pipeline."""

import numpy as np
import pytest

from service.engine.decode import (
    Candidate,
    WindowCandidates,
    best_spans,
    decode_window,
    merge_candidates,
    rank_answers,
    window_candidates,
)
from service.engine.engine import EngineConfig, QAEngine


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
    start, end = found.candidates[0].start_char, found.candidates[0].end_char
    assert context[start:end] == context.split()[context[:start].count(" ")]
    assert found.candidates[0].window == found.window == 1


def test_same_answer_text_in_two_windows_counts_once(tokenizer):
    context = "Paris is big. paris is old."
    merged = merge_candidates(context, [Candidate(0.2, 14, 19, 5, 5, 1), Candidate(0.3, 0, 5, 1, 1, 0)], top_k=3)
    assert len(merged) == 1 and merged[0].start_char == 0 and merged[0].score == pytest.approx(0.5)


# "No answer": a window of [CLS], one question token, two context tokens ("abcd", "efgh") and [SEP].
NULL_CONTEXT = "abcd efgh"
NULL_OFFSETS: list[tuple[int, int] | None] = [None, None, (0, 4), (5, 9), None]


def _null_window(cls: float, first: float, second: float, window: int = 0) -> WindowCandidates:
    """One crafted window: the same logit for start and end at [CLS] and at each context token."""
    logits = np.array([cls, 50.0, first, second, 50.0])  # question and [SEP] high: they must not count
    return window_candidates(NULL_OFFSETS, logits, logits, top_k=10, max_answer_len=15, window=window)


def _expected_null(cls: float, first: float, second: float) -> float:
    """p_start[CLS] · p_end[CLS], the softmax over [CLS] and the context tokens only, written out."""
    p_cls = np.exp(cls) / (np.exp(cls) + np.exp(first) + np.exp(second))
    return float(p_cls * p_cls)


def test_null_score_is_cls_probability_before_cls_is_dropped():
    decoded = decode_window(np.array([3.0, 50.0, 1.0, 0.0, 50.0]), np.array([2.0, 50.0, 0.0, 1.0, 50.0]),
                            np.array([False, False, True, True, False]), top_k=5, max_answer_len=15)  # fmt: skip
    z_start, z_end = np.exp(3.0) + np.exp(1.0) + 1, np.exp(2.0) + 1 + np.exp(1.0)
    assert decoded.null_score == pytest.approx(np.exp(3.0) / z_start * np.exp(2.0) / z_end)
    assert all(span.start_token > 0 for span in decoded.spans)  # [CLS] still never a span
    best = decoded.spans[0]  # "abcd efgh": p_start(abcd) · p_end(efgh), probabilities that kept [CLS] in
    assert (best.start_token, best.end_token) == (2, 3)
    assert best.score == pytest.approx(np.exp(1.0) / z_start * np.exp(1.0) / z_end)


def test_null_wins_when_cls_is_likelier_than_every_span():
    window = _null_window(cls=4.0, first=1.0, second=0.0)
    answers = rank_answers(NULL_CONTEXT, [window], top_k=2, handle_impossible_answer=True)
    assert answers[0].no_answer and (answers[0].start_char, answers[0].end_char, answers[0].window) == (0, 0, 0)
    assert answers[0].score == pytest.approx(_expected_null(4.0, 1.0, 0.0))
    assert answers[0].score > answers[1].score and not answers[1].no_answer
    assert NULL_CONTEXT[answers[1].start_char : answers[1].end_char] == "abcd"
    # Off, the same window answers with its spans only.
    off = rank_answers(NULL_CONTEXT, [window], top_k=2)
    assert not any(a.no_answer for a in off) and off[0] == answers[1]


def test_null_loses_to_a_likelier_span_and_ranks_by_its_score():
    window = _null_window(cls=-2.0, first=3.0, second=2.0)
    null = _expected_null(-2.0, 3.0, 2.0)
    on = rank_answers(NULL_CONTEXT, [window], top_k=1, handle_impossible_answer=True)
    assert on == rank_answers(NULL_CONTEXT, [window], top_k=1)  # the best span, unchanged
    # With room for every answer, the empty one is placed by its score, as the pipeline does.
    every = rank_answers(NULL_CONTEXT, [window], top_k=10, handle_impossible_answer=True)
    spans = rank_answers(NULL_CONTEXT, [window], top_k=10)
    assert [a for a in every if not a.no_answer] == spans
    (empty,) = [a for a in every if a.no_answer]
    assert empty.score == pytest.approx(null)
    assert every.index(empty) == sum(s.score > null for s in spans) > 0


def test_null_of_several_windows_is_their_minimum():
    sure_none, less_sure = _null_window(6.0, 0.0, 0.0, window=0), _null_window(1.0, 0.0, 0.5, window=1)
    lowest = _expected_null(1.0, 0.0, 0.5)
    assert sure_none.null_score > less_sure.null_score == pytest.approx(lowest)
    answers = rank_answers(NULL_CONTEXT, [sure_none, less_sure], top_k=5, handle_impossible_answer=True)
    (empty,) = [a for a in answers if a.no_answer]
    assert empty.score == pytest.approx(lowest) and empty.window == 1  # the window that gave the minimum
    # The minimum decides: a span between the two null scores beats "no answer" (it would lose to the maximum).
    span = Candidate(lowest * 1.5, 0, 4, 2, 2, 0)
    assert sure_none.null_score > span.score
    mixed = [WindowCandidates([span], sure_none.null_score, 0), WindowCandidates([], less_sure.null_score, 1)]
    assert not rank_answers(NULL_CONTEXT, mixed, top_k=1, handle_impossible_answer=True)[0].no_answer


def test_null_answer_reaches_the_result_as_the_empty_answer(tokenizer, random_qa_engine):
    item = tokenizer.encode_qa("Which?", NULL_CONTEXT, 384, 128, 64, 64)
    span = Candidate(0.1, 5, 9, 4, 4, 0)
    result, top = QAEngine.merge(item, [WindowCandidates([span], 0.3, 0)], top_k=2, handle_impossible_answer=True)
    assert [(a.text, a.start, a.end) for a in result.answers] == [("", 0, 0), ("efgh", 5, 9)]
    assert result.answers[0].score == result.no_answer_score == 0.3
    assert top is not None and top.no_answer
    off, _ = QAEngine.merge(item, [WindowCandidates([span], 0.3, 0)], top_k=2)
    assert off.no_answer_score is None and [a.text for a in off.answers] == ["efgh"]
    # Asked for attention, the empty answer's comes from [CLS] of the window that gave the null score.
    with_map, _ = random_qa_engine.with_attention(item, result, top)
    assert with_map.attention is not None and with_map.attention.query == "cls"
    assert with_map.answers == result.answers and with_map.no_answer_score == 0.3
    assert sum(with_map.attention.rollout) == pytest.approx(1.0, abs=1e-4)


def _pipeline(checkpoint):
    transformers = pytest.importorskip("transformers")
    if not hasattr(transformers.pipelines, "QuestionAnsweringPipeline"):
        pytest.fail("installed transformers has no question-answering pipeline; the test extra pins transformers<5")
    return transformers.pipeline("question-answering", model=str(checkpoint), device="cpu")


def _assert_same_answers(ours, expected) -> None:
    expected = expected if isinstance(expected, list) else [expected]
    assert [(a.start, a.end, a.text) for a in ours.answers] == [(e["start"], e["end"], e["answer"]) for e in expected]
    assert [a.score for a in ours.answers] == pytest.approx([e["score"] for e in expected], rel=1e-3, abs=1e-6)


def test_matches_transformers_pipeline(random_qa_checkpoint, random_qa_engine):
    pipe = _pipeline(random_qa_checkpoint)
    long_context = " ".join(
        f"Sentence {i} says the river Seine flows north through Paris towards Rouen." for i in range(40)
    )
    cases = [
        ("Which river flows through Paris?", long_context, 3),
        ("When was it built?", "The Eiffel Tower is a wrought-iron lattice tower in Paris, finished in 1889.", 2),
        ("Who?", "Marie Curie, née Skłodowska, won two Nobel prizes — physics and chemistry.", 1),
        ("Why?", "It rained.", 3),  # few spans: the empty answer ranks among them (second, for this head)
    ]
    null_ranked = 0  # answers lists of the pipeline's where the empty answer made the top_k
    for question, context, top_k in cases:
        for impossible in (False, True):
            options = {"top_k": top_k, "handle_impossible_answer": impossible}
            expected = pipe(question=question, context=context, doc_stride=128, max_answer_len=15, **options)
            ours = random_qa_engine.answer_texts(question, context, **options)
            _assert_same_answers(ours, expected)
            null_ranked += any(e["answer"] == "" for e in (expected if isinstance(expected, list) else [expected]))
    assert random_qa_engine.answer_texts(*cases[0][:2]).windows > 1
    assert null_ranked > 0  # the empty answer was compared where it ranks among the spans


def test_null_answer_matches_transformers_pipeline(null_leaning_qa_checkpoint):
    """A head pushed towards [CLS]: "no answer" wins in the pipeline, and ours says the same, at the same score."""
    pipe = _pipeline(null_leaning_qa_checkpoint)
    engine = QAEngine(null_leaning_qa_checkpoint, EngineConfig(precision="fp32", token_budget=2048, max_batch_size=8))
    long_context = " ".join(f"Fact {i}: the museum in Vienna opens at nine." for i in range(60))
    cases = [("When does it open?", long_context, 2), ("Who?", "Marie Curie won two Nobel prizes.", 1)]
    for question, context, top_k in cases:
        for impossible in (False, True):
            options = {"top_k": top_k, "handle_impossible_answer": impossible}
            expected = pipe(question=question, context=context, doc_stride=128, max_answer_len=15, **options)
            ours = engine.answer_texts(question, context, **options)
            _assert_same_answers(ours, expected)
            assert (ours.answers[0].text == "") is impossible  # the null wins exactly when it may
            if impossible:
                assert ours.no_answer_score == pytest.approx(ours.answers[0].score)
    assert engine.answer_texts(*cases[0][:2]).windows > 1
