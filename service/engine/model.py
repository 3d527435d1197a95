"""The encoder: a BERT-family transformer whose attention is written as the math it is.

Classes in dependency order: EncoderConfig → Embeddings → SelfAttention → FeedForward →
EncoderLayer → Encoder → heads. Weight loading by Hugging Face names lives in weights.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from service.engine.errors import UnsupportedModelError


@dataclass(frozen=True)
class EncoderConfig:
    vocab_size: int = 30522
    hidden_size: int = 384
    num_layers: int = 6
    num_heads: int = 12
    intermediate_size: int = 1536
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    dropout: float = 0.1  # only active in training (model.train()); inference is deterministic

    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_heads

    @classmethod
    def from_hf(cls, config: dict[str, Any]) -> EncoderConfig:
        """Read a Hugging Face config.json, refusing at load time what this encoder cannot run."""
        model_type = config.get("model_type", "bert")
        if model_type != "bert":
            raise UnsupportedModelError(f"only BERT-family encoders are supported, got model_type={model_type!r}")
        if config.get("hidden_act", "gelu") != "gelu":
            raise UnsupportedModelError(f"only the exact 'gelu' activation is supported, got {config['hidden_act']!r}")
        if config.get("position_embedding_type", "absolute") != "absolute":
            raise UnsupportedModelError("only absolute position embeddings are supported")
        if config["hidden_size"] % config["num_attention_heads"]:
            raise UnsupportedModelError("hidden_size must be a multiple of num_attention_heads")
        return cls(
            vocab_size=config["vocab_size"],
            hidden_size=config["hidden_size"],
            num_layers=config["num_hidden_layers"],
            num_heads=config["num_attention_heads"],
            intermediate_size=config["intermediate_size"],
            max_position_embeddings=config.get("max_position_embeddings", 512),
            type_vocab_size=config.get("type_vocab_size", 2),
            layer_norm_eps=config.get("layer_norm_eps", 1e-12),
            dropout=config.get("hidden_dropout_prob", 0.1),
        )


class Embeddings(nn.Module):
    """Token + position + segment embeddings, then LayerNorm."""

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.word = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.position = nn.Embedding(cfg.max_position_embeddings, cfg.hidden_size)
        self.token_type = nn.Embedding(cfg.type_vocab_size, cfg.hidden_size)
        self.norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.size(1), device=input_ids.device)
        x = self.word(input_ids) + self.position(positions)[None] + self.token_type(token_type_ids)
        return self.dropout(self.norm(x))  # (B, T, C)


class SelfAttention(nn.Module):
    """Multi-head self-attention: weights = softmax(Q·Kᵀ/√d over unmasked keys), output = weights·V."""

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.num_heads = cfg.num_heads
        self.head_size = cfg.head_size
        self.query = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.key = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.value = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.output = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.dropout_p = cfg.dropout

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, seq, _ = x.shape
        return x.view(batch, seq, self.num_heads, self.head_size).transpose(1, 2)  # (B, nh, T, hs)

    def forward(
        self, x: torch.Tensor, key_mask: torch.Tensor | None, need_weights: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """key_mask is (B, 1, 1, T), True where a key is a real token (padding keys get no weight), or None."""
        q, k, v = self._split_heads(self.query(x)), self._split_heads(self.key(x)), self._split_heads(self.value(x))
        dropout_p = self.dropout_p if self.training else 0.0
        if need_weights:
            # The explicit path, which the product explains and whose weights the API returns.
            scores = (q @ k.transpose(-2, -1)) / math.sqrt(self.head_size)  # (B, nh, T, T)
            if key_mask is not None:
                scores = scores.masked_fill(~key_mask, float("-inf"))
            weights = scores.softmax(dim=-1)
            y = F.dropout(weights, dropout_p, self.training) @ v  # (B, nh, T, hs)
        else:
            # The fused kernel computes the same thing without materialising the weights.
            weights = None
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask, dropout_p=dropout_p)
        batch, _, seq, _ = y.shape
        y = y.transpose(1, 2).reshape(batch, seq, self.num_heads * self.head_size)  # (B, T, C)
        return self.output(y), weights


class FeedForward(nn.Module):
    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.up = nn.Linear(cfg.hidden_size, cfg.intermediate_size)
        self.down = nn.Linear(cfg.intermediate_size, cfg.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.gelu(self.up(x)))


class EncoderLayer(nn.Module):
    """Post-LayerNorm block, as in BERT: x = LN(x + attn(x)); x = LN(x + ffn(x))."""

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.attention = SelfAttention(cfg)
        self.attention_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.ffn = FeedForward(cfg)
        self.ffn_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(
        self, x: torch.Tensor, key_mask: torch.Tensor | None, need_weights: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        attended, weights = self.attention(x, key_mask, need_weights)
        x = self.attention_norm(x + self.dropout(attended))
        x = self.ffn_norm(x + self.dropout(self.ffn(x)))
        return x, weights


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
        key_mask: torch.Tensor | None = attention_mask.bool()[:, None, None, :]  # (B, 1, 1, T)
        if not need_weights and bool(attention_mask.all()):
            key_mask = None  # nothing to mask: lets the fused kernel take its faster unmasked path
        x = self.embeddings(input_ids, token_type_ids)
        all_weights: list[torch.Tensor] = []
        for layer in self.layers:
            x, weights = layer(x, key_mask, need_weights)
            if weights is not None:
                all_weights.append(weights)
        return x, all_weights  # (B, T, C), num_layers × (B, nh, T, T)


class ClassificationHead(nn.Module):
    """BERT's pooler (dense + tanh on [CLS]) then a linear classifier, as BertForSequenceClassification."""

    def __init__(self, hidden_size: int, num_labels: int) -> None:
        super().__init__()
        self.pooler = nn.Linear(hidden_size, hidden_size)
        self.classifier = nn.Linear(hidden_size, num_labels)
        self.dropout = nn.Dropout(0.1)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        pooled = torch.tanh(self.pooler(hidden[:, 0]))  # (B, C)
        return self.classifier(self.dropout(pooled))  # (B, num_labels)


class SpanHead(nn.Module):
    """Start and end logits for every token, as BertForQuestionAnswering."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.qa_outputs = nn.Linear(hidden_size, 2)

    def forward(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        start, end = self.qa_outputs(hidden).split(1, dim=-1)
        return start.squeeze(-1), end.squeeze(-1)  # (B, T) each


class TaskModel(nn.Module):
    """An encoder with one task head; the engine runs this."""

    def __init__(self, cfg: EncoderConfig, head: nn.Module) -> None:
        super().__init__()
        self.encoder = Encoder(cfg)
        self.head = head

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        need_weights: bool = False,
    ) -> tuple[Any, list[torch.Tensor]]:
        hidden, weights = self.encoder(input_ids, attention_mask, token_type_ids, need_weights)
        return self.head(hidden), weights
