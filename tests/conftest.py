"""Shared fixtures: the real pretrained base and the shipped task models, loaded once per session."""

from __future__ import annotations

import pytest
import torch

from service.engine.engine import EngineConfig, QAEngine, SentimentEngine
from service.engine.layout import default_base_dir
from service.engine.tokenize import TextTokenizer
from service.settings import default_model_dir

# Two cores: keep torch from oversubscribing when Ray and the tests share the machine.
torch.set_num_threads(2)


@pytest.fixture(scope="session")
def base_dir():
    return default_base_dir()


@pytest.fixture(scope="session")
def tokenizer(base_dir) -> TextTokenizer:
    return TextTokenizer(base_dir / "tokenizer.json", max_tokens=512)


@pytest.fixture(scope="session")
def sentiment_engine() -> SentimentEngine:
    return SentimentEngine(default_model_dir("sentiment"), EngineConfig(precision="fp32"))


@pytest.fixture(scope="session")
def qa_engine() -> QAEngine:
    return QAEngine(default_model_dir("qa"), EngineConfig(precision="fp32"))


@pytest.fixture(scope="session")
def random_qa_checkpoint(base_dir, tmp_path_factory):
    """The real base encoder with a seeded random span head, written as a plain Hugging Face
    BertForQuestionAnswering checkpoint: exercises the full-checkpoint loader and lets QA mechanics be
    tested (and compared with transformers' pipeline) independently of the trained head."""
    import json
    import shutil

    from service.engine.weights import LoadedModel, ModelInfo, export_hf_checkpoint, load_encoder

    torch.manual_seed(0)
    model, config = load_encoder(base_dir, "qa")
    torch.nn.init.normal_(model.head.qa_outputs.weight, std=0.5)
    out = tmp_path_factory.mktemp("qa_hf")
    export_hf_checkpoint(
        LoadedModel(model, base_dir / "tokenizer.json", ModelInfo("qa", "random", "0", "t")), config, out
    )
    for name in ("tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        shutil.copy(base_dir / name, out / name)
    assert json.loads((out / "config.json").read_text())["architectures"] == ["BertForQuestionAnswering"]
    return out


@pytest.fixture(scope="session")
def random_qa_engine(random_qa_checkpoint) -> QAEngine:
    return QAEngine(random_qa_checkpoint, EngineConfig(precision="fp32", token_budget=2048, max_batch_size=8))
