"""ModernBERT (model_type "modernbert"), as transformers' modeling_modernbert.py runs it without flash-attn (the
eager / sdpa path), declared as what differs from the shared core. The attention math is the core's `attend`.

| part        | BERT (the core)                       | ModernBERT                                                   |
|-------------|---------------------------------------|--------------------------------------------------------------|
| embeddings  | token + position + segment, LayerNorm | token only, LayerNorm (bias optional: norm_bias)             |
| positions   | learned, added to the embeddings      | rotary on Q and K; global_rope_theta / local_rope_theta      |
| attention   | every key                             | layers 0, n, 2n, … global; the others see keys within        |
|             |                                       | local_attention // 2 of the query (a sliding window)         |
| projections | query, key, value, with biases        | one fused Wqkv; biases only with attention_bias / mlp_bias   |
| norm        | post-LN                               | pre-LN (layer 0 has none before attention), a final_norm     |
| feed-fwd    | up → act → down                       | GeGLU: Wi → (input, gate) → act(input)·gate → Wo             |
| heads       | pooler: dense → tanh → classifier     | dense → act → LayerNorm → classifier, after "cls" or "mean"  |
|             |                                       | pooling; QA runs the same head over every token              |

Not implemented, refused at load: rope_scaling other than the default, partial rotary dimensions, a head_dim other
than hidden_size / num_attention_heads, activations the core lacks, pooling other than "cls" / "mean".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from service.engine.errors import UnsupportedModelError
from service.engine.families.base import Family, require_activation, require_divisible
from service.engine.model import ACTIVATIONS, EncoderConfig, attend, key_mask
from service.engine.results import Task

Rope = tuple[torch.Tensor, torch.Tensor]  # cos, sin: (T, hs) each


@dataclass(frozen=True)
class ModernBertConfig(EncoderConfig):
    """The core's config (dropout is attention_dropout) and ModernBERT's own fields, named as in config.json."""

    global_rope_theta: float = 160_000.0
    local_rope_theta: float = 10_000.0
    local_attention: int = 128  # a local layer's query sees keys at most local_attention // 2 positions away
    global_attn_every_n_layers: int = 3  # layers 0, n, 2n, … attend globally
    norm_bias: bool = False
    attention_bias: bool = False
    mlp_bias: bool = False
    classifier_bias: bool = False  # of the head's dense layer (its classifier always has one)
    classifier_pooling: str = "cls"  # "cls": the first token; "mean": the average of the real tokens
    embedding_dropout: float = 0.0
    mlp_dropout: float = 0.0
    classifier_dropout: float = 0.0

    def is_global(self, layer: int) -> bool:
        return layer % self.global_attn_every_n_layers == 0


def layer_norm(cfg: ModernBertConfig) -> nn.LayerNorm:
    return nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps, bias=cfg.norm_bias)


def rotary(length: int, head_size: int, theta: float, device: torch.device, dtype: torch.dtype) -> Rope:
    """cos and sin of RoPE (computed in fp32): dimensions i and i + hs/2 of position t turn by t·theta^(-2i/hs)."""
    inv_freq = 1.0 / theta ** (torch.arange(0, head_size, 2, device=device, dtype=torch.float) / head_size)
    angles = torch.arange(length, device=device, dtype=torch.float)[:, None] * inv_freq  # (T, hs/2)
    angles = torch.cat((angles, angles), dim=-1)  # (T, hs)
    return angles.cos().to(dtype), angles.sin().to(dtype)


def rotate(x: torch.Tensor, rope: Rope) -> torch.Tensor:
    """Apply RoPE to (B, nh, T, hs) queries or keys: the two halves of each head turn as pairs."""
    cos, sin = rope
    first, second = x.chunk(2, dim=-1)
    return x * cos + torch.cat((-second, first), dim=-1) * sin


def sliding_window_keep(attention_mask: torch.Tensor, half_window: int, need_weights: bool) -> torch.Tensor | None:
    """(B, 1, T, T), True where a key is a real token at most `half_window` positions from the query; None when
    nothing is masked. The diagonal is always kept: a padding query whose window holds only padding still sees one
    key (itself), so no row is all-masked (which would be NaN); real queries never see padding, so nothing leaks."""
    length = attention_mask.size(1)
    positions = torch.arange(length, device=attention_mask.device)
    window = (positions[None, :] - positions[:, None]).abs() <= half_window  # (T, T)
    real = attention_mask.bool()[:, None, None, :]  # (B, 1, 1, T)
    if not need_weights and bool(window.all()) and bool(real.all()):
        return None
    return (window & real) | torch.eye(length, dtype=torch.bool, device=attention_mask.device)


class ModernBertEmbeddings(nn.Module):
    """Token embeddings and LayerNorm: positions come later, as rotations of queries and keys."""

    def __init__(self, cfg: ModernBertConfig) -> None:
        super().__init__()
        self.word = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.norm = layer_norm(cfg)
        self.dropout = nn.Dropout(cfg.embedding_dropout)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.norm(self.word(input_ids)))  # (B, T, C)


class ModernBertAttention(nn.Module):
    """Self-attention from one fused Wqkv projection, rotary positions on Q and K, then the core's `attend`."""

    def __init__(self, cfg: ModernBertConfig) -> None:
        super().__init__()
        self.num_heads = cfg.num_heads
        self.head_size = cfg.head_size
        self.qkv = nn.Linear(cfg.hidden_size, 3 * cfg.hidden_size, bias=cfg.attention_bias)
        self.output = nn.Linear(cfg.hidden_size, cfg.hidden_size, bias=cfg.attention_bias)
        self.dropout_p = cfg.dropout
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(
        self, x: torch.Tensor, keep: torch.Tensor | None, need_weights: bool, rope: Rope
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        batch, seq, width = x.shape
        qkv = self.qkv(x).view(batch, seq, 3, self.num_heads, self.head_size)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # 3 × (B, nh, T, hs)
        q, k = rotate(q, rope), rotate(k, rope)
        dropout_p = self.dropout_p if self.training else 0.0
        y, weights = attend(q, k, v, keep, need_weights, self.head_size**-0.5, dropout_p=dropout_p)
        y = y.transpose(1, 2).reshape(batch, seq, width)  # (B, T, C)
        return self.dropout(self.output(y)), weights


class GatedFeedForward(nn.Module):
    """GeGLU: Wi makes an input half and a gate half; act(input)·gate goes back down through Wo."""

    def __init__(self, cfg: ModernBertConfig) -> None:
        super().__init__()
        self.up = nn.Linear(cfg.hidden_size, 2 * cfg.intermediate_size, bias=cfg.mlp_bias)
        self.down = nn.Linear(cfg.intermediate_size, cfg.hidden_size, bias=cfg.mlp_bias)
        self.activation = ACTIVATIONS[cfg.activation]
        self.dropout = nn.Dropout(cfg.mlp_dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.up(x).chunk(2, dim=-1)
        return self.down(self.dropout(self.activation(value) * gate))


class ModernBertLayer(nn.Module):
    """Pre-LayerNorm block: x = x + attn(LN(x)); x = x + ffn(LN(x)). Layer 0 skips the first LN (the embeddings
    were just normed)."""

    def __init__(self, cfg: ModernBertConfig, index: int) -> None:
        super().__init__()
        self.is_global = cfg.is_global(index)
        self.attention_norm = layer_norm(cfg) if index else nn.Identity()
        self.attention = ModernBertAttention(cfg)
        self.ffn_norm = layer_norm(cfg)
        self.ffn = GatedFeedForward(cfg)

    def forward(
        self, x: torch.Tensor, keep: torch.Tensor | None, need_weights: bool, rope: Rope
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        attended, weights = self.attention(self.attention_norm(x), keep, need_weights, rope)
        x = x + attended
        return x + self.ffn(self.ffn_norm(x)), weights


class ModernBertEncoder(nn.Module):
    """Embeddings, layers alternating global and sliding-window attention (each kind with its own rotary theta),
    and a final LayerNorm."""

    def __init__(self, cfg: ModernBertConfig) -> None:
        super().__init__()
        self.config = cfg
        self.embeddings = ModernBertEmbeddings(cfg)
        self.layers = nn.ModuleList(ModernBertLayer(cfg, i) for i in range(cfg.num_layers))
        self.final_norm = layer_norm(cfg)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,  # ModernBERT has no token types
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        cfg = self.config
        x = self.embeddings(input_ids)
        length = input_ids.size(1)
        # Per kind of layer (True: global): which keys a query sees, and the rotary angles.
        keep = {
            True: key_mask(attention_mask, need_weights),
            False: sliding_window_keep(attention_mask, cfg.local_attention // 2, need_weights),
        }
        rope = {
            True: rotary(length, cfg.head_size, cfg.global_rope_theta, x.device, x.dtype),
            False: rotary(length, cfg.head_size, cfg.local_rope_theta, x.device, x.dtype),
        }
        all_weights: list[torch.Tensor] = []
        for layer in self.layers:
            x, weights = layer(x, keep[layer.is_global], need_weights, rope[layer.is_global])
            if weights is not None:
                all_weights.append(weights)
        return self.final_norm(x), all_weights  # (B, T, C), num_layers × (B, nh, T, T)


class ModernBertHead(nn.Module):
    """ModernBertPredictionHead (dense → activation → LayerNorm), then the task's `classifier`."""

    def __init__(self, cfg: ModernBertConfig, outputs: int) -> None:
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.hidden_size, bias=cfg.classifier_bias)
        self.activation = ACTIVATIONS[cfg.classifier_activation]
        self.norm = layer_norm(cfg)
        self.dropout = nn.Dropout(cfg.classifier_dropout)
        self.classifier = nn.Linear(cfg.hidden_size, outputs)

    def predict(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.norm(self.activation(self.dense(hidden)))))


class ModernBertClassificationHead(ModernBertHead):
    """The first token's hidden state ("cls") or the mean over real tokens ("mean"), through the head."""

    def __init__(self, cfg: ModernBertConfig, num_labels: int) -> None:
        super().__init__(cfg, num_labels)
        self.pooling = cfg.classifier_pooling

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if self.pooling == "cls":
            pooled = hidden[:, 0]  # (B, C)
        else:
            real = attention_mask.bool()[:, :, None]  # (B, T, 1)
            pooled = hidden.masked_fill(~real, 0.0).sum(dim=1) / real.sum(dim=1)  # (B, C)
        return self.predict(pooled)  # (B, num_labels)


class ModernBertSpanHead(ModernBertHead):
    """ModernBertForQuestionAnswering: the head over every token, its two outputs the start and end logits."""

    def __init__(self, cfg: ModernBertConfig) -> None:
        super().__init__(cfg, 2)

    def forward(
        self, hidden: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        start, end = self.predict(hidden).split(1, dim=-1)
        return start.squeeze(-1), end.squeeze(-1)  # (B, T) each


def _refuse_unless(condition: bool, message: str) -> None:
    if not condition:
        raise UnsupportedModelError(f"ModernBERT: {message}")


class ModernBert(Family):
    name = "ModernBERT"
    model_types = ("modernbert",)
    prefix = "model."
    renames = (
        (r"^embeddings\.tok_embeddings\.", "encoder.embeddings.word."),
        (r"^embeddings\.norm\.", "encoder.embeddings.norm."),
        (r"^layers\.(\d+)\.attn_norm\.", r"encoder.layers.\1.attention_norm."),
        (r"^layers\.(\d+)\.attn\.Wqkv\.", r"encoder.layers.\1.attention.qkv."),
        (r"^layers\.(\d+)\.attn\.Wo\.", r"encoder.layers.\1.attention.output."),
        (r"^layers\.(\d+)\.mlp_norm\.", r"encoder.layers.\1.ffn_norm."),
        (r"^layers\.(\d+)\.mlp\.Wi\.", r"encoder.layers.\1.ffn.up."),
        (r"^layers\.(\d+)\.mlp\.Wo\.", r"encoder.layers.\1.ffn.down."),
        (r"^final_norm\.", "encoder.final_norm."),
        (r"^head\.(dense|norm)\.", r"head.\1."),  # the prediction head (MLM checkpoints share it)
        (r"^classifier\.", "head.classifier."),
    )

    def read_config(self, config: dict[str, Any]) -> ModernBertConfig:
        hidden, heads = config.get("hidden_size", 768), config.get("num_attention_heads", 12)
        require_divisible(hidden, heads)
        rope_scaling = config.get("rope_scaling") or {}
        rope_type = rope_scaling.get("rope_type", rope_scaling.get("type", "default"))
        _refuse_unless(rope_type == "default", f"rope_scaling={rope_scaling!r} is not supported (only default RoPE)")
        partial = config.get("partial_rotary_factor", 1.0)
        _refuse_unless(partial == 1.0, f"partial_rotary_factor={partial!r} is not supported (only 1.0)")
        head_dim = config.get("head_dim")
        _refuse_unless(
            head_dim in (None, hidden // heads),
            f"head_dim={head_dim!r} is not supported (only hidden_size / num_attention_heads = {hidden // heads})",
        )
        pooling = config.get("classifier_pooling", "cls")
        _refuse_unless(pooling in ("cls", "mean"), f"classifier_pooling={pooling!r} is not supported ('cls', 'mean')")
        every = config.get("global_attn_every_n_layers", 3)
        _refuse_unless(
            isinstance(every, int) and every >= 1, f"global_attn_every_n_layers={every!r} must be a positive integer"
        )
        window = config.get("local_attention", 128)
        _refuse_unless(isinstance(window, int) and window >= 0, f"local_attention={window!r} is not a window size")
        global_theta = config.get("global_rope_theta", 160_000.0)
        local_theta = config.get("local_rope_theta", 10_000.0)
        pad = config.get("pad_token_id")
        return ModernBertConfig(
            vocab_size=config.get("vocab_size", 50368),
            hidden_size=hidden,
            num_layers=config.get("num_hidden_layers", 22),
            num_heads=heads,
            intermediate_size=config.get("intermediate_size", 1152),
            max_position_embeddings=config.get("max_position_embeddings", 8192),
            type_vocab_size=0,
            layer_norm_eps=config.get("norm_eps", 1e-5),
            dropout=config.get("attention_dropout", 0.0),
            activation=require_activation(config.get("hidden_activation", "gelu"), "hidden_activation"),
            pad_token_id=50283 if pad is None else pad,
            classifier_activation=require_activation(
                config.get("classifier_activation", "gelu"), "classifier_activation"
            ),
            global_rope_theta=global_theta,
            local_rope_theta=global_theta if local_theta is None else local_theta,
            local_attention=window,
            global_attn_every_n_layers=every,
            norm_bias=config.get("norm_bias", False),
            attention_bias=config.get("attention_bias", False),
            mlp_bias=config.get("mlp_bias", False),
            classifier_bias=config.get("classifier_bias", False),
            classifier_pooling=pooling,
            embedding_dropout=config.get("embedding_dropout", 0.0),
            mlp_dropout=config.get("mlp_dropout", 0.0),
            classifier_dropout=config.get("classifier_dropout", 0.0),
        )

    def build_encoder(self, cfg: EncoderConfig) -> nn.Module:
        assert isinstance(cfg, ModernBertConfig)
        return ModernBertEncoder(cfg)

    def build_head(self, cfg: EncoderConfig, task: Task, num_labels: int) -> nn.Module:
        assert isinstance(cfg, ModernBertConfig)
        if task == "sentiment":
            return ModernBertClassificationHead(cfg, num_labels)
        return ModernBertSpanHead(cfg)
