"""Load a model directory by Hugging Face weight names, with every shape checked.

Three layouts are served:
- a bare encoder checkpoint of a supported family (with or without its `bert.`/`roberta.`/… prefix): encoder only;
- a full task checkpoint (…ForSequenceClassification / …ForQuestionAnswering), model.safetensors or
  pytorch_model.bin (read with torch's weights-only loader: tensors, never code);
- an attention-serve artifact: `attention_serve.json` + `adapter.safetensors` (fine-tuned encoder
  tensors, LoRA matrices and head weights) on top of a base checkpoint, merged at load time.
The family comes from config.json's `model_type` (service/engine/families/); anything else is refused at load.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from service.engine.errors import ModelLoadError
from service.engine.families import Family, family_for
from service.engine.layout import (
    ADAPTER_FILE,
    ARTIFACT_FILE,
    is_artifact,
    resolve_base,
    tokenizer_file,
)
from service.engine.layout import read_json as _read_json
from service.engine.lora import merge_lora
from service.engine.model import EncoderConfig, TaskModel
from service.engine.results import Task

DEFAULT_LABELS = ("negative", "positive")
_IGNORED_SUFFIXES = ("position_ids", "token_type_ids")  # buffers some checkpoints carry
_OURS = ("encoder.", "head.")  # names an attention-serve artifact stores as they are
# The task head each task needs, by the suffix of a checkpoint's architecture class.
_TASK_ARCHITECTURE = {"sentiment": "ForSequenceClassification", "qa": "ForQuestionAnswering"}


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
class ModelMeta:
    """What a model directory says about the model in it: task, id, version, base, labels, family (the API reports
    it as protocol.ModelInfo)."""

    task: Task
    model_id: str
    version: str
    base: str
    labels: tuple[str, ...] = ()
    max_position_embeddings: int = 512  # the longest input the model's positions allow
    metadata: dict = field(default_factory=dict, compare=False)
    family: str = "BERT"
    multi_label: bool = False  # labels scored independently (sigmoid), not as one distribution (softmax)


@dataclass
class LoadedModel:
    model: TaskModel
    tokenizer_file: Path
    info: ModelMeta
    pad_token_id: int = 0


def _read_checkpoint(model_dir: Path) -> dict[str, torch.Tensor]:
    path = model_dir / "model.safetensors"
    if path.exists():
        return load_file(str(path))
    legacy = model_dir / "pytorch_model.bin"
    if legacy.exists():
        try:  # weights_only: the unpickler builds tensors and plain containers, never arbitrary objects
            return torch.load(legacy, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ModelLoadError(f"{legacy} is not a plain tensor checkpoint: {exc}") from None
    raise ModelLoadError(f"{model_dir} has neither model.safetensors nor pytorch_model.bin")


def _load_state(
    model: TaskModel, tensors: dict[str, torch.Tensor], source: Path, required: tuple[str, ...], family: Family
) -> None:
    """Copy tensors in by name; fail loudly on a shape mismatch or a missing weight under `required` prefixes."""
    ours = model.state_dict()
    seen: set[str] = set()
    for hf_name, tensor in tensors.items():
        if hf_name.endswith(_IGNORED_SUFFIXES):
            continue
        name = hf_name if hf_name.startswith(_OURS) and hf_name in ours else family.rename(hf_name)
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


def labels_from_config(config: dict) -> tuple[str, ...]:
    """Label names exactly as the checkpoint's id2label has them, in id order; `LABEL_i` where it names none,
    as transformers does."""
    id2label = config.get("id2label")
    if not id2label:
        return tuple(f"LABEL_{i}" for i in range(config.get("num_labels", 2)))
    try:
        ordered = sorted(id2label.items(), key=lambda item: int(item[0]))
    except ValueError:
        raise ModelLoadError(f"id2label keys must be label indices, got {sorted(id2label)[:3]}") from None
    if [int(k) for k, _ in ordered] != list(range(len(ordered))):
        raise ModelLoadError(f"id2label must number its labels 0..{len(ordered) - 1}, got {[k for k, _ in ordered]}")
    names = tuple(str(name) for _, name in ordered)
    if len(set(names)) != len(names):
        raise ModelLoadError(f"id2label names a label twice: {list(names)}")
    return names


def _check_architecture(config: dict, task: Task, model_dir: Path) -> None:
    """A QA checkpoint given to the sentiment route (or the reverse) is refused by name, not by missing weights."""
    wanted = _TASK_ARCHITECTURE[task]
    architectures = config.get("architectures") or []
    heads = [a for a in architectures if a.endswith(tuple(_TASK_ARCHITECTURE.values()))]
    if heads and not any(a.endswith(wanted) for a in heads):
        raise ModelLoadError(f"{model_dir} is a {heads[0]} checkpoint; the {task} task serves a …{wanted} checkpoint")


def _build(config: dict, task: Task, num_labels: int) -> tuple[Family, EncoderConfig, TaskModel]:
    family = family_for(config)
    cfg = family.read_config(config)
    return family, cfg, family.build(cfg, task, num_labels)


def model_from_tensors(config: dict, tensors: dict[str, torch.Tensor], task: Task, num_labels: int = 2) -> TaskModel:
    """Our model of a checkpoint held in memory (a config.json dict and its state dict by Hugging Face names), every
    weight required: for comparing the engine with another implementation on the very same weights."""
    family, _, model = _build(config, task, num_labels)
    with torch.no_grad():
        _load_state(model, tensors, Path("<memory>"), required=("encoder.", "head."), family=family)
    return model.eval()


def load_encoder(base_dir: Path, task: Task, num_labels: int = 2) -> tuple[TaskModel, dict]:
    """A TaskModel with the base's encoder weights and a freshly initialised head."""
    config = _read_json(base_dir / "config.json")
    family, _, model = _build(config, task, num_labels)
    with torch.no_grad():
        _load_state(model, _read_checkpoint(base_dir), base_dir, required=("encoder.",), family=family)
    return model, config


@dataclass(frozen=True)
class _Directory:
    """What a model directory is, read from its JSON files alone (no weights)."""

    meta: ModelMeta
    config: dict  # the encoder's config.json (an artifact's base's)
    family: Family
    encoder: EncoderConfig
    base_dir: Path | None  # an artifact's base checkpoint; None for a full checkpoint
    artifact: dict | None  # an artifact's attention_serve.json


def _read_directory(model_dir: Path, task: Task) -> _Directory:
    """Everything loading `model_dir` for `task` would refuse, found without reading its weights."""
    if not model_dir.is_dir():
        raise ModelLoadError(f"model directory {model_dir} does not exist")
    if is_artifact(model_dir):
        artifact = _read_json(model_dir / ARTIFACT_FILE)
        if artifact.get("task") != task:
            raise ModelLoadError(f"{model_dir} holds a {artifact.get('task')!r} model, not {task!r}")
        base_dir = resolve_base(artifact["base"], model_dir)
        config = _read_json(base_dir / "config.json")
        family = family_for(config)
        encoder = family.read_config(config)
        meta = ModelMeta(
            task=task,
            model_id=artifact.get("model_id", model_dir.name),
            version=str(artifact.get("version", "0")),
            base=artifact["base"],
            labels=tuple(artifact.get("labels", DEFAULT_LABELS)) if task == "sentiment" else (),
            max_position_embeddings=encoder.max_tokens,
            metadata=artifact,
            family=family.name,
        )
        tokenizer_file(model_dir)
        return _Directory(meta, config, family, encoder, base_dir, artifact)
    config = _read_json(model_dir / "config.json")
    family = family_for(config)
    encoder = family.read_config(config)
    _check_architecture(config, task, model_dir)
    if not any((model_dir / name).exists() for name in ("model.safetensors", "pytorch_model.bin")):
        raise ModelLoadError(f"{model_dir} has neither model.safetensors nor pytorch_model.bin")
    tokenizer_file(model_dir)
    meta = ModelMeta(
        task=task,
        model_id=model_dir.name,
        version=str(config.get("attention_serve_version", config.get("transformers_version", "0"))),
        base=config.get("_name_or_path") or model_dir.name,
        labels=labels_from_config(config) if task == "sentiment" else (),
        max_position_embeddings=encoder.max_tokens,
        family=family.name,
        multi_label=task == "sentiment" and config.get("problem_type") == "multi_label_classification",
    )
    return _Directory(meta, config, family, encoder, None, None)


def check_model_dir(model_dir: str | Path, task: Task) -> ModelMeta:
    """What loading `model_dir` for `task` would refuse, found without reading its weights (so a service refuses a
    checkpoint it cannot serve before it starts anything, and describes a model it has not loaded)."""
    return _read_directory(Path(model_dir), task).meta


def load_task_model(model_dir: str | Path, task: Task) -> LoadedModel:
    """Load an attention-serve artifact or a full Hugging Face task checkpoint for `task`."""
    model_dir = Path(model_dir)
    directory = _read_directory(model_dir, task)
    family, meta = directory.family, directory.meta
    model = family.build(directory.encoder, task, len(meta.labels) or 2)
    if directory.artifact is not None and directory.base_dir is not None:
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
        base_dir = directory.base_dir
        with torch.no_grad():
            _load_state(model, _read_checkpoint(base_dir), base_dir, required=("encoder.",), family=family)
            _load_state(model, encoder, model_dir, required=(), family=family)
            if lora:
                lora_meta = directory.artifact["lora"]
                merge_lora(model, lora, lora_meta["alpha"] / lora_meta["rank"])
            _load_state(model, head, model_dir, required=("head.",), family=family)
    else:
        with torch.no_grad():
            _load_state(model, _read_checkpoint(model_dir), model_dir, required=("encoder.", "head."), family=family)
    model.eval()
    return LoadedModel(
        model=model, tokenizer_file=tokenizer_file(model_dir), info=meta, pad_token_id=directory.encoder.pad_token_id
    )


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
