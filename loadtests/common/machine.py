"""What machine a benchmark ran on: ratios are only comparable within one run on one machine, and whether the CPU
has AVX-512, native bf16 (AVX-512 BF16, AMX) or VNNI (int8) decides which precision is fast."""

from __future__ import annotations

import os
import platform
from pathlib import Path

# The flags that decide the engine's speed, as /proc/cpuinfo names them.
SPEED_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_bf16", "amx_int8")


def _cpuinfo_field(name: str) -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(name):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def machine() -> str:
    """CPU model, cores, the speed-deciding flags it has and lacks, Python and OS, on one line."""
    model = _cpuinfo_field("model name") or platform.processor() or "unknown CPU"
    flags = set((_cpuinfo_field("flags") or "").split())
    has = [f for f in SPEED_FLAGS if f in flags] or ["none of " + ", ".join(SPEED_FLAGS)]
    lacks = [f for f in SPEED_FLAGS if f not in flags]
    return (
        f"{model}, {len(os.sched_getaffinity(0))} cores, flags: {' '.join(has)}"
        + (f" (no {' '.join(lacks)})" if lacks and flags else "")
        + f", Python {platform.python_version()}, {platform.system()}"
    )
