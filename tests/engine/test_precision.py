"""precision="auto": the engine times the precisions when it loads and keeps the fastest; int8 only on record."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from service.engine.engine import EngineConfig, QAEngine, SentimentEngine
from service.settings import default_model_dir


def test_auto_measures_every_allowed_precision_and_keeps_the_fastest():
    """The shipped sentiment artifact records int8's cost (0 points), so int8 is timed too."""
    engine = SentimentEngine(default_model_dir("sentiment"), EngineConfig(precision="auto", threads=2))
    speeds = engine.probe.tokens_per_s
    assert set(speeds) == {"fp32", "bf16", "int8"} and all(v > 0 for v in speeds.values())
    assert engine.precision == max(speeds, key=speeds.get)
    quantized = not any(type(m) is torch.nn.Linear for m in engine.model.modules())
    assert quantized == (engine.precision == "int8")
    if not quantized:
        dtype = next(engine.model.parameters()).dtype
        assert dtype == (torch.bfloat16 if engine.precision == "bf16" else torch.float32)
    # Whichever it chose, it answers as the fp32 model does (bf16 drifts little).
    fp32 = SentimentEngine(default_model_dir("sentiment"), EngineConfig(precision="fp32"))
    text = ["a warm and funny film that never lets up"]
    assert engine.classify_texts(text)[0].label == fp32.classify_texts(text)[0].label


def test_int8_quantizes_every_linear_layer_and_answers_as_fp32():
    """Weights in int8 (dynamic quantization), the rest fp32: same labels, probabilities close, attention still a
    distribution per query."""
    texts = ["a warm and funny film that never lets up", "a dull, lifeless mess", "not bad at all, really"]
    int8 = SentimentEngine(default_model_dir("sentiment"), EngineConfig(precision="int8"))
    fp32 = SentimentEngine(default_model_dir("sentiment"), EngineConfig(precision="fp32"))
    assert int8.precision == "int8" and int8.probe.tokens_per_s == {}
    assert not any(type(m) is torch.nn.Linear for m in int8.model.modules())  # every one quantized
    assert any(type(m) is torch.nn.Linear for m in fp32.model.modules())  # the fp32 model left as it was
    for a, b in zip(int8.classify_texts(texts, return_attention=True), fp32.classify_texts(texts), strict=True):
        assert a.label == b.label
        assert a.probabilities[a.label] == pytest.approx(b.probabilities[b.label], abs=0.05)
        rows = torch.tensor(a.attention.layers[0])
        assert torch.allclose(rows.sum(-1), torch.ones(rows.shape[0]), atol=1e-3)
    question, context = "When was it named?", "The forest was named by Orellana in 1542."
    qa = QAEngine(default_model_dir("qa"), EngineConfig(precision="int8"))
    assert qa.answer_texts(question, context).answers[0].text == "1542"


@pytest.mark.parametrize(("recorded", "considered"), [(None, False), (0.3, True), (0.9, False)])
def test_auto_considers_int8_only_within_the_recorded_bound(tmp_path, recorded, considered):
    """A model whose artifact records an int8 cost of at most 0.5 points is timed in int8 too; one without that
    record, or with a larger cost, never is."""
    model_dir = tmp_path / "sentiment"
    shutil.copytree(default_model_dir("sentiment"), model_dir)
    meta = json.loads((model_dir / "attention_serve.json").read_text())
    meta.pop("int8", None)
    if recorded is not None:
        meta["int8"] = {"cost_points": recorded}
    (model_dir / "attention_serve.json").write_text(json.dumps(meta))
    engine = SentimentEngine(model_dir, EngineConfig(precision="auto", threads=1))
    assert ("int8" in engine.probe.tokens_per_s) is considered
    assert engine.precision == max(engine.probe.tokens_per_s, key=engine.probe.tokens_per_s.get)


def test_a_fixed_precision_is_not_compared_but_can_be_timed():
    engine = QAEngine(default_model_dir("qa"), EngineConfig(precision="fp32"))
    assert engine.precision == "fp32" and engine.probe.tokens_per_s == {}
    assert engine.measure_speed() > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine: GPU answers untested here")
def test_cuda_gives_the_same_answers_as_the_cpu():
    texts = ["a warm and funny film", "a dull, lifeless mess", "not bad at all"]
    cpu = SentimentEngine(default_model_dir("sentiment"), EngineConfig(precision="fp32"))
    gpu = SentimentEngine(default_model_dir("sentiment"), EngineConfig(precision="fp32", device="cuda"))
    for a, b in zip(cpu.classify_texts(texts), gpu.classify_texts(texts), strict=True):
        assert a.label == b.label
        for label, p in a.probabilities.items():
            assert b.probabilities[label] == pytest.approx(p, abs=1e-3)
    question, context = "When was it named?", "The forest was named by Orellana in 1542."
    cpu_qa = QAEngine(default_model_dir("qa"), EngineConfig(precision="fp32"))
    gpu_qa = QAEngine(default_model_dir("qa"), EngineConfig(precision="fp32", device="cuda"))
    on_cpu, on_gpu = cpu_qa.answer_texts(question, context), gpu_qa.answer_texts(question, context)
    assert on_cpu.answers[0].text == on_gpu.answers[0].text


def test_asking_for_cuda_without_one_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the error path cannot be reached")
    with pytest.raises(RuntimeError, match="no CUDA device"):
        SentimentEngine(default_model_dir("sentiment"), EngineConfig(precision="fp32", device="cuda"))
