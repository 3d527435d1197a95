"""What a model family declares: how to read its config.json, build its encoder and heads, and name its weights.

A family says only what differs from the shared core (service/engine/model.py). The loader (weights.py) picks
the family from config.json's `model_type`, and a name it cannot place is simply not ours (an MLM head, say),
while a weight of ours that the checkpoint lacks is a load error.
"""

from __future__ import annotations

import re
from typing import Any

from torch import nn

from service.engine.errors import UnsupportedModelError
from service.engine.model import ACTIVATIONS, ClassificationHead, EncoderConfig, SpanHead, TaskModel
from service.engine.results import Task

# Old TensorFlow-era names for a LayerNorm's parameters, still found in some checkpoints.
_OLD_NORM_NAMES = (
    (re.compile(r"(LayerNorm|layer_norm|_norm)\.gamma$"), r"\1.weight"),
    (re.compile(r"(LayerNorm|layer_norm|_norm)\.beta$"), r"\1.bias"),
)


class Family:
    """BERT's way, which most families share; a subclass overrides what its family does differently."""

    name = "BERT"
    model_types: tuple[str, ...] = ("bert",)
    prefix = "bert."  # the encoder's attribute in the family's task classes (BertForQuestionAnswering.bert)
    # Hugging Face name (prefix removed) → ours, tried in order.
    renames: tuple[tuple[str, str], ...] = ()

    def read_config(self, config: dict[str, Any]) -> EncoderConfig:
        raise NotImplementedError

    def build_encoder(self, cfg: EncoderConfig) -> nn.Module:
        raise NotImplementedError

    def build_head(self, cfg: EncoderConfig, task: Task, num_labels: int) -> nn.Module:
        if task == "sentiment":
            return ClassificationHead(cfg.hidden_size, num_labels, cfg.classifier_activation)
        return SpanHead(cfg.hidden_size)

    def build(self, cfg: EncoderConfig, task: Task, num_labels: int) -> TaskModel:
        return TaskModel(self.build_encoder(cfg), self.build_head(cfg, task, num_labels))

    def rename(self, hf_name: str) -> str | None:
        """Our name for a checkpoint's weight, or None when it is not part of the encoder or a task head."""
        for pattern, replacement in _OLD_NORM_NAMES:
            hf_name = pattern.sub(replacement, hf_name)
        hf_name = hf_name.removeprefix(self.prefix)
        for pattern, replacement in self.renames:
            if re.match(pattern, hf_name):
                return re.sub(pattern, replacement, hf_name)
        return None


def require_activation(name: str, setting: str) -> str:
    if name not in ACTIVATIONS:
        raise UnsupportedModelError(f"{setting}={name!r} is not supported; supported: {', '.join(sorted(ACTIVATIONS))}")
    return name


def require_divisible(hidden_size: int, num_heads: int) -> None:
    if hidden_size % num_heads:
        raise UnsupportedModelError(f"hidden_size {hidden_size} is not a multiple of the {num_heads} attention heads")
