"""Property tests: for any unicode input the engine answers or refuses clearly, and offsets never lie."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.engine.engine import SentimentJob
from service.engine.errors import InputError

# Any code point Python strings can hold, lone surrogates included: JSON's "\ud800" escapes decode to them.
TEXT = st.text(st.characters(), max_size=300)
PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@PROPERTY
@given(text=TEXT)
def test_sentiment_answers_any_text_or_refuses_clearly(sentiment_engine, text):
    try:
        item = sentiment_engine.encode(text)
    except InputError as exc:
        # Long texts are truncated, so only "nothing to read" and "not Unicode" are refused.
        assert exc.code in {"empty_input", "invalid_text"}, exc.message
        return
    result = sentiment_engine.classify([SentimentJob(item, return_attention=True)]).results[0]
    assert result.label in result.probabilities
    assert abs(sum(result.probabilities.values()) - 1) < 1e-4
    for token in result.attention.tokens:
        if token.start is not None:
            assert 0 <= token.start < token.end <= len(text)


@PROPERTY
@given(question=TEXT, context=TEXT, top_k=st.integers(1, 5))
def test_qa_answers_are_always_slices_of_the_context(random_qa_engine, question, context, top_k):
    try:
        item = random_qa_engine.encode(question, context)
    except InputError as exc:
        assert exc.message and exc.code in {"empty_input", "invalid_text", "question_too_long", "context_too_long"}
        return
    result = random_qa_engine.answer([item], [top_k]).results[0]
    assert len(result.answers) <= top_k
    for answer in result.answers:
        assert 0 <= answer.start <= answer.end <= len(context)
        assert context[answer.start : answer.end] == answer.text
