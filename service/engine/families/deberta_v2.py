"""DeBERTa-v2 and DeBERTa-v3 (model_type "deberta-v2"): the core's post-LayerNorm layers with disentangled attention.

What differs from BERT, as transformers' modeling_deberta_v2.py computes it:

- Scores. Besides content-to-content, two terms over the relative position δ(i, j) of query i and key j:
  content-to-position (c2p) q_i·Kr[δ(i, j)] and position-to-content (p2c) k_j·Qr[δ(i, j)], all three divided by
  sqrt(head_size · (1 + number of position terms)). The position terms go to the core's `attend` as
  `extra_scores`, so the explicit path (whose weights, the softmax of the sum, are returned) and the fused one
  are the core's.
- Positions. δ(i, j) is i − j, log-bucketed beyond ±position_buckets/2 up to max_relative_positions (v3; v2
  without buckets), then clamped to the 2·span rows of one relative-embedding table the layers share
  (LayerNormed once when norm_rel_ebd says "layer_norm"). Kr and Qr are that table through each layer's own key and
  query projections (share_att_key, v3) or through its pos_key/pos_query ones (v2).
- Embeddings. Word (+ absolute positions only when position_biased_input, v2) (+ token types when
  type_vocab_size > 0), projected without bias when embedding_size ≠ hidden_size, LayerNorm over hidden_size,
  then zeroed at padding.
- v2-xlarge/xxlarge (conv_kernel_size > 0): a convolution over the embeddings joins the first layer's output.
- Head: the context pooler (pooler.dense → pooler_hidden_act) then the classifier; qa_outputs for QA.
- Padding. transformers masks a query×key matrix; here, as in the core, only keys are masked. Real query rows
  are the same; padded rows look at the real tokens instead of uniformly at everything, so they stay finite and,
  being keys no one may look at, never reach a real row.

Refused at load: pos_att_type other than c2p/p2c, an even conv_kernel_size, attention_head_size ≠
hidden_size / num_attention_heads, pooler_hidden_size ≠ hidden_size. DeBERTa v1 (model_type "deberta", fused
in_proj and its own scale) is another family, not this one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from service.engine.errors import UnsupportedModelError
from service.engine.families.base import Family, require_activation, require_divisible
from service.engine.model import ACTIVATIONS, EncoderConfig, EncoderLayer, SelfAttention, attend, key_mask

POSITION_TERMS = ("c2p", "p2c")


@dataclass(frozen=True)
class DebertaV2EncoderConfig(EncoderConfig):
    relative_attention: bool = True  # False: no position terms (the scale still counts pos_att_type, as upstream)
    pos_att_type: tuple[str, ...] = ("p2c", "c2p")
    position_buckets: int = 256  # ≤ 0: relative positions are not bucketed
    max_relative_positions: int = 512  # config.json's -1 already resolved to max_position_embeddings
    share_att_key: bool = True  # positions projected by the layer's key/query, not by pos_key/pos_query
    norm_rel_ebd: bool = True  # LayerNorm over the relative-embedding table
    position_biased_input: bool = False  # absolute position embeddings added to the input (v2)
    conv_kernel_size: int = 0
    conv_groups: int = 1
    conv_act: str = "tanh"

    @property
    def span(self) -> int:
        """Relative positions run over [-span, span): the table has 2·span rows."""
        return self.position_buckets if self.position_buckets > 0 else self.max_relative_positions

    @property
    def position_terms(self) -> tuple[str, ...]:
        return tuple(t for t in POSITION_TERMS if t in self.pos_att_type) if self.relative_attention else ()


def log_bucket(relative: torch.Tensor, buckets: int, max_position: int) -> torch.Tensor:
    """Exact within ±buckets/2, log-spaced beyond up to max_position (transformers' make_log_bucket_position, the
    same float operations in the same order so that the bucket edges agree)."""
    sign = torch.sign(relative)
    mid = buckets // 2
    abs_pos = torch.where(
        (relative < mid) & (relative > -mid), torch.tensor(mid - 1).type_as(relative), torch.abs(relative)
    )
    log_pos = torch.ceil(torch.log(abs_pos / mid) / torch.log(torch.tensor((max_position - 1) / mid)) * (mid - 1)) + mid
    return torch.where(abs_pos <= mid, relative.type_as(log_pos), log_pos * sign).long()


def relative_index(length: int, cfg: DebertaV2EncoderConfig, device: torch.device) -> torch.Tensor:
    """(T, T): the relative-embedding row for query i and key j, δ(i, j) + span clamped into the table."""
    positions = torch.arange(length, device=device)
    relative = positions[:, None] - positions[None, :]  # i − j
    if cfg.position_buckets > 0 and cfg.max_relative_positions > 0:
        relative = log_bucket(relative, cfg.position_buckets, cfg.max_relative_positions)
    return (relative + cfg.span).clamp(0, 2 * cfg.span - 1)


class DisentangledAttention(SelfAttention):
    """The core's attention with DeBERTa's c2p and p2c terms added to the scores."""

    def __init__(self, cfg: DebertaV2EncoderConfig) -> None:
        super().__init__(cfg)
        self.terms = cfg.position_terms
        self.scale = 1 / math.sqrt(self.head_size * (1 + sum(t in cfg.pos_att_type for t in POSITION_TERMS)))
        self.share_att_key = cfg.share_att_key
        if not cfg.share_att_key and "c2p" in self.terms:
            self.pos_key = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        if not cfg.share_att_key and "p2c" in self.terms:
            self.pos_query = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.pos_dropout = nn.Dropout(cfg.dropout)

    def position_scores(
        self, q: torch.Tensor, k: torch.Tensor, rel_embeddings: torch.Tensor, rel_index: torch.Tensor
    ) -> torch.Tensor:
        """c2p[i, j] = q_i·Kr[δ(i, j)] plus p2c[i, j] = k_j·Qr[δ(i, j)], unscaled: (B, nh, T, T)."""
        rel = self.pos_dropout(rel_embeddings)[None]  # (1, 2·span, C)
        index = rel_index.expand(q.size(0), self.num_heads, -1, -1)  # (B, nh, T, T)
        scores = torch.zeros((), dtype=q.dtype, device=q.device)
        if "c2p" in self.terms:
            pos_key = self.split_heads((self.key if self.share_att_key else self.pos_key)(rel))  # (1, nh, 2·span, hs)
            scores = scores + (q @ pos_key.transpose(-2, -1)).gather(-1, index)  # query i, row δ(i, j)
        if "p2c" in self.terms:
            pos_query = self.split_heads((self.query if self.share_att_key else self.pos_query)(rel))
            by_key = k @ pos_query.transpose(-2, -1)  # (B, nh, T, 2·span): key j against every row
            scores = scores + by_key.gather(-1, index.transpose(-2, -1)).transpose(-2, -1)  # key j, row δ(i, j)
        return scores

    def forward(
        self,
        x: torch.Tensor,
        keep: torch.Tensor | None,
        need_weights: bool = False,
        rel_embeddings: torch.Tensor | None = None,
        rel_index: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        q, k, v = self.split_heads(self.query(x)), self.split_heads(self.key(x)), self.split_heads(self.value(x))
        extra = None
        if self.terms and rel_embeddings is not None and rel_index is not None:
            extra = self.position_scores(q, k, rel_embeddings, rel_index) * self.scale
        dropout_p = self.dropout_p if self.training else 0.0
        y, weights = attend(q, k, v, keep, need_weights, self.scale, extra, dropout_p=dropout_p)
        return self.output(self.merge_heads(y)), weights


class DebertaEmbeddings(nn.Module):
    """Word (+ absolute position) (+ token type) embeddings, projected, LayerNormed at hidden_size, zeroed at
    padding."""

    def __init__(self, cfg: DebertaV2EncoderConfig) -> None:
        super().__init__()
        width = cfg.embedding_size or cfg.hidden_size
        self.word = nn.Embedding(cfg.vocab_size, width)
        self.position = nn.Embedding(cfg.max_position_embeddings, width) if cfg.position_biased_input else None
        self.token_type = nn.Embedding(cfg.type_vocab_size, width) if cfg.type_vocab_size else None
        self.project = nn.Linear(width, cfg.hidden_size, bias=False) if width != cfg.hidden_size else None
        self.norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
    ) -> torch.Tensor:
        x = self.word(input_ids)
        if self.position is not None:
            x = x + self.position(torch.arange(input_ids.size(1), device=input_ids.device))[None]
        if self.token_type is not None:
            x = x + self.token_type(token_type_ids if self.token_type.num_embeddings > 1 else 0 * token_type_ids)
        if self.project is not None:
            x = self.project(x)
        x = self.norm(x) * attention_mask[..., None].to(x.dtype)
        return self.dropout(x)  # (B, T, C)


class ConvLayer(nn.Module):
    """v2-xlarge/xxlarge: LN(first layer's output + act(conv(embeddings))), zeroed at padding."""

    def __init__(self, cfg: DebertaV2EncoderConfig) -> None:
        super().__init__()
        size = cfg.conv_kernel_size
        self.conv = nn.Conv1d(cfg.hidden_size, cfg.hidden_size, size, padding=(size - 1) // 2, groups=cfg.conv_groups)
        self.norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.activation = ACTIVATIONS[cfg.conv_act]
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, embedded: torch.Tensor, x: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        mask = attention_mask[..., None].to(x.dtype)  # (B, T, 1)
        convolved = self.conv(embedded.transpose(1, 2)).transpose(1, 2) * mask  # (B, T, C)
        return self.norm(x + self.activation(self.dropout(convolved))) * mask


class DebertaV2Encoder(nn.Module):
    """Embeddings, the relative-embedding table, and the core's layers with disentangled attention."""

    def __init__(self, cfg: DebertaV2EncoderConfig) -> None:
        super().__init__()
        self.config = cfg
        self.embeddings = DebertaEmbeddings(cfg)
        self.layers = nn.ModuleList(
            EncoderLayer(cfg, attention=DisentangledAttention(cfg)) for _ in range(cfg.num_layers)
        )
        relative = cfg.relative_attention
        self.rel_embeddings = nn.Embedding(2 * cfg.span, cfg.hidden_size) if relative else None
        self.rel_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps) if relative and cfg.norm_rel_ebd else None
        self.conv = ConvLayer(cfg) if cfg.conv_kernel_size > 0 else None

    def relative_inputs(self, length: int, device: torch.device) -> dict[str, torch.Tensor]:
        if self.rel_embeddings is None:
            return {}
        table = self.rel_embeddings.weight
        if self.rel_norm is not None:
            table = self.rel_norm(table)
        return {"rel_embeddings": table, "rel_index": relative_index(length, self.config, device)}

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        keep = key_mask(attention_mask, need_weights)
        embedded = self.embeddings(input_ids, attention_mask, token_type_ids)
        relative = self.relative_inputs(input_ids.size(1), input_ids.device)
        x = embedded
        all_weights: list[torch.Tensor] = []
        for i, layer in enumerate(self.layers):
            x, weights = layer(x, keep, need_weights, **relative)
            if i == 0 and self.conv is not None:
                x = self.conv(embedded, x, attention_mask)
            if weights is not None:
                all_weights.append(weights)
        return x, all_weights  # (B, T, C), num_layers × (B, nh, T, T)


def _pos_att_type(config: dict[str, Any]) -> tuple[str, ...]:
    value = config.get("pos_att_type") or ()
    types = tuple(t.strip() for t in value.lower().split("|")) if isinstance(value, str) else tuple(value)
    unknown = [t for t in types if t not in POSITION_TERMS]
    if unknown:
        raise UnsupportedModelError(f"pos_att_type {unknown} is not supported (only 'c2p' and 'p2c')")
    return types


class DebertaV2(Family):
    name = "DeBERTa-v2"
    model_types = ("deberta-v2",)
    prefix = "deberta."
    renames = (
        (r"^embeddings\.word_embeddings\.", "encoder.embeddings.word."),
        (r"^embeddings\.position_embeddings\.", "encoder.embeddings.position."),
        (r"^embeddings\.token_type_embeddings\.", "encoder.embeddings.token_type."),
        (r"^embeddings\.embed_proj\.", "encoder.embeddings.project."),
        (r"^embeddings\.LayerNorm\.", "encoder.embeddings.norm."),
        (r"^encoder\.rel_embeddings\.", "encoder.rel_embeddings."),
        (r"^encoder\.LayerNorm\.", "encoder.rel_norm."),
        (r"^encoder\.conv\.conv\.", "encoder.conv.conv."),
        (r"^encoder\.conv\.LayerNorm\.", "encoder.conv.norm."),
        (r"^encoder\.layer\.(\d+)\.attention\.self\.(query|key|value)_proj\.", r"encoder.layers.\1.attention.\2."),
        (r"^encoder\.layer\.(\d+)\.attention\.self\.pos_(query|key)_proj\.", r"encoder.layers.\1.attention.pos_\2."),
        (r"^encoder\.layer\.(\d+)\.attention\.output\.dense\.", r"encoder.layers.\1.attention.output."),
        (r"^encoder\.layer\.(\d+)\.attention\.output\.LayerNorm\.", r"encoder.layers.\1.attention_norm."),
        (r"^encoder\.layer\.(\d+)\.intermediate\.dense\.", r"encoder.layers.\1.ffn.up."),
        (r"^encoder\.layer\.(\d+)\.output\.dense\.", r"encoder.layers.\1.ffn.down."),
        (r"^encoder\.layer\.(\d+)\.output\.LayerNorm\.", r"encoder.layers.\1.ffn_norm."),
        (r"^pooler\.dense\.", "head.pooler."),
        (r"^classifier\.", "head.classifier."),
        (r"^qa_outputs\.", "head.qa_outputs."),
    )

    def read_config(self, config: dict[str, Any]) -> EncoderConfig:
        hidden, heads = config["hidden_size"], config["num_attention_heads"]
        require_divisible(hidden, heads)
        if config.get("attention_head_size", hidden // heads) != hidden // heads:
            raise UnsupportedModelError(
                f"attention_head_size {config['attention_head_size']} is not supported "
                f"(only hidden_size / num_attention_heads = {hidden // heads})"
            )
        if config.get("pooler_hidden_size", hidden) != hidden:
            raise UnsupportedModelError(
                f"pooler_hidden_size {config['pooler_hidden_size']} is not supported (only hidden_size {hidden})"
            )
        kernel = config.get("conv_kernel_size", 0) or 0
        if kernel > 0 and kernel % 2 == 0:
            raise UnsupportedModelError(f"conv_kernel_size {kernel} is not supported (only odd sizes)")
        max_positions = config.get("max_position_embeddings", 512)
        max_relative = config.get("max_relative_positions", -1)
        norm_rel_ebd = [x.strip() for x in str(config.get("norm_rel_ebd", "none")).lower().split("|")]
        return DebertaV2EncoderConfig(
            vocab_size=config["vocab_size"],
            hidden_size=hidden,
            num_layers=config["num_hidden_layers"],
            num_heads=heads,
            intermediate_size=config["intermediate_size"],
            max_position_embeddings=max_positions,
            type_vocab_size=config.get("type_vocab_size", 0),
            layer_norm_eps=config.get("layer_norm_eps", 1e-7),
            dropout=config.get("hidden_dropout_prob", 0.1),
            activation=require_activation(config.get("hidden_act", "gelu"), "hidden_act"),
            embedding_size=config.get("embedding_size", hidden),
            pad_token_id=config.get("pad_token_id") or 0,
            classifier_activation=require_activation(config.get("pooler_hidden_act", "gelu"), "pooler_hidden_act"),
            relative_attention=bool(config.get("relative_attention", False)),
            pos_att_type=_pos_att_type(config),
            position_buckets=config.get("position_buckets", -1),
            max_relative_positions=max_relative if max_relative >= 1 else max_positions,
            share_att_key=bool(config.get("share_att_key", False)),
            norm_rel_ebd="layer_norm" in norm_rel_ebd,
            position_biased_input=bool(config.get("position_biased_input", True)),
            conv_kernel_size=kernel,
            conv_groups=config.get("conv_groups", 1),
            conv_act=require_activation(config.get("conv_act", "tanh"), "conv_act") if kernel else "tanh",
        )

    def build_encoder(self, cfg: EncoderConfig) -> nn.Module:
        assert isinstance(cfg, DebertaV2EncoderConfig)
        return DebertaV2Encoder(cfg)
