"""Engine behaviour beyond the math: attention maps, precision, loading errors, bad input, "no answer"."""

import json
import shutil

import pytest
import torch

from service.engine.engine import EngineConfig, SentimentEngine
from service.engine.errors import EmptyInputError, ModelLoadError, UnsupportedModelError
from service.engine.results import Answer
from service.engine.weights import load_task_model
from service.settings import default_model_dir


def test_sentiment_attention_map_is_a_distribution_over_the_text(sentiment_engine):
    text = "The film is a quiet triumph."
    result = sentiment_engine.classify_texts([text], return_attention=True)[0]
    attention = result.attention
    assert attention is not None and attention.query == "cls"
    assert len(attention.layers) == 6
    assert all(len(layer) == len(attention.tokens) for layer in attention.layers)
    for row in [*attention.layers, attention.rollout]:
        assert sum(row) == pytest.approx(1.0, abs=1e-4) and min(row) >= 0
    words = [text[t.start : t.end] for t in attention.tokens if t.source == "text"]
    assert words == ["The", "film", "is", "a", "quiet", "triumph", "."]
    assert [t.source for t in attention.tokens][0] == "special"
    # Asking for attention must not change the answer.
    plain = sentiment_engine.classify_texts([text])[0]
    assert plain.probabilities == pytest.approx(result.probabilities, abs=1e-4)


def test_qa_attention_map_comes_from_the_answer(random_qa_engine):
    context = "The Eiffel Tower is a wrought-iron lattice tower in Paris, finished in 1889."
    item = random_qa_engine.encode("When was it finished?", context)
    result = random_qa_engine.answer([item], return_attention=[True]).results[0]
    attention = result.attention
    assert attention is not None and attention.query == "answer"
    sources = {t.source for t in attention.tokens}
    assert sources == {"special", "question", "context"}
    for t in attention.tokens:
        if t.source == "context":
            assert context[t.start : t.end].strip()
    assert sum(attention.rollout) == pytest.approx(1.0, abs=1e-4)


def test_bf16_stays_close_to_fp32():
    texts = ["a gorgeous, moving film", "dull, lifeless and far too long", "it has its moments"]
    fp32 = SentimentEngine(default_model_dir("sentiment"), EngineConfig(precision="fp32")).classify_texts(texts)
    bf16 = SentimentEngine(default_model_dir("sentiment"), EngineConfig(precision="bf16")).classify_texts(texts)
    for a, b in zip(fp32, bf16, strict=True):
        assert a.label == b.label
        assert a.probabilities["positive"] == pytest.approx(b.probabilities["positive"], abs=0.03)


def test_engine_refuses_empty_text(sentiment_engine):
    with pytest.raises(EmptyInputError):
        sentiment_engine.encode(" \t ")


def test_missing_and_unsupported_models_fail_at_load(tmp_path, base_dir):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_task_model(tmp_path / "nope", "sentiment")
    broken = tmp_path / "gpt2"
    shutil.copytree(base_dir, broken)
    config = json.loads((broken / "config.json").read_text())
    (broken / "config.json").write_text(json.dumps({**config, "model_type": "gpt2"}))
    with pytest.raises(UnsupportedModelError, match="'gpt2' is not supported; supported families: BERT, DistilBERT"):
        load_task_model(broken, "sentiment")
    (broken / "config.json").write_text(json.dumps(config))
    (broken / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="neither model.safetensors nor pytorch_model.bin"):
        load_task_model(broken, "sentiment")
    with pytest.raises(ModelLoadError, match="holds a 'sentiment' model"):
        load_task_model(default_model_dir("sentiment"), "qa")


def test_shape_mismatch_is_reported_with_the_weight_name(tmp_path, base_dir):
    from safetensors.torch import save_file

    bad = tmp_path / "bad"
    shutil.copytree(base_dir, bad)
    config = json.loads((bad / "config.json").read_text())
    (bad / "config.json").write_text(json.dumps({**config, "intermediate_size": 1000}))
    save_file({"classifier.weight": torch.zeros(2, 384)}, str(tmp_path / "unused.safetensors"))
    with pytest.raises(ModelLoadError, match=r"intermediate\.dense\.(weight|bias) has shape"):
        load_task_model(bad, "sentiment")


NO_ANSWER_CONTEXT = (
    "The Amazon rainforest covers much of the Amazon basin of South America. "
    "The forest was named by the Spanish explorer Francisco de Orellana in 1542."
)
NO_ANSWER_CASES = [
    ("Who named the forest?", NO_ANSWER_CONTEXT),
    ("What is the boiling point of mercury?", NO_ANSWER_CONTEXT),  # not in the context
    ("Who won the match?", " ".join(f"Fact {i}: the museum in Vienna opens at nine." for i in range(60))),
]


def _null_score_by_hand(engine, item) -> float:
    """The lowest over windows of p_start[CLS] · p_end[CLS], softmax over [CLS] and the context tokens, from the
    model's raw logits: independent of the decoding code."""
    scores = []
    for window in item.windows:
        ids = torch.tensor([window.ids])
        with torch.inference_mode():
            (start, end), _ = engine.model(ids, torch.ones_like(ids), torch.tensor([window.type_ids]))
        allowed = torch.tensor([k == 0 or o is not None for k, o in enumerate(window.context_offsets)])
        p_start = start[0].float().masked_fill(~allowed, float("-inf")).softmax(-1)
        p_end = end[0].float().masked_fill(~allowed, float("-inf")).softmax(-1)
        scores.append(float(p_start[0] * p_end[0]))
    return min(scores)


@pytest.mark.parametrize(("question", "context"), NO_ANSWER_CASES)
def test_no_answer_option_with_the_shipped_model(qa_engine, question, context):
    """Whatever the trained head thinks of this question: off, never the empty answer; on, the empty answer
    ranks by the null score among the very same spans (and leads only when it beats every one of them)."""
    item = qa_engine.encode(question, context)
    off, on = qa_engine.answer([item, item], [3, 3], return_attention=[False, True],
                               handle_impossible_answer=[False, True]).results  # fmt: skip
    assert off.no_answer_score is None and all(a.text for a in off.answers)
    null = on.no_answer_score
    assert null is not None and 0 < null <= 1
    assert null == pytest.approx(_null_score_by_hand(qa_engine, item), rel=1e-4, abs=1e-9)
    expected = sorted([*off.answers, Answer("", null, 0, 0)], key=lambda a: -a.score)[:3]
    assert [(a.text, a.start, a.end) for a in on.answers] == [(a.text, a.start, a.end) for a in expected]
    assert [a.score for a in on.answers] == pytest.approx([a.score for a in expected], rel=1e-5)
    empty = [a for a in on.answers if not a.text]
    assert len(empty) <= 1 and all((a.start, a.end, a.score) == (0, 0, null) for a in empty)
    if on.answers[0].text == "":
        assert all(null > a.score for a in off.answers)
        assert on.attention is not None and on.attention.query == "cls"  # what the model looked at for "none"
    else:
        assert on.answers[0].text == off.answers[0].text and null <= on.answers[0].score
        assert on.attention is not None and on.attention.query == "answer"
    assert on.windows == len(item.windows) and (on.windows > 1) == (len(context) > 1000)  # long: a min over windows
