"""Our encoder against the reference implementation (transformers' BertModel) on the real weights."""

import pytest
import torch

from service.engine.weights import load_encoder

transformers = pytest.importorskip("transformers", reason="transformers is a test dependency (pip install .[test])")

SENTENCES = [
    "a gorgeous, moving film",
    "The plot is thin, but the acting — especially by the lead — keeps it afloat for two hours.",
    "Ça ne marche pas 東京 😀",
    "no",
    "It's a charming and often affecting journey that rewards patience, though the middle act drags badly.",
]


def test_hidden_states_match_transformers(base_dir, tokenizer):
    ours, _ = load_encoder(base_dir, "sentiment")
    ours.eval()
    reference = transformers.BertModel.from_pretrained(str(base_dir), attn_implementation="eager").eval()
    encoded = [tokenizer.encode_text(s) for s in SENTENCES]
    width = max(len(e) for e in encoded)
    ids = torch.zeros(len(encoded), width, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, e in enumerate(encoded):
        ids[row, : len(e)] = torch.tensor(e.ids)
        mask[row, : len(e)] = 1
    assert mask.sum() < mask.numel()  # the batch really has padding
    with torch.no_grad():
        fused, _ = ours.encoder(ids, mask)
        explicit, weights = ours.encoder(ids, mask, need_weights=True)
        expected = reference(input_ids=ids, attention_mask=mask).last_hidden_state
    real = mask.bool()
    assert (fused - expected)[real].abs().max() < 1e-4
    assert (explicit - expected)[real].abs().max() < 1e-4
    assert len(weights) == 6 and weights[0].shape == (len(SENTENCES), 12, width, width)
