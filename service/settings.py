"""Every knob a user turns, in one place: read from ATTENTION_SERVE_* environment variables, the Serve
config's application args, or keyword arguments, in that order of precedence (lowest first).

The README's configuration table documents each field; keep the two in step.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_MODELS = Path(__file__).resolve().parent / "models"


def default_model_dir(task: str) -> Path:
    """The task model shipped with the package (LoRA adapters over the pretrained MiniLM-L6 base)."""
    return PACKAGE_MODELS / task
