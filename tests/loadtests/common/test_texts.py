"""The reliability traffic: each answer must show whether it is its own request's."""

from loadtests.common.texts import Contexts, Texts


def test_qa_contexts_mix_long_and_short_and_know_their_window_counts():
    contexts = Contexts(long_every=5)
    windows = [contexts.expected_windows(i) for i in range(20)]
    assert [w > 1 for w in windows] == [i % 5 == 0 for i in range(20)]
    assert max(windows) <= 64  # under the service's window limit


def test_a_qa_answer_is_checked_against_its_own_context():
    contexts = Contexts()
    question, context = contexts.pair(7)
    start = context.index("Report 7")
    own = {"windows": contexts.expected_windows(7), "answers": [{"text": "Report 7", "start": start, "end": start + 8}]}
    assert contexts.correct(7, own)
    assert not contexts.correct(10, own)  # another request's: its window count differs
    shifted = {**own, "answers": [{"text": "Report 7", "start": start + 1, "end": start + 9}]}
    assert not contexts.correct(7, shifted)  # its text is not the context's at its offsets
    assert question and contexts.body(7) == {"question": question, "context": context}


def test_a_sentiment_answer_is_checked_by_its_token_count():
    texts = Texts()
    own = {"tokens": texts.expected_tokens(texts.text(3)), "label": "positive", "probabilities": {"positive": 1.0}}
    assert texts.correct(3, own) and not texts.correct(4, own)
