"""How an engine runs a model, and the defaults every caller starts from. Imports no torch.

The service's settings (service/settings.py) take their defaults for these knobs from here, and build each
replica's EngineConfig from its live settings: each default is declared once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Precision = Literal["fp32", "bf16", "int8"]
PrecisionChoice = Literal["auto", "fp32", "bf16", "int8"]
# What `auto` may give up for int8's speed: points of the model's own metric (SST-2 accuracy, SQuAD F1), as measured
# and recorded in its artifact (`int8.cost_points`). A model without that record is never served in int8 by `auto`.
INT8_AUTO_BOUND = 0.5


def int8_cost(metadata: dict) -> float | None:
    """Points of its own metric a model loses in int8, as measured and recorded in its artifact (None: unknown)."""
    cost = (metadata.get("int8") or {}).get("cost_points")
    return float(cost) if isinstance(cost, (int, float)) and not isinstance(cost, bool) else None


def auto_precisions(metadata: dict, on_cpu: bool) -> list[Precision]:
    """What `auto` chooses among for a model: fp32 and bf16, and int8 on a CPU when its recorded int8 cost is
    within INT8_AUTO_BOUND (the engine's probe and the benchmark's engine table both ask this)."""
    cost = int8_cost(metadata)
    return ["fp32", "bf16", "int8"] if on_cpu and cost is not None and cost <= INT8_AUTO_BOUND else ["fp32", "bf16"]


@dataclass(frozen=True)
class EngineConfig:
    precision: PrecisionChoice = "auto"  # auto: time each at load, keep the fastest (CPU flags do not tell)
    threads: int | None = None  # None: leave torch's default (all cores)
    token_budget: int = 8192  # padded tokens per forward pass
    max_batch_size: int = 32  # sequences per forward pass
    max_tokens: int = 512  # sentiment inputs longer than this are truncated
    max_padding: float = 0.1  # share of a pass's tokens that may be padding before it is cut in two
    device: str = "cpu"  # "cuda" or "cuda:N" to run on a GPU


DEFAULTS = EngineConfig()
