"""The model families the engine runs, picked from a checkpoint's config.json.

Each family module declares what differs from the shared core (service/engine/model.py); this registry maps
`model_type` to its family and refuses, with the list of what is supported, anything else.
"""

from __future__ import annotations

from typing import Any

from service.engine.errors import UnsupportedModelError
from service.engine.families.base import Family
from service.engine.families.bert import Bert, DistilBert, Electra, Roberta
from service.engine.families.deberta_v2 import DebertaV2
from service.engine.families.modernbert import ModernBert

FAMILIES: tuple[Family, ...] = (Bert(), DistilBert(), Roberta(), Electra(), ModernBert(), DebertaV2())
_BY_MODEL_TYPE = {model_type: family for family in FAMILIES for model_type in family.model_types}
SUPPORTED = "BERT, DistilBERT, RoBERTa, XLM-RoBERTa, CamemBERT, ELECTRA, ModernBERT, DeBERTa-v2/v3"


def family_for(config: dict[str, Any]) -> Family:
    """The family of a config.json, or UnsupportedModelError naming the supported ones."""
    model_type = config.get("model_type") or _model_type_of_architectures(config.get("architectures") or [])
    family = _BY_MODEL_TYPE.get(model_type)
    if family is None:
        raise UnsupportedModelError(
            f"model_type {model_type!r} is not supported; supported families: {SUPPORTED} "
            f"(model_type {', '.join(repr(t) for t in _BY_MODEL_TYPE)})"
        )
    return family


def _model_type_of_architectures(architectures: list[str]) -> str:
    """Configs older than `model_type` (Google's original BERT ones) name only their classes, or nothing."""
    for architecture in architectures:
        for model_type in sorted(_BY_MODEL_TYPE, key=len, reverse=True):
            if architecture.lower().startswith(model_type.replace("-", "")):
                return model_type
    return architectures[0] if architectures else "bert"


__all__ = ["FAMILIES", "SUPPORTED", "Family", "family_for"]
