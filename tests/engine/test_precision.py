"""precision="auto": the engine times both precisions when it loads and keeps the faster one."""

from __future__ import annotations

import pytest
import torch

from service.engine.engine import EngineConfig, QAEngine, SentimentEngine
from service.settings import default_model_dir


def test_auto_measures_both_precisions_and_keeps_the_faster():
    engine = SentimentEngine(default_model_dir("sentiment"), EngineConfig(precision="auto", threads=2))
    speeds = engine.probe.tokens_per_s
    assert set(speeds) == {"fp32", "bf16"} and all(v > 0 for v in speeds.values())
    assert engine.precision == max(speeds, key=speeds.get)
    dtype = next(engine.model.parameters()).dtype
    assert dtype == (torch.bfloat16 if engine.precision == "bf16" else torch.float32)
    # Whichever it chose, it answers as the fp32 model does (bf16 drifts little).
    fp32 = SentimentEngine(default_model_dir("sentiment"), EngineConfig(precision="fp32"))
    text = ["a warm and funny film that never lets up"]
    assert engine.classify_texts(text)[0].label == fp32.classify_texts(text)[0].label


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
