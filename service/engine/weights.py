"""Load a model directory by Hugging Face weight names, with every shape checked.

Three layouts are served:
- a bare BERT checkpoint (BertModel names, with or without the `bert.` prefix): encoder only;
- a full task checkpoint (BertForSequenceClassification / BertForQuestionAnswering);
- an attention-serve artifact: `attention_serve.json` + `adapter.safetensors` (fine-tuned encoder
  tensors, LoRA matrices and head weights) on top of a base checkpoint, merged at load time.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from safetensors.torch import load_file, save_file

from service.engine.errors import ModelLoadError
from service.engine.layout import (
    ADAPTER_FILE,
    ARTIFACT_FILE,
    is_artifact,
    resolve_base,
    tokenizer_file,
)
from service.engine.layout import read_json as _read_json
from service.engine.lora import merge_lora
from service.engine.model import ClassificationHead, EncoderConfig, SpanHead, TaskModel

Task = Literal["sentiment", "qa"]
DEFAULT_LABELS = ("negative", "positive")

# Hugging Face name → our name. Applied in order after the optional `bert.` prefix is dropped.
_HF_TO_OURS = [
    (r"^embeddings\.word_embeddings\.", "encoder.embeddings.word."),
    (r"^embeddings\.position_embeddings\.", "encoder.embeddings.position."),
    (r"^embeddings\.token_type_embeddings\.", "encoder.embeddings.token_type."),
    (r"^embeddings\.LayerNorm\.", "encoder.embeddings.norm."),
    (r"^encoder\.layer\.(\d+)\.attention\.self\.(query|key|value)\.", r"encoder.layers.\1.attention.\2."),
    (r"^encoder\.layer\.(\d+)\.attention\.output\.dense\.", r"encoder.layers.\1.attention.output."),
    (r"^encoder\.layer\.(\d+)\.attention\.output\.LayerNorm\.", r"encoder.layers.\1.attention_norm."),
    (r"^encoder\.layer\.(\d+)\.intermediate\.dense\.", r"encoder.layers.\1.ffn.up."),
    (r"^encoder\.layer\.(\d+)\.output\.dense\.", r"encoder.layers.\1.ffn.down."),
    (r"^encoder\.layer\.(\d+)\.output\.LayerNorm\.", r"encoder.layers.\1.ffn_norm."),
    (r"^pooler\.dense\.", "head.pooler."),
    (r"^classifier\.", "head.classifier."),
    (r"^qa_outputs\.", "head.qa_outputs."),
]
_IGNORED = re.compile(r"(^|\.)position_ids$")


def hf_to_ours(name: str) -> str | None:
    name = name.removeprefix("bert.")
    for pattern, replacement in _HF_TO_OURS:
        if re.match(pattern, name):
            return re.sub(pattern, replacement, name)
    return None


def ours_to_hf(name: str) -> str:
    """Inverse of hf_to_ours, for exporting a full Hugging Face task checkpoint."""
    rules = [
        (r"^encoder\.embeddings\.word\.", "bert.embeddings.word_embeddings."),
        (r"^encoder\.embeddings\.position\.", "bert.embeddings.position_embeddings."),
        (r"^encoder\.embeddings\.token_type\.", "bert.embeddings.token_type_embeddings."),
        (r"^encoder\.embeddings\.norm\.", "bert.embeddings.LayerNorm."),
        (r"^encoder\.layers\.(\d+)\.attention\.(query|key|value)\.", r"bert.encoder.layer.\1.attention.self.\2."),
        (r"^encoder\.layers\.(\d+)\.attention\.output\.", r"bert.encoder.layer.\1.attention.output.dense."),
        (r"^encoder\.layers\.(\d+)\.attention_norm\.", r"bert.encoder.layer.\1.attention.output.LayerNorm."),
        (r"^encoder\.layers\.(\d+)\.ffn\.up\.", r"bert.encoder.layer.\1.intermediate.dense."),
        (r"^encoder\.layers\.(\d+)\.ffn\.down\.", r"bert.encoder.layer.\1.output.dense."),
        (r"^encoder\.layers\.(\d+)\.ffn_norm\.", r"bert.encoder.layer.\1.output.LayerNorm."),
        (r"^head\.pooler\.", "bert.pooler.dense."),
        (r"^head\.classifier\.", "classifier."),
        (r"^head\.qa_outputs\.", "qa_outputs."),
    ]
    for pattern, replacement in rules:
        if re.match(pattern, name):
            return re.sub(pattern, replacement, name)
    raise KeyError(name)


@dataclass(frozen=True)
class ModelInfo:
    """What the service reports about a loaded model (GET /v1/models, metrics)."""

    task: Task
    model_id: str
    version: str
    base: str
    labels: tuple[str, ...] = ()
    max_position_embeddings: int = 512
    metadata: dict = field(default_factory=dict, compare=False)


@dataclass
class LoadedModel:
    model: TaskModel
    tokenizer_file: Path
    info: ModelInfo


def _read_checkpoint(model_dir: Path) -> dict[str, torch.Tensor]:
    path = model_dir / "model.safetensors"
    if not path.exists():
        raise ModelLoadError(f"{model_dir} has no model.safetensors (pytorch_model.bin is not loaded: unsafe pickle)")
    return load_file(str(path))


def _new_head(task: Task, hidden_size: int, num_labels: int) -> torch.nn.Module:
    return ClassificationHead(hidden_size, num_labels) if task == "sentiment" else SpanHead(hidden_size)


def _load_state(model: TaskModel, tensors: dict[str, torch.Tensor], source: Path, required: tuple[str, ...]) -> None:
    """Copy tensors in by name; fail loudly on a shape mismatch or a missing weight under `required` prefixes."""
    ours = model.state_dict()
    seen: set[str] = set()
    for hf_name, tensor in tensors.items():
        if _IGNORED.search(hf_name):
            continue
        name = (
            hf_to_ours(hf_name)
            if not hf_name.startswith(("encoder.layers.", "encoder.embeddings.", "head."))
            else hf_name
        )
        if name is None or name not in ours:
            continue  # e.g. an MLM head in a pretraining checkpoint
        if tuple(tensor.shape) != tuple(ours[name].shape):
            raise ModelLoadError(
                f"{source}: {hf_name} has shape {tuple(tensor.shape)}, the config implies {tuple(ours[name].shape)}"
            )
        ours[name].copy_(tensor.to(ours[name].dtype))
        seen.add(name)
    missing = [n for n in ours if n not in seen and n.startswith(required)]
    if missing:
        raise ModelLoadError(f"{source}: checkpoint lacks {len(missing)} weights, e.g. {missing[:3]}")


def _labels_from_config(config: dict) -> tuple[str, ...]:
    id2label = config.get("id2label")
    if not id2label:
        return DEFAULT_LABELS
    return tuple(str(id2label[k]).lower() for k in sorted(id2label, key=int))


def load_encoder(base_dir: Path, task: Task, num_labels: int = 2) -> tuple[TaskModel, dict]:
    """A TaskModel with the base's encoder weights and a freshly initialised head."""
    config = _read_json(base_dir / "config.json")
    model = TaskModel(EncoderConfig.from_hf(config), _new_head(task, config["hidden_size"], num_labels))
    with torch.no_grad():
        _load_state(model, _read_checkpoint(base_dir), base_dir, required=("encoder.",))
    return model, config


def load_task_model(model_dir: str | Path, task: Task) -> LoadedModel:
    """Load an attention-serve artifact or a full Hugging Face task checkpoint for `task`."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ModelLoadError(f"model directory {model_dir} does not exist")
    if is_artifact(model_dir):
        meta = _read_json(model_dir / ARTIFACT_FILE)
        if meta.get("task") != task:
            raise ModelLoadError(f"{model_dir} holds a {meta.get('task')!r} model, not {task!r}")
        base_dir = resolve_base(meta["base"], model_dir)
        labels = tuple(meta.get("labels", DEFAULT_LABELS)) if task == "sentiment" else ()
        model, config = load_encoder(base_dir, task, num_labels=len(labels) or 2)
        adapter = load_file(str(model_dir / ADAPTER_FILE))
        lora = {k: v for k, v in adapter.items() if k.endswith((".lora_A", ".lora_B"))}
        head = {k: v for k, v in adapter.items() if k.startswith("head.")}
        # Fine-tuned encoder tensors (all of them after full fine-tuning; biases and LayerNorms after LoRA)
        # replace the base's; adapter matrices are then folded into the weights.
        encoder = {k: v for k, v in adapter.items() if k.startswith("encoder.") and k not in lora}
        unknown = sorted(set(encoder) - set(model.state_dict()))
        if unknown:  # e.g. a training-time name: loading would silently serve the base's tensor instead
            raise ModelLoadError(
                f"{model_dir}: {len(unknown)} tensors match no weight of the model, e.g. {unknown[:2]}"
            )
        with torch.no_grad():
            _load_state(model, encoder, model_dir, required=())
            if lora:
                merge_lora(model, lora, meta["lora"]["alpha"] / meta["lora"]["rank"])
            _load_state(model, head, model_dir, required=("head.",))
        info = ModelInfo(
            task=task,
            model_id=meta.get("model_id", model_dir.name),
            version=str(meta.get("version", "0")),
            base=meta["base"],
            labels=labels,
            max_position_embeddings=config.get("max_position_embeddings", 512),
            metadata=meta,
        )
    else:
        config = _read_json(model_dir / "config.json")
        labels = _labels_from_config(config) if task == "sentiment" else ()
        model = TaskModel(EncoderConfig.from_hf(config), _new_head(task, config["hidden_size"], len(labels) or 2))
        with torch.no_grad():
            _load_state(model, _read_checkpoint(model_dir), model_dir, required=("encoder.", "head."))
        info = ModelInfo(
            task=task,
            model_id=model_dir.name,
            version=str(config.get("attention_serve_version", config.get("transformers_version", "0"))),
            base=config.get("_name_or_path", model_dir.name),
            labels=labels,
            max_position_embeddings=config.get("max_position_embeddings", 512),
        )
    model.eval()
    return LoadedModel(model=model, tokenizer_file=tokenizer_file(model_dir), info=info)


def export_hf_checkpoint(loaded: LoadedModel, base_config: dict, out_dir: Path) -> None:
    """Write a merged model as a plain Hugging Face task checkpoint (for transformers or other servers)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tensors = {ours_to_hf(k): v.detach().float().contiguous() for k, v in loaded.model.state_dict().items()}
    save_file(tensors, str(out_dir / "model.safetensors"))
    config = dict(base_config)
    if loaded.info.task == "sentiment":
        config["architectures"] = ["BertForSequenceClassification"]
        config["id2label"] = {str(i): label for i, label in enumerate(loaded.info.labels)}
        config["label2id"] = {label: i for i, label in enumerate(loaded.info.labels)}
    else:
        config["architectures"] = ["BertForQuestionAnswering"]
    (out_dir / "config.json").write_text(json.dumps(config, indent=2))
    (out_dir / "tokenizer.json").write_bytes(loaded.tokenizer_file.read_bytes())
