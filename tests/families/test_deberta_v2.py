"""DeBERTa-v2/v3 checkpoints served by the engine answer as transformers' DebertaV2 models do.

Tiny random checkpoints (tests/families/tiny.py) with 8 position buckets over 16 relative positions, fed inputs
of up to 40 tokens, so relative distances fall in the exact range, the log-bucketed one and the clamped one.
Variants: "v3" (shared attention keys, no absolute positions, no token types, LayerNormed relative embeddings);
"v2" (pos_key/pos_query projections, absolute positions, two token types, narrower embeddings projected up,
the v2-xlarge convolution, unbucketed relative positions); "c2p" (one position term only); "absolute" (no
relative attention at all, the scale still counting pos_att_type, as upstream).

Sentiment checkpoints use tiny.py's trained DeBERTa-v3-kind tokenizer. QA checkpoints use the same kind of
tokenizer (Unigram, "▁", [CLS] a [SEP] b [SEP]) with every corpus word one piece, so that no word is cut at a
window edge: there the engine puts the whole word's characters in an answer and the pipeline only the part inside
the window, a difference of the shared span decoding (any family with subword pieces), not of this one's.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

from service.engine.engine import EngineConfig, QAEngine, SentimentEngine
from service.engine.errors import UnsupportedModelError
from service.engine.families import family_for
from service.engine.weights import load_encoder, load_task_model
from tests.families.tiny import CORPUS, LABELS, save_checkpoint, task_model, unigram_tokenizer

transformers = pytest.importorskip("transformers", reason="transformers is a test dependency (pip install .[test])")

TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64}
VARIANTS = {
    "v3": dict(
        TINY,
        relative_attention=True,
        position_buckets=8,
        max_relative_positions=16,
        pos_att_type=["p2c", "c2p"],
        share_att_key=True,
        norm_rel_ebd="layer_norm",
        position_biased_input=False,
        type_vocab_size=0,
    ),
    "v2": dict(
        TINY,
        num_hidden_layers=3,
        relative_attention=True,
        max_relative_positions=16,
        pos_att_type="c2p|p2c",
        position_biased_input=True,
        type_vocab_size=2,
        embedding_size=16,
        conv_kernel_size=3,
        conv_act="gelu",
    ),
    "c2p": dict(
        TINY,
        relative_attention=True,
        position_buckets=8,
        max_relative_positions=16,
        pos_att_type=["c2p"],
        norm_rel_ebd="layer_norm",
        position_biased_input=False,
    ),
    "absolute": dict(TINY, relative_attention=False, pos_att_type=["p2c", "c2p"], type_vocab_size=2),
}
TEXTS = [
    "The Eiffel Tower was finished in 1889 and stands in Paris; Marie Curie won two Nobel prizes, in physics.",
    "A gorgeous, moving film.",
    "naïve café 東京",
    "dull",
]
QA_PAIRS = [
    ("When was the tower finished?", "The Eiffel Tower was finished in 1889 and stands in Paris."),
    ("Who named the forest?", "The Amazon rainforest was named by Francisco de Orellana in 1542."),
    ("Who won two prizes?", "Marie Curie won two Nobel prizes, in physics and in chemistry. " * 6),
]
FP32 = EngineConfig(precision="fp32", threads=2)
LENGTHS = [40, 23, 6]  # beyond the clamp (16), in the log buckets (5..16), within the exact range (±4)


def whole_word_tokenizer() -> Tokenizer:
    """DeBERTa-v3's kind (Unigram over "▁"-marked words, [CLS] a [SEP] b [SEP]) with each corpus word one piece,
    and single characters for anything else; built from a fixed vocabulary, so the same on every run."""
    specials = ["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"]
    words = sorted({"▁" + word for line in CORPUS for word in line.split()})
    chars = sorted({ch for line in CORPUS for ch in line if not ch.isspace()} | {"▁"})
    pieces = {**dict.fromkeys(specials, 0.0), **dict.fromkeys(words, -1.0)}
    pieces.update({c: -10.0 for c in chars if c not in pieces})
    tok = Tokenizer(models.Unigram(list(pieces.items()), unk_id=specials.index("[UNK]")))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", 1), ("[SEP]", 2)]
    )
    return tok


def _config(variant: str, vocab: int, **extra):
    return transformers.DebertaV2Config(vocab_size=vocab, **{**VARIANTS[variant], **extra})


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """v3 and v2 × sentiment and QA as saved directories, built once."""
    t = transformers
    classes = {"sentiment": t.DebertaV2ForSequenceClassification, "qa": t.DebertaV2ForQuestionAnswering}
    tokenizers = {"sentiment": unigram_tokenizer("deberta"), "qa": whole_word_tokenizer()}
    out = {}
    for variant in ("v3", "v2"):
        for task, tokenizer in tokenizers.items():
            config = dict(VARIANTS[variant], vocab_size=tokenizer.get_vocab_size())
            model = task_model(t.DebertaV2Config, classes, task, **config)
            out[variant, task] = save_checkpoint(model, tokenizer, tmp_path_factory.mktemp(f"{variant}-{task}"))
    return out


def _padded_batch(vocab: int, token_types: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    ids = torch.zeros(len(LENGTHS), max(LENGTHS), dtype=torch.long)  # pad id 0
    mask = torch.zeros_like(ids)
    types = torch.zeros_like(ids)
    for row, n in enumerate(LENGTHS):
        ids[row, :n] = torch.randint(5, vocab, (n,), generator=generator)
        mask[row, :n] = 1
        if token_types:
            types[row, n // 2 : n] = 1
    return ids, mask, types


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_hidden_states_and_attention_match_transformers_on_a_padded_batch(tmp_path, variant):
    """A bare DebertaV2Model checkpoint loaded as our encoder: hidden states on real tokens (fused and explicit) and
    every layer's weights on real tokens as transformers' output_attentions; padded rows stay finite and do not
    reach real ones (each row alone gives what it gives in the batch)."""
    vocab = 120
    torch.manual_seed(0)
    reference = transformers.DebertaV2Model(_config(variant, vocab, attn_implementation="eager")).eval()
    reference.save_pretrained(tmp_path)
    model, _ = load_encoder(tmp_path, "sentiment", num_labels=3)
    encoder = model.encoder.eval()
    ids, mask, types = _padded_batch(vocab, token_types=VARIANTS[variant].get("type_vocab_size", 0) > 1)
    with torch.no_grad():
        fused, none = encoder(ids, mask, types)
        explicit, weights = encoder(ids, mask, types, need_weights=True)
        expected = reference(input_ids=ids, attention_mask=mask, token_type_ids=types, output_attentions=True)
    assert none == [] and len(weights) == len(expected.attentions)
    assert torch.isfinite(fused).all() and torch.isfinite(explicit).all()
    assert all(torch.isfinite(w).all() for w in weights)
    for row, n in enumerate(LENGTHS):
        assert (fused[row, :n] - expected.last_hidden_state[row, :n]).abs().max() < 1e-4
        assert (explicit[row, :n] - expected.last_hidden_state[row, :n]).abs().max() < 1e-4
        for ours, theirs in zip(weights, expected.attentions, strict=True):
            assert (ours[row, :, :n, :n] - theirs[row, :, :n, :n]).abs().max() < 1e-5
            assert (ours[row, :, :, n:] == 0).all()  # no query looks at padding
        with torch.no_grad():
            alone, _ = encoder(ids[row : row + 1, :n], mask[row : row + 1, :n], types[row : row + 1, :n])
        assert (alone[0] - fused[row, :n]).abs().max() < 1e-5


@pytest.mark.parametrize("variant", ["v3", "v2"])
def test_sentiment_matches_the_transformers_pipeline(checkpoints, variant):
    model_dir = checkpoints[variant, "sentiment"]
    engine = SentimentEngine(model_dir, FP32)
    assert engine.info.family == "DeBERTa-v2"
    assert engine.info.labels == tuple(LABELS.values())  # exactly as id2label names them, case and all
    pipe = transformers.pipeline("text-classification", model=str(model_dir), top_k=None, device="cpu")
    for return_attention in (False, True):  # the fused and the explicit path
        for text, result in zip(TEXTS, engine.classify_texts(TEXTS, return_attention), strict=True):
            expected = {row["label"]: row["score"] for row in pipe([text])[0]}
            assert set(result.probabilities) == set(expected)
            for label, score in expected.items():
                assert result.probabilities[label] == pytest.approx(score, abs=3e-3)
            assert result.label == max(expected, key=expected.get)


@pytest.mark.parametrize("variant", ["v3", "v2"])
def test_padded_batch_logits_match_transformers(checkpoints, variant):
    model_dir = checkpoints[variant, "sentiment"]
    engine = SentimentEngine(model_dir, FP32)
    reference = transformers.AutoModelForSequenceClassification.from_pretrained(
        str(model_dir), attn_implementation="eager"
    ).eval()
    encoded = [engine.encode(t) for t in TEXTS]
    ids = torch.zeros(len(encoded), max(len(e) for e in encoded), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, e in enumerate(encoded):
        ids[row, : len(e)] = torch.tensor(e.ids)
        mask[row, : len(e)] = 1
    with torch.no_grad():
        fused, _ = engine.model(ids, mask)
        explicit, _ = engine.model(ids, mask, need_weights=True)
        expected = reference(input_ids=ids, attention_mask=mask)
    assert (fused - expected.logits).abs().max() < 1e-4
    assert (explicit - expected.logits).abs().max() < 1e-4


@pytest.mark.parametrize("variant", ["v3", "v2"])
def test_qa_matches_the_transformers_pipeline(checkpoints, variant):
    model_dir = checkpoints[variant, "qa"]
    engine = QAEngine(model_dir, FP32)
    pipe = transformers.pipeline("question-answering", model=str(model_dir), device="cpu")
    for question, context in QA_PAIRS:
        ours = engine.answer_texts(question, context, max_seq_len=32, doc_stride=8)
        expected = pipe(question=question, context=context, max_seq_len=32, doc_stride=8)
        best = ours.answers[0]
        assert (best.text, best.start, best.end) == (expected["answer"], expected["start"], expected["end"])
        assert best.score == pytest.approx(expected["score"], abs=1e-3)
    assert len(engine.encode(*QA_PAIRS[2], max_seq_len=32, doc_stride=8).windows) > 2  # the long one had windows


@pytest.mark.parametrize("variant", ["v3", "v2"])
def test_qa_logits_match_transformers(checkpoints, variant):
    model_dir = checkpoints[variant, "qa"]
    engine = QAEngine(model_dir, FP32)
    reference = transformers.AutoModelForQuestionAnswering.from_pretrained(str(model_dir)).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(model_dir))
    question, context = QA_PAIRS[1]
    window = engine.encode(question, context).windows[0]
    expected_inputs = tokenizer(question, context, return_tensors="pt")
    assert window.ids == expected_inputs["input_ids"][0].tolist()
    ids = torch.tensor([window.ids])
    with torch.no_grad():
        (start, end), _ = engine.model(ids, torch.ones_like(ids), torch.tensor([window.type_ids]))
        expected = reference(**expected_inputs)
    assert (start - expected.start_logits).abs().max() < 1e-4
    assert (end - expected.end_logits).abs().max() < 1e-4


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"pos_att_type": "p2c|c2p|p2p"}, r"pos_att_type \['p2p'\] is not supported"),
        ({"conv_kernel_size": 2}, "conv_kernel_size 2 is not supported"),
        ({"attention_head_size": 16}, "attention_head_size 16 is not supported"),
        ({"pooler_hidden_size": 64}, "pooler_hidden_size 64 is not supported"),
        ({"pooler_hidden_act": "mish"}, "pooler_hidden_act='mish' is not supported"),
        ({"model_type": "deberta"}, "model_type 'deberta' is not supported"),
    ],
)
def test_unsupported_settings_are_refused_at_load_by_name(tmp_path, checkpoints, setting, message):
    model_dir = tmp_path / "edited"
    shutil.copytree(checkpoints["v3", "sentiment"], model_dir)
    config = json.loads((model_dir / "config.json").read_text())
    (model_dir / "config.json").write_text(json.dumps({**config, **setting}))
    with pytest.raises(UnsupportedModelError, match=message):
        load_task_model(model_dir, "sentiment")


def test_deberta_v2_is_picked_from_its_model_type_or_its_architecture():
    assert family_for({"model_type": "deberta-v2"}).name == "DeBERTa-v2"
    assert family_for({"architectures": ["DebertaV2ForSequenceClassification"]}).name == "DeBERTa-v2"
