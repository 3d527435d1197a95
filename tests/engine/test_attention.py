"""The attention math: a hand-computed example, explicit vs fused, padding gets no weight."""

import math

import torch

from service.engine.model import EncoderConfig, SelfAttention


def _identity_attention(hidden: int, heads: int) -> SelfAttention:
    attention = SelfAttention(EncoderConfig(hidden_size=hidden, num_heads=heads, dropout=0.0))
    with torch.no_grad():
        for linear in (attention.query, attention.key, attention.value, attention.output):
            linear.weight.copy_(torch.eye(hidden))
            linear.bias.zero_()
    return attention.eval()


def test_hand_computed_single_head():
    attention = _identity_attention(hidden=2, heads=1)
    x = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])  # (B=1, T=3, C=2)
    mask = torch.ones(1, 1, 1, 3, dtype=torch.bool)
    out, weights = attention(x, mask, need_weights=True)
    # Token 0's scores are its dot products with each key, over sqrt(2): [1, 0, 1] / sqrt(2).
    s = 1 / math.sqrt(2)
    expected = torch.softmax(torch.tensor([s, 0.0, s]), dim=0)
    assert torch.allclose(weights[0, 0, 0], expected, atol=1e-6)
    # Its output is the weighted sum of the values (here the inputs themselves).
    assert torch.allclose(out[0, 0], expected @ x[0], atol=1e-6)


def test_padding_keys_get_no_weight_and_do_not_change_real_tokens():
    torch.manual_seed(0)
    attention = SelfAttention(EncoderConfig(hidden_size=8, num_heads=2, dropout=0.0)).eval()
    x = torch.randn(1, 5, 8)
    mask = torch.tensor([True, True, True, False, False])[None, None, None, :]
    out, weights = attention(x, mask, need_weights=True)
    assert torch.all(weights[..., 3:] == 0)
    assert torch.allclose(weights.sum(-1), torch.ones(1, 2, 5))
    alone, _ = attention(x[:, :3], torch.ones(1, 1, 1, 3, dtype=torch.bool), need_weights=True)
    assert torch.allclose(out[:, :3], alone, atol=1e-6)


def test_explicit_and_fused_paths_agree():
    torch.manual_seed(1)
    attention = SelfAttention(EncoderConfig(hidden_size=384, num_heads=12, dropout=0.0)).eval()
    x = torch.randn(3, 17, 384)
    lengths = torch.tensor([17, 9, 2])
    mask = (torch.arange(17)[None, :] < lengths[:, None])[:, None, None, :]
    explicit, weights = attention(x, mask, need_weights=True)
    fused, none = attention(x, mask, need_weights=False)
    assert none is None and weights.shape == (3, 12, 17, 17)
    real = mask[:, 0, 0, :]
    assert (explicit - fused)[real].abs().max() < 1e-5
