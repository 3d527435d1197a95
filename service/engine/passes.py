"""Length-aware sub-batching: sort by length, cut batches on a padded-token budget and a padding bound.

Padding costs compute for nothing, so inputs of similar length share a forward pass. A sub-batch closes
when (its size × its longest input) would pass the token budget, or when the padding it would carry would
pass `max_padding` of its computed tokens: a few more, smaller passes cost less on a CPU than computing
padding. Pure Python, easy to test.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class PassStats:
    """One forward pass, as the service exports it: sequences, real and padded tokens, time."""

    sequences: int
    real_tokens: int
    padded_tokens: int
    seconds: float

    @property
    def padding_ratio(self) -> float:
        return 1.0 - self.real_tokens / self.padded_tokens if self.padded_tokens else 0.0


def plan_batches(
    lengths: Sequence[int],
    token_budget: int,
    max_batch_size: int,
    groups: Sequence[Hashable] | None = None,
    max_padding: float = 1.0,
) -> list[list[int]]:
    """Indices of `lengths` grouped into sub-batches.

    Within a batch every input has the same group key (e.g. whether attention weights are wanted),
    count × longest ≤ token_budget and padding ≤ max_padding × count × longest; an input longer than the
    budget runs alone.
    """
    keys = groups if groups is not None else [0] * len(lengths)
    order = sorted(range(len(lengths)), key=lambda i: (str(keys[i]), lengths[i]))
    batches: list[list[int]] = []
    current: list[int] = []
    real = 0
    for i in order:
        widest = lengths[i]  # ascending within a group: the newcomer is the longest
        computed = (len(current) + 1) * widest
        if current and (
            keys[i] != keys[current[0]]
            or len(current) >= max_batch_size
            or computed > token_budget
            or computed - (real + lengths[i]) > max_padding * computed
        ):
            batches.append(current)
            current, real = [], 0
        current.append(i)
        real += lengths[i]
    if current:
        batches.append(current)
    return batches
