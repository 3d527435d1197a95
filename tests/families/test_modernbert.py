"""ModernBERT checkpoints served by the engine answer as transformers' ModernBERT does (its eager / sdpa path).

Tiny random checkpoints (tests/families/tiny.py) with a sliding window of 8 (a local query sees 4 keys either side)
and one global layer in three, fed inputs longer than the window and padded batches, so the sliding-window ∧ padding
mask is exercised: in one config "cls" pooling and no biases, in the other "mean" pooling, every bias flag on and
other rotary thetas. The tokenizer is ModernBERT's kind: byte-level BPE with a [CLS] a [SEP] b [SEP] template.
"""

from __future__ import annotations

import json
import re
import shutil

import pytest
import torch

from service.engine.engine import EngineConfig, QAEngine, SentimentEngine
from service.engine.errors import UnsupportedModelError
from service.engine.weights import load_task_model
from tests.families.tiny import (
    LABELS,
    WINDOW,
    modernbert_config,
    modernbert_tokenizer,
    save_checkpoint,
    sharpen,
    task_model,
)

transformers = pytest.importorskip("transformers", reason="transformers is a test dependency (pip install .[test])")

TEXTS = [
    "The Eiffel Tower was finished in 1889 and stands in Paris; Marie Curie won two Nobel prizes, in physics.",
    "A gorgeous, moving film.",
    "naïve café 東京",
    "dull",
    "The Amazon rainforest was named by Francisco de Orellana in 1542.",
]
QA_PAIRS = [
    ("When was the tower finished?", "The Eiffel Tower was finished in 1889 and stands in Paris."),
    ("Who named the forest?", "The Amazon rainforest was named by Francisco de Orellana in 1542."),
    ("Who won two prizes?", "Marie Curie won two Nobel prizes, in physics and in chemistry. " * 6),
]
# (config overrides, tasks) per variant.
VARIANTS = {
    "cls": {"classifier_pooling": "cls", "global_attn_every_n_layers": 3},
    "mean": {
        "classifier_pooling": "mean",
        "global_attn_every_n_layers": 2,
        "norm_bias": True,
        "attention_bias": True,
        "mlp_bias": True,
        "classifier_bias": True,
        "global_rope_theta": 50_000.0,
        "local_rope_theta": 500.0,
        "classifier_activation": "silu",
    },
}
FP32 = EngineConfig(precision="fp32", threads=2)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Each variant × task as a saved directory, built once."""
    t = transformers
    classes = {"sentiment": t.ModernBertForSequenceClassification, "qa": t.ModernBertForQuestionAnswering}
    tok = modernbert_tokenizer()
    out = {}
    for variant, overrides in VARIANTS.items():
        for seed, task in enumerate(("sentiment", "qa")):
            model = task_model(t.ModernBertConfig, classes, task, seed=seed, **modernbert_config(tok, **overrides))
            sharpen(model, seed)
            out[variant, task] = save_checkpoint(model, tok, tmp_path_factory.mktemp(f"modernbert-{variant}-{task}"))
    return out


def _padded(engine, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    encoded = [engine.encode(t) for t in texts]
    width = max(len(e) for e in encoded)
    ids = torch.full((len(encoded), width), engine.tokenizer.pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, e in enumerate(encoded):
        ids[row, : len(e)] = torch.tensor(e.ids)
        mask[row, : len(e)] = 1
    lengths = mask.sum(dim=1)
    # Longer than the window, and padded so far that a padding query's window holds no real token.
    assert lengths.max() > 2 * WINDOW and lengths.min() + WINDOW // 2 < width - WINDOW // 2
    return ids, mask


def _max_diff_on_real_tokens(ours: torch.Tensor, theirs: torch.Tensor, mask: torch.Tensor) -> float:
    real = mask.bool()
    return float((ours[real] - theirs[real]).abs().max())


@pytest.mark.parametrize("variant", VARIANTS)
def test_padded_batch_hidden_states_and_attention_match_transformers(checkpoints, variant):
    """Our encoder on a padded batch, fused and explicit, against ModernBertModel (eager and sdpa)."""
    model_dir = checkpoints[variant, "sentiment"]
    engine = SentimentEngine(model_dir, FP32)
    assert engine.info.family == "ModernBERT"
    ids, mask = _padded(engine, TEXTS)
    eager = transformers.AutoModel.from_pretrained(str(model_dir), attn_implementation="eager").eval()
    sdpa = transformers.AutoModel.from_pretrained(str(model_dir), attn_implementation="sdpa").eval()
    with torch.no_grad():
        fused, no_weights = engine.model.encoder(ids, mask)
        explicit, weights = engine.model.encoder(ids, mask, need_weights=True)
        expected = eager(input_ids=ids, attention_mask=mask, output_attentions=True)
        expected_sdpa = sdpa(input_ids=ids, attention_mask=mask).last_hidden_state
    assert no_weights == []
    assert torch.isfinite(fused).all() and torch.isfinite(explicit).all()  # padding rows too: no all-masked row
    assert _max_diff_on_real_tokens(fused, expected.last_hidden_state, mask) < 1e-4
    assert _max_diff_on_real_tokens(explicit, expected.last_hidden_state, mask) < 1e-4
    assert _max_diff_on_real_tokens(fused, expected_sdpa, mask) < 1e-4
    assert len(weights) == len(expected.attentions) == 4
    for layer, (ours_layer, their_layer) in enumerate(zip(weights, expected.attentions, strict=True)):
        assert torch.isfinite(ours_layer).all()
        for row in range(len(TEXTS)):
            n = int(mask[row].sum())
            assert (ours_layer[row, :, :n, :n] - their_layer[row, :, :n, :n]).abs().max() < 1e-5
            assert (ours_layer[row, :, :n, n:] == 0).all()  # real queries never look at padding
        if layer % VARIANTS[variant]["global_attn_every_n_layers"]:  # local: nothing beyond half the window
            far = torch.arange(ids.size(1))
            outside = (far[None, :] - far[:, None]).abs() > WINDOW // 2
            assert (ours_layer[:, :, outside] == 0).all()


@pytest.mark.parametrize("variant", VARIANTS)
def test_padded_batch_logits_match_transformers(checkpoints, variant):
    """The whole task model on a padded batch ("mean" pooling must average real tokens only) against transformers,
    and each text alone gives what it gives in the batch."""
    model_dir = checkpoints[variant, "sentiment"]
    engine = SentimentEngine(model_dir, FP32)
    ids, mask = _padded(engine, TEXTS)
    reference = transformers.AutoModelForSequenceClassification.from_pretrained(
        str(model_dir), attn_implementation="eager"
    ).eval()
    with torch.no_grad():
        fused, _ = engine.model(ids, mask)
        explicit, _ = engine.model(ids, mask, need_weights=True)
        expected = reference(input_ids=ids, attention_mask=mask).logits
        alone = [engine.model(ids[i : i + 1, :n], mask[i : i + 1, :n])[0] for i, n in enumerate(mask.sum(dim=1))]
    assert (fused - expected).abs().max() < 1e-4
    assert (explicit - expected).abs().max() < 1e-4
    assert (torch.cat(alone) - fused).abs().max() < 1e-4


@pytest.mark.parametrize("variant", VARIANTS)
def test_sentiment_matches_the_transformers_pipeline(checkpoints, variant):
    model_dir = checkpoints[variant, "sentiment"]
    engine = SentimentEngine(model_dir, FP32)
    assert engine.info.labels == tuple(LABELS.values())  # exactly as id2label names them, case and all
    ours = engine.classify_texts(TEXTS, return_attention=True)
    pipe = transformers.pipeline("text-classification", model=str(model_dir), top_k=None, device="cpu")
    for text, result in zip(TEXTS, ours, strict=True):
        expected = {row["label"]: row["score"] for row in pipe([text])[0]}
        assert set(result.probabilities) == set(expected)
        for label, score in expected.items():
            assert result.probabilities[label] == pytest.approx(score, abs=3e-3)
        assert result.label == max(expected, key=expected.get)
        assert result.attention is not None and len(result.attention.tokens) == result.tokens


@pytest.mark.parametrize("variant", VARIANTS)
def test_qa_matches_the_transformers_pipeline(checkpoints, variant):
    model_dir = checkpoints[variant, "qa"]
    engine = QAEngine(model_dir, FP32)
    pipe = transformers.pipeline("question-answering", model=str(model_dir), device="cpu")
    for question, context in QA_PAIRS:
        ours = engine.answer_texts(question, context, max_seq_len=64, doc_stride=16)
        expected = pipe(question=question, context=context, max_seq_len=64, doc_stride=16)
        best = ours.answers[0]
        assert (best.text, best.start, best.end) == (expected["answer"], expected["start"], expected["end"])
        assert best.score == pytest.approx(expected["score"], abs=1e-3)
    assert engine.encode(*QA_PAIRS[2], max_seq_len=64, doc_stride=16).windows[2:]  # the long one had windows


@pytest.mark.parametrize("variant", VARIANTS)
def test_qa_logits_match_transformers(checkpoints, variant):
    """Raw start/end logits of a padded batch of windows against ModernBertForQuestionAnswering."""
    model_dir = checkpoints[variant, "qa"]
    engine = QAEngine(model_dir, FP32)
    reference = transformers.AutoModelForQuestionAnswering.from_pretrained(str(model_dir)).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(model_dir))
    windows = [engine.encode(q, c).windows[0] for q, c in QA_PAIRS]
    for window, (question, context) in zip(windows, QA_PAIRS, strict=True):
        assert window.ids == tokenizer(question, context)["input_ids"]  # the family's own special tokens
    width = max(len(w) for w in windows)
    ids = torch.full((len(windows), width), engine.tokenizer.pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, window in enumerate(windows):
        ids[row, : len(window)] = torch.tensor(window.ids)
        mask[row, : len(window)] = 1
    with torch.no_grad():
        (start, end), _ = engine.model(ids, mask)
        expected = reference(input_ids=ids, attention_mask=mask)
    assert _max_diff_on_real_tokens(start, expected.start_logits, mask) < 1e-4
    assert _max_diff_on_real_tokens(end, expected.end_logits, mask) < 1e-4


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("hidden_activation", "gelu_python"),
        ("classifier_activation", "quick_gelu"),
        ("classifier_pooling", "max"),
        ("rope_scaling", {"rope_type": "linear", "factor": 2.0}),
        ("partial_rotary_factor", 0.5),
        ("head_dim", 16),
        ("global_attn_every_n_layers", 0),
        ("local_attention", -1),
    ],
)
def test_unsupported_settings_are_refused_by_name(tmp_path, checkpoints, setting, value):
    model_dir = tmp_path / "unsupported"
    shutil.copytree(checkpoints["cls", "sentiment"], model_dir)
    config = json.loads((model_dir / "config.json").read_text())
    config[setting] = value
    (model_dir / "config.json").write_text(json.dumps(config))
    with pytest.raises(UnsupportedModelError, match=re.escape(f"{setting}={value!r}")):
        load_task_model(model_dir, "sentiment")


def test_a_bare_encoder_checkpoint_loads_as_a_base(tmp_path, checkpoints):
    """ModernBertModel saved alone (no `model.` prefix, no head) gives the encoder its weights."""
    from service.engine.weights import load_encoder

    source = checkpoints["cls", "sentiment"]
    bare = transformers.AutoModel.from_pretrained(str(source))
    bare.save_pretrained(tmp_path / "bare")
    model, _ = load_encoder(tmp_path / "bare", "sentiment", num_labels=3)
    served = load_task_model(source, "sentiment").model
    for name, tensor in served.encoder.state_dict().items():
        assert torch.equal(model.encoder.state_dict()[name], tensor), name
