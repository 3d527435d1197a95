"""BERT, DistilBERT, RoBERTa, XLM-RoBERTa and ELECTRA checkpoints served by the engine answer as transformers does.

Each family is a tiny random checkpoint saved with `save_pretrained` beside a tokenizer trained in the test
(tests/families/tiny.py), in the configurations that exercise what differs: RoBERTa's pad id 1 and eps 1e-5,
ELECTRA's embeddings narrower than its hidden size, DistilBERT's names and missing token types.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from service.engine.engine import EngineConfig, QAEngine, SentimentEngine
from service.engine.errors import ModelLoadError
from service.engine.weights import load_task_model
from tests.families.tiny import LABELS, build_checkpoint

transformers = pytest.importorskip("transformers", reason="transformers is a test dependency (pip install .[test])")

TEXTS = [
    "A gorgeous, moving film.",
    "The Eiffel Tower was finished in 1889 and stands in Paris; Marie Curie won two Nobel prizes.",
    "naïve café 東京",
    "dull",
]
QA_PAIRS = [
    ("When was the tower finished?", "The Eiffel Tower was finished in 1889 and stands in Paris."),
    ("Who won two prizes?", "Marie Curie won two Nobel prizes, in physics and in chemistry. " * 6),
]


FAMILIES = ["bert", "distilbert", "roberta", "xlm-roberta", "electra"]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Every family × task as a saved directory, built once."""
    return {
        (family, task): build_checkpoint(family, task, tmp_path_factory.mktemp(f"{family}-{task}"))
        for family in FAMILIES
        for task in ("sentiment", "qa")
    }


FP32 = EngineConfig(precision="fp32", threads=2)


@pytest.mark.parametrize("family", FAMILIES)
def test_sentiment_matches_the_transformers_pipeline(checkpoints, family):
    model_dir = checkpoints[family, "sentiment"]
    engine = SentimentEngine(model_dir, FP32)
    assert engine.info.labels == tuple(LABELS.values())  # exactly as id2label names them, case and all
    ours = engine.classify_texts(TEXTS)
    pipe = transformers.pipeline("text-classification", model=str(model_dir), top_k=None, device="cpu")
    for text, result in zip(TEXTS, ours, strict=True):
        expected = {row["label"]: row["score"] for row in pipe([text])[0]}
        assert set(result.probabilities) == set(expected)
        for label, score in expected.items():
            assert result.probabilities[label] == pytest.approx(score, abs=3e-3)
        assert result.label == max(expected, key=expected.get)


@pytest.mark.parametrize("family", FAMILIES)
def test_padded_batch_logits_and_attention_match_transformers(checkpoints, family):
    """The engine's model on a padded batch, fused and explicit, against the reference's logits and attention."""
    model_dir = checkpoints[family, "sentiment"]
    engine = SentimentEngine(model_dir, FP32)
    reference = transformers.AutoModelForSequenceClassification.from_pretrained(
        str(model_dir), attn_implementation="eager"
    ).eval()
    encoded = [engine.encode(t) for t in TEXTS]
    width = max(len(e) for e in encoded)
    ids = torch.full((len(encoded), width), engine.tokenizer.pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, e in enumerate(encoded):
        ids[row, : len(e)] = torch.tensor(e.ids)
        mask[row, : len(e)] = 1
    assert mask.sum() < mask.numel()
    with torch.no_grad():
        fused, _ = engine.model(ids, mask)
        explicit, weights = engine.model(ids, mask, need_weights=True)
        expected = reference(input_ids=ids, attention_mask=mask, output_attentions=True)
    assert (fused - expected.logits).abs().max() < 1e-4
    assert (explicit - expected.logits).abs().max() < 1e-4
    real = mask.bool()
    for ours_layer, their_layer in zip(weights, expected.attentions, strict=True):
        for row in range(len(encoded)):
            n = int(real[row].sum())
            assert (ours_layer[row, :, :n, :n] - their_layer[row, :, :n, :n]).abs().max() < 1e-5


@pytest.mark.parametrize("family", FAMILIES)
def test_qa_matches_the_transformers_pipeline(checkpoints, family):
    model_dir = checkpoints[family, "qa"]
    engine = QAEngine(model_dir, FP32)
    pipe = transformers.pipeline("question-answering", model=str(model_dir), device="cpu")
    for question, context in QA_PAIRS:
        ours = engine.answer_texts(question, context, max_seq_len=64, doc_stride=16)
        expected = pipe(question=question, context=context, max_seq_len=64, doc_stride=16)
        best = ours.answers[0]
        assert (best.text, best.start, best.end) == (expected["answer"], expected["start"], expected["end"])
        assert best.score == pytest.approx(expected["score"], abs=1e-3)
    assert engine.encode(*QA_PAIRS[1], max_seq_len=64, doc_stride=16).windows[1:]  # the long one had windows


@pytest.mark.parametrize("family", FAMILIES)
def test_qa_logits_match_transformers(checkpoints, family):
    model_dir = checkpoints[family, "qa"]
    engine = QAEngine(model_dir, FP32)
    reference = transformers.AutoModelForQuestionAnswering.from_pretrained(str(model_dir)).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(model_dir))
    question, context = QA_PAIRS[0]
    window = engine.encode(question, context).windows[0]
    expected_inputs = tokenizer(question, context, return_tensors="pt")
    assert window.ids == expected_inputs["input_ids"][0].tolist()  # the family's own special tokens
    ids = torch.tensor([window.ids])
    with torch.no_grad():
        (start, end), _ = engine.model(ids, torch.ones_like(ids), torch.tensor([window.type_ids]))
        expected = reference(**expected_inputs)
    assert (start - expected.start_logits).abs().max() < 1e-4
    assert (end - expected.end_logits).abs().max() < 1e-4


def test_roberta_answers_keep_byte_level_offsets_right(checkpoints):
    """Byte-level BPE marks a word's leading space in the token ("Ġtower"): spans still point at the words."""
    engine = QAEngine(checkpoints["roberta", "qa"], FP32)
    context = QA_PAIRS[0][1]
    for answer in engine.answer_texts("When was it finished?", context, top_k=5).answers:
        assert answer.text == context[answer.start : answer.end] and answer.text == answer.text.strip()


def test_multi_label_checkpoints_score_each_label_with_a_sigmoid(tmp_path):
    model_dir = build_checkpoint("bert", "sentiment", tmp_path / "multi")
    config = json.loads((model_dir / "config.json").read_text())
    (model_dir / "config.json").write_text(json.dumps({**config, "problem_type": "multi_label_classification"}))
    engine = SentimentEngine(model_dir, FP32)
    assert engine.info.multi_label
    pipe = transformers.pipeline("text-classification", model=str(model_dir), top_k=None, device="cpu")
    for text, result in zip(TEXTS, engine.classify_texts(TEXTS), strict=True):
        expected = {row["label"]: row["score"] for row in pipe([text])[0]}
        assert result.probabilities == pytest.approx(expected, abs=3e-3)
    assert sum(result.probabilities.values()) != pytest.approx(1.0, abs=1e-3)  # independent, not one distribution


def test_a_checkpoint_without_label_names_gets_transformers_defaults(tmp_path, checkpoints):
    model_dir = tmp_path / "unnamed"
    shutil.copytree(checkpoints["bert", "sentiment"], model_dir)
    config = json.loads((model_dir / "config.json").read_text())
    del config["id2label"], config["label2id"]
    config["num_labels"] = 3
    (model_dir / "config.json").write_text(json.dumps(config))
    assert load_task_model(model_dir, "sentiment").info.labels == ("LABEL_0", "LABEL_1", "LABEL_2")


def test_old_checkpoint_layouts_load(tmp_path, checkpoints):
    """pytorch_model.bin, LayerNorm.gamma/beta names, stray position_ids, and a vocab.txt without tokenizer.json."""
    source = checkpoints["bert", "sentiment"]
    model_dir = tmp_path / "old"
    shutil.copytree(source, model_dir, ignore=shutil.ignore_patterns("model.safetensors", "tokenizer.json"))
    from safetensors.torch import load_file

    tensors = load_file(str(source / "model.safetensors"))
    renamed = {
        k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
        for k, v in tensors.items()
    }
    renamed["bert.embeddings.position_ids"] = torch.arange(512)[None]
    torch.save(renamed, model_dir / "pytorch_model.bin")
    fast = transformers.AutoTokenizer.from_pretrained(str(source))
    (model_dir / "vocab.txt").write_text("\n".join(sorted(fast.get_vocab(), key=fast.get_vocab().get)) + "\n")
    old, new = SentimentEngine(model_dir, FP32), SentimentEngine(source, FP32)
    assert old.encode(TEXTS[0]).ids == new.encode(TEXTS[0]).ids
    for a, b in zip(old.classify_texts(TEXTS), new.classify_texts(TEXTS), strict=True):
        assert a.probabilities == pytest.approx(b.probabilities, abs=1e-6)


def test_sentencepiece_only_directory_is_refused_with_the_command_that_converts_it(tmp_path, checkpoints):
    model_dir = tmp_path / "spm"
    shutil.copytree(checkpoints["xlm-roberta", "sentiment"], model_dir, ignore=shutil.ignore_patterns("tokenizer.json"))
    (model_dir / "sentencepiece.bpe.model").write_bytes(b"\x00")
    with pytest.raises(ModelLoadError, match=r"SentencePiece model .* convert it once with: .*save_pretrained"):
        SentimentEngine(model_dir, FP32)


def test_a_checkpoint_for_the_other_task_is_refused_by_name(checkpoints):
    with pytest.raises(ModelLoadError, match="RobertaForQuestionAnswering checkpoint; the sentiment task serves"):
        load_task_model(checkpoints["roberta", "qa"], "sentiment")
