"""Low-rank adapters (LoRA) for fine-tuning, merged into the base weights before serving.

Training wraps chosen nn.Linear layers in LoRALinear; the shipped artifact stores only the A/B
matrices (a few MB), and `merge_lora` folds scale·B·A into each weight at load time, so serving a
fine-tuned model costs exactly what serving the base does.
"""

from __future__ import annotations

import math

import torch
from torch import nn

# Every linear map inside an encoder layer, by our module names (see model.py).
ALL_TARGETS = ("attention.query", "attention.key", "attention.value", "attention.output", "ffn.up", "ffn.down")


class LoRALinear(nn.Module):
    def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float) -> None:
        super().__init__()
        self.base = base
        self.scale = alpha / rank
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_features))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank))  # zero: training starts at the base
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (self.dropout(x) @ self.lora_A.T @ self.lora_B.T) * self.scale


def add_lora(
    model: nn.Module, rank: int, alpha: float, dropout: float = 0.1, targets: tuple[str, ...] = ALL_TARGETS
) -> list[str]:
    """Wrap every `encoder.layers.*.<target>` linear in a LoRALinear; returns the wrapped names."""
    wrapped = []
    for name, module in list(model.named_modules()):
        if (
            isinstance(module, nn.Linear)
            and ".layers." in name
            and name.split(".layers.")[1].split(".", 1)[1] in targets
        ):
            parent_name, attr = name.rsplit(".", 1)
            setattr(model.get_submodule(parent_name), attr, LoRALinear(module, rank, alpha, dropout))
            wrapped.append(name)
    return wrapped


def lora_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """The adapter matrices by `<linear name>.lora_A|lora_B`, for saving."""
    return {
        name: param.detach().clone()
        for name, param in model.named_parameters()
        if name.endswith((".lora_A", ".lora_B"))
    }


def lora_base_name(name: str) -> str:
    """`...query.base.weight` (a wrapped linear during training) → `...query.weight`."""
    return name.replace(".base.", ".")


@torch.no_grad()
def merge_lora(model: nn.Module, tensors: dict[str, torch.Tensor], scale: float) -> int:
    """Fold W += scale · B·A into plain nn.Linear layers; returns how many layers were merged."""
    merged = 0
    for name, a in tensors.items():
        if not name.endswith(".lora_A"):
            continue
        prefix = name.removesuffix(".lora_A")
        b = tensors[f"{prefix}.lora_B"]
        linear = model.get_submodule(prefix)
        if not isinstance(linear, nn.Linear) or linear.weight.shape != (b.shape[0], a.shape[1]):
            raise ValueError(f"adapter {prefix} does not fit the model")
        linear.weight += scale * (b.float() @ a.float()).to(linear.weight.dtype)
        merged += 1
    return merged
