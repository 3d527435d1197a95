"""`attention-serve run` refuses a model it could not serve before it starts anything, saying why."""

from __future__ import annotations

import json
import shutil

import pytest

from service.cli import _models_arg, main
from service.settings import default_model_dir


def test_an_unsupported_checkpoint_is_refused_at_start_naming_the_supported_families(tmp_path):
    gpt2 = tmp_path / "gpt2"
    gpt2.mkdir()
    (gpt2 / "config.json").write_text(json.dumps({"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]}))
    with pytest.raises(SystemExit) as stopped:
        main(["run", "--sentiment-model", str(gpt2)])
    message = str(stopped.value)
    assert "model_type 'gpt2' is not supported" in message
    for family in ("BERT", "DistilBERT", "RoBERTa", "XLM-RoBERTa", "ELECTRA", "DeBERTa-v2/v3", "ModernBERT"):
        assert family in message


def test_a_checkpoint_for_the_other_task_or_without_weights_is_refused_at_start(tmp_path):
    with pytest.raises(SystemExit, match="holds a 'sentiment' model, not 'qa'"):
        main(["run", "--qa-model", str(default_model_dir("sentiment"))])
    missing = tmp_path / "nothing"
    with pytest.raises(SystemExit, match="does not exist"):
        main(["run", "--sentiment-model", str(missing)])
    from service.engine.layout import default_base_dir

    no_weights = tmp_path / "no-weights"
    shutil.copytree(default_base_dir(), no_weights, ignore=shutil.ignore_patterns("*.safetensors", "*.bin"))
    with pytest.raises(SystemExit, match="neither model.safetensors nor pytorch_model.bin"):
        main(["run", "--sentiment-model", str(no_weights)])


def test_model_flags_name_one_model_or_several():
    assert _models_arg(["./a"], "--sentiment-model") == {"model_dir": "./a"}
    assert _models_arg(["x=./a", "y=./b"], "--sentiment-model") == {"models": {"x": "./a", "y": "./b"}}
    with pytest.raises(SystemExit, match="ID=DIR"):
        _models_arg(["./a", "./b"], "--sentiment-model")
