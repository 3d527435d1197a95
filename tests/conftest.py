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


def _write_qa_checkpoint(model, config: dict, base_dir, out):
    """A QA model as a plain Hugging Face BertForQuestionAnswering checkpoint, tokenizer files beside it."""
    import json
    import shutil

    from service.engine.weights import LoadedModel, ModelMeta, export_hf_checkpoint

    export_hf_checkpoint(
        LoadedModel(model, base_dir / "tokenizer.json", ModelMeta("qa", "random", "0", "t")), config, out
    )
    for name in ("tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        shutil.copy(base_dir / name, out / name)
    assert json.loads((out / "config.json").read_text())["architectures"] == ["BertForQuestionAnswering"]
    return out


def _random_span_head(base_dir):
    from service.engine.weights import load_encoder

    torch.manual_seed(0)
    model, config = load_encoder(base_dir, "qa")
    torch.nn.init.normal_(model.head.qa_outputs.weight, std=0.5)
    return model.eval(), config


@pytest.fixture(scope="session")
def random_qa_checkpoint(base_dir, tmp_path_factory):
    """The real base encoder with a seeded random span head, written as a plain Hugging Face
    BertForQuestionAnswering checkpoint: exercises the full-checkpoint loader and lets QA mechanics be
    tested (and compared with transformers' pipeline) independently of the trained head."""
    model, config = _random_span_head(base_dir)
    return _write_qa_checkpoint(model, config, base_dir, tmp_path_factory.mktemp("qa_hf"))


@pytest.fixture(scope="session")
def null_leaning_qa_checkpoint(base_dir, tmp_path_factory, tokenizer):
    """The random span head pushed towards [CLS] (both logits gain along the direction that sets [CLS]'s
    hidden state apart from the other tokens'): a model whose "no answer" wins, whatever the trained head
    does, so the null path can be compared with transformers' pipeline where it decides the answer."""
    model, config = _random_span_head(base_dir)
    hidden: list[torch.Tensor] = []
    hook = model.head.register_forward_hook(lambda _module, inputs, _out: hidden.append(inputs[0][0]))
    with torch.inference_mode():
        for question, context in [("Why?", "It rained."), ("Who?", "Marie Curie won two Nobel prizes.")]:
            window = tokenizer.encode_qa(question, context, 384, 128, 64, 64).windows[0]
            ids = torch.tensor([window.ids])
            model(ids, torch.ones_like(ids), torch.tensor([window.type_ids]))
    hook.remove()
    direction = torch.stack([h[0] for h in hidden]).mean(0) - torch.cat([h[1:] for h in hidden]).mean(0)
    with torch.no_grad():
        model.head.qa_outputs.weight += 3 * direction / direction.norm()
    return _write_qa_checkpoint(model, config, base_dir, tmp_path_factory.mktemp("qa_hf_null"))


@pytest.fixture(scope="session")
def random_qa_engine(random_qa_checkpoint) -> QAEngine:
    return QAEngine(random_qa_checkpoint, EngineConfig(precision="fp32", token_budget=2048, max_batch_size=8))
