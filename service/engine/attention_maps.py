"""Summaries of attention weights a client can draw over its text.

Raw weights are num_layers × heads × T × T; a client highlighting text wants, per token, how much
the query tokens ([CLS] for sentiment, the answer span for QA) looked at it: per layer (averaged
over heads) and through all layers at once by attention rollout (Abnar & Zuidema, 2020), which
multiplies the head-averaged maps, each mixed half-and-half with the identity for the residual path.
"""

from __future__ import annotations

import torch


def head_averaged(layer_weights: list[torch.Tensor]) -> torch.Tensor:
    """num_layers × (heads, T, T) → (num_layers, T, T), in float32."""
    return torch.stack([w.float().mean(dim=0) for w in layer_weights])


def rollout(averaged: torch.Tensor) -> torch.Tensor:
    """(L, T, T) head-averaged maps → (T, T): how much each token draws on each input through all layers."""
    size = averaged.size(-1)
    result = torch.eye(size)
    for layer in averaged:
        mixed = 0.5 * layer + 0.5 * torch.eye(size)
        result = (mixed / mixed.sum(dim=-1, keepdim=True)) @ result
    return result


def summarize(averaged: torch.Tensor, query_rows: list[int]) -> tuple[list[list[float]], list[float]]:
    """Per-layer and rollout attention from `query_rows` (averaged over them) to every token."""
    per_layer = averaged[:, query_rows, :].mean(dim=1)  # (L, T)
    rolled = rollout(averaged)[query_rows, :].mean(dim=0)  # (T,)
    return per_layer.tolist(), rolled.tolist()
