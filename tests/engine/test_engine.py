"""Engine behaviour beyond the math: attention maps, precision, loading errors, bad input."""

import json
import shutil

import pytest
import torch

from service.engine.engine import EngineConfig, SentimentEngine
from service.engine.errors import EmptyInputError, ModelLoadError, UnsupportedModelError
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
    broken = tmp_path / "roberta"
    shutil.copytree(base_dir, broken, ignore=shutil.ignore_patterns("model.safetensors"))
    config = json.loads((broken / "config.json").read_text())
    (broken / "config.json").write_text(json.dumps({**config, "model_type": "roberta"}))
    with pytest.raises(UnsupportedModelError, match="roberta"):
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
