"""The encoder core every family shares, with attention written as the math it is.

In dependency order: EncoderConfig → attend (scores, softmax, weighted values; the fused kernel beside it) →
SelfAttention → FeedForward → EncoderLayer → Embeddings → Encoder → heads → TaskModel. This is BERT; the
families in service/engine/families/ declare only what differs from it (embeddings, positions, score terms,
norm placement, activation, head) and how their checkpoints name the weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

# Activations by their config.json names. "gelu" is the exact (erf) GELU; "gelu_new" and its aliases the tanh one.
ACTIVATIONS: dict[str, Any] = {
    "gelu": F.gelu,
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_fast": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
    "silu": F.silu,
    "swish": F.silu,
    "tanh": torch.tanh,
}


@dataclass(frozen=True)
class EncoderConfig:
    vocab_size: int = 30522
    hidden_size: int = 384
    num_layers: int = 6
    num_heads: int = 12
    intermediate_size: int = 1536
    max_position_embeddings: int = 512
    type_vocab_size: int = 2  # 0: the family has no token-type embeddings (DistilBERT)
    layer_norm_eps: float = 1e-12
    dropout: float = 0.1  # only active in training (model.train()); inference is deterministic
    activation: str = "gelu"  # of the feed-forward layers
    embedding_size: int | None = None  # ELECTRA: embeddings narrower than hidden_size, projected up
    pad_token_id: int = 0
    # RoBERTa and its kin count positions from pad_token_id + 1 over real tokens only; BERT from 0 for every slot.
    positions_after_padding_idx: bool = False
    classifier_activation: str = "tanh"  # between the head's dense layer and the classifier

    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def max_tokens(self) -> int:
        """The longest input the position embeddings allow (RoBERTa's first pad_token_id + 1 are never used)."""
        offset = self.pad_token_id + 1 if self.positions_after_padding_idx else 0
        return self.max_position_embeddings - offset


def attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    keep: torch.Tensor | None,
    need_weights: bool,
    scale: float,
    extra_scores: torch.Tensor | None = None,
    dropout_p: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """weights = softmax(scale·Q·Kᵀ + extra_scores over the keys `keep` allows); output = weights·V.

    q, k, v are (B, nh, T, hs); `keep` is boolean, broadcastable to (B, nh, T, T), True where a query may look at
    a key (None: everywhere); `extra_scores` are score terms a family adds (DeBERTa's relative positions).
    """
    if need_weights:
        # The explicit path, which the product explains and whose weights the API returns.
        scores = (q @ k.transpose(-2, -1)) * scale  # (B, nh, T, T)
        if extra_scores is not None:
            scores = scores + extra_scores
        if keep is not None:
            scores = scores.masked_fill(~keep, float("-inf"))
        weights = scores.softmax(dim=-1)
        return F.dropout(weights, dropout_p, training=dropout_p > 0) @ v, weights  # (B, nh, T, hs)
    # The fused kernel computes the same thing without materialising the weights.
    mask = keep
    if extra_scores is not None:
        mask = extra_scores if keep is None else extra_scores.masked_fill(~keep, float("-inf"))
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p, scale=scale), None


class SelfAttention(nn.Module):
    """Multi-head self-attention over separate query, key and value projections."""

    def __init__(self, cfg: EncoderConfig, bias: bool = True) -> None:
        super().__init__()
        self.num_heads = cfg.num_heads
        self.head_size = cfg.head_size
        self.query = nn.Linear(cfg.hidden_size, cfg.hidden_size, bias=bias)
        self.key = nn.Linear(cfg.hidden_size, cfg.hidden_size, bias=bias)
        self.value = nn.Linear(cfg.hidden_size, cfg.hidden_size, bias=bias)
        self.output = nn.Linear(cfg.hidden_size, cfg.hidden_size, bias=bias)
        self.dropout_p = cfg.dropout

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, seq, _ = x.shape
        return x.view(batch, seq, self.num_heads, self.head_size).transpose(1, 2)  # (B, nh, T, hs)

    def merge_heads(self, y: torch.Tensor) -> torch.Tensor:
        batch, _, seq, _ = y.shape
        return y.transpose(1, 2).reshape(batch, seq, self.num_heads * self.head_size)  # (B, T, C)

    def forward(
        self, x: torch.Tensor, keep: torch.Tensor | None, need_weights: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        q, k, v = self.split_heads(self.query(x)), self.split_heads(self.key(x)), self.split_heads(self.value(x))
        dropout_p = self.dropout_p if self.training else 0.0
        y, weights = attend(q, k, v, keep, need_weights, 1 / math.sqrt(self.head_size), dropout_p=dropout_p)
        return self.output(self.merge_heads(y)), weights


class FeedForward(nn.Module):
    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.up = nn.Linear(cfg.hidden_size, cfg.intermediate_size)
        self.down = nn.Linear(cfg.intermediate_size, cfg.hidden_size)
        self.activation = ACTIVATIONS[cfg.activation]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(self.activation(self.up(x)))


class EncoderLayer(nn.Module):
    """Post-LayerNorm block, as in BERT: x = LN(x + attn(x)); x = LN(x + ffn(x))."""

    def __init__(self, cfg: EncoderConfig, attention: nn.Module | None = None) -> None:
        super().__init__()
        self.attention = attention if attention is not None else SelfAttention(cfg)
        self.attention_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.ffn = FeedForward(cfg)
        self.ffn_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(
        self, x: torch.Tensor, keep: torch.Tensor | None, need_weights: bool, **attention_inputs: Any
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        attended, weights = self.attention(x, keep, need_weights, **attention_inputs)
        x = self.attention_norm(x + self.dropout(attended))
        x = self.ffn_norm(x + self.dropout(self.ffn(x)))
        return x, weights


class Embeddings(nn.Module):
    """Token + position (+ segment) embeddings, then LayerNorm (then, for ELECTRA, a projection to hidden_size)."""

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        width = cfg.embedding_size or cfg.hidden_size
        self.word = nn.Embedding(cfg.vocab_size, width)
        self.position = nn.Embedding(cfg.max_position_embeddings, width)
        self.token_type = nn.Embedding(cfg.type_vocab_size, width) if cfg.type_vocab_size else None
        self.norm = nn.LayerNorm(width, eps=cfg.layer_norm_eps)
        self.project = nn.Linear(width, cfg.hidden_size) if width != cfg.hidden_size else None
        self.dropout = nn.Dropout(cfg.dropout)
        self.padding_idx = cfg.pad_token_id if cfg.positions_after_padding_idx else None

    def positions(self, attention_mask: torch.Tensor) -> torch.Tensor:
        if self.padding_idx is None:
            return torch.arange(attention_mask.size(1), device=attention_mask.device)[None]  # (1, T)
        # RoBERTa: real tokens count up from padding_idx + 1; padding sits at padding_idx itself.
        mask = attention_mask.long()
        return mask.cumsum(dim=1) * mask + self.padding_idx  # (B, T)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
    ) -> torch.Tensor:
        x = self.word(input_ids) + self.position(self.positions(attention_mask))
        if self.token_type is not None:
            # A one-row table (RoBERTa) is still added; a tokenizer's second-segment ids then mean row 0.
            x = x + self.token_type(token_type_ids if self.token_type.num_embeddings > 1 else 0 * token_type_ids)
        x = self.dropout(self.norm(x))
        return self.project(x) if self.project is not None else x  # (B, T, C)


def key_mask(attention_mask: torch.Tensor, need_weights: bool) -> torch.Tensor | None:
    """(B, 1, 1, T), True where a key is a real token (padding keys get no weight); None when nothing is masked,
    which lets the fused kernel take its faster unmasked path."""
    if not need_weights and bool(attention_mask.all()):
        return None
    return attention_mask.bool()[:, None, None, :]


class Encoder(nn.Module):
    """Embeddings and a stack of layers; returns hidden states and, on request, every layer's weights."""

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.config = cfg
        self.embeddings = Embeddings(cfg)
        self.layers = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.num_layers))

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
        x = self.embeddings(input_ids, attention_mask, token_type_ids)
        all_weights: list[torch.Tensor] = []
        for layer in self.layers:
            x, weights = layer(x, keep, need_weights)
            if weights is not None:
                all_weights.append(weights)
        return x, all_weights  # (B, T, C), num_layers × (B, nh, T, T)


class ClassificationHead(nn.Module):
    """The first token's hidden state → dense → activation → linear classifier. One head, several names: BERT's
    pooler (tanh), RoBERTa's and ELECTRA's classification head (tanh, GELU), DistilBERT's pre_classifier (ReLU),
    DeBERTa's context pooler (its pooler_hidden_act)."""

    def __init__(self, hidden_size: int, num_labels: int, activation: str = "tanh") -> None:
        super().__init__()
        self.pooler = nn.Linear(hidden_size, hidden_size)
        self.classifier = nn.Linear(hidden_size, num_labels)
        self.activation = ACTIVATIONS[activation]
        self.dropout = nn.Dropout(0.1)

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        pooled = self.activation(self.pooler(hidden[:, 0]))  # (B, C)
        return self.classifier(self.dropout(pooled))  # (B, num_labels)


class SpanHead(nn.Module):
    """Start and end logits for every token, as BertForQuestionAnswering."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.qa_outputs = nn.Linear(hidden_size, 2)

    def forward(
        self, hidden: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        start, end = self.qa_outputs(hidden).split(1, dim=-1)
        return start.squeeze(-1), end.squeeze(-1)  # (B, T) each


class TaskModel(nn.Module):
    """An encoder with one task head; the engine runs this."""

    def __init__(self, encoder: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        need_weights: bool = False,
    ) -> tuple[Any, list[torch.Tensor]]:
        hidden, weights = self.encoder(input_ids, attention_mask, token_type_ids, need_weights)
        return self.head(hidden, attention_mask), weights
