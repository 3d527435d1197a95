"""BERT and the families that are BERT with another embedding or head: RoBERTa (XLM-RoBERTa, CamemBERT), ELECTRA,
DistilBERT. All run the shared core's post-LayerNorm layers unchanged; what differs is declared here.

| family     | positions                         | token types | embeddings          | classification head         |
|------------|-----------------------------------|-------------|---------------------|-----------------------------|
| BERT       | 0, 1, 2, …                        | yes         |                     | pooler: dense → tanh        |
| RoBERTa    | padding_idx + 1, … over real ones | one row     |                     | dense → tanh → out_proj     |
| ELECTRA    | 0, 1, 2, …                        | yes         | narrower, projected | dense → GELU → out_proj     |
| DistilBERT | 0, 1, 2, …                        | none        |                     | pre_classifier → ReLU       |
"""

from __future__ import annotations

from typing import Any

from torch import nn

from service.engine.errors import UnsupportedModelError
from service.engine.families.base import Family, require_activation, require_divisible
from service.engine.model import Encoder, EncoderConfig

# The BERT encoder's Hugging Face names (the family prefix removed) → ours.
ENCODER_RENAMES: tuple[tuple[str, str], ...] = (
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
)
QA_RENAMES = ((r"^qa_outputs\.", "head.qa_outputs."),)
# RoBERTa's and ELECTRA's classification head: classifier.dense → activation → classifier.out_proj.
DENSE_OUT_PROJ_HEAD = ((r"^classifier\.dense\.", "head.pooler."), (r"^classifier\.out_proj\.", "head.classifier."))


def _bert_like_config(config: dict[str, Any], **overrides: Any) -> EncoderConfig:
    """The config.json fields BERT, RoBERTa and ELECTRA share, refusing what the core cannot run."""
    if config.get("position_embedding_type", "absolute") != "absolute":
        raise UnsupportedModelError(
            f"position_embedding_type={config['position_embedding_type']!r} is not supported (only 'absolute')"
        )
    if config.get("is_decoder") or config.get("add_cross_attention"):
        raise UnsupportedModelError("decoder configurations (is_decoder, add_cross_attention) are not supported")
    require_divisible(config["hidden_size"], config["num_attention_heads"])
    fields: dict[str, Any] = {
        "vocab_size": config["vocab_size"],
        "hidden_size": config["hidden_size"],
        "num_layers": config["num_hidden_layers"],
        "num_heads": config["num_attention_heads"],
        "intermediate_size": config["intermediate_size"],
        "max_position_embeddings": config.get("max_position_embeddings", 512),
        "type_vocab_size": config.get("type_vocab_size", 2),
        "layer_norm_eps": config.get("layer_norm_eps", 1e-12),
        "dropout": config.get("hidden_dropout_prob", 0.1),
        "activation": require_activation(config.get("hidden_act", "gelu"), "hidden_act"),
        "pad_token_id": config.get("pad_token_id") or 0,
    }
    return EncoderConfig(**{**fields, **overrides})


class Bert(Family):
    name = "BERT"
    model_types = ("bert",)
    prefix = "bert."
    renames = (
        *ENCODER_RENAMES,
        (r"^pooler\.dense\.", "head.pooler."),
        (r"^classifier\.", "head.classifier."),
        *QA_RENAMES,
    )

    def read_config(self, config: dict[str, Any]) -> EncoderConfig:
        return _bert_like_config(config)

    def build_encoder(self, cfg: EncoderConfig) -> nn.Module:
        return Encoder(cfg)


class Roberta(Bert):
    """RoBERTa, XLM-RoBERTa and CamemBERT: BERT with positions counted after the padding index."""

    name = "RoBERTa"
    model_types = ("roberta", "xlm-roberta", "camembert")
    prefix = "roberta."
    renames = (*ENCODER_RENAMES, *DENSE_OUT_PROJ_HEAD, *QA_RENAMES)

    def read_config(self, config: dict[str, Any]) -> EncoderConfig:
        pad = config.get("pad_token_id")
        return _bert_like_config(
            config,
            pad_token_id=1 if pad is None else pad,
            positions_after_padding_idx=True,
            layer_norm_eps=config.get("layer_norm_eps", 1e-5),
            type_vocab_size=config.get("type_vocab_size", 1),
        )


class Electra(Bert):
    """ELECTRA's discriminator: embeddings of `embedding_size` projected up to hidden_size, and a GELU head."""

    name = "ELECTRA"
    model_types = ("electra",)
    prefix = "electra."
    renames = (
        *ENCODER_RENAMES,
        (r"^embeddings_project\.", "encoder.embeddings.project."),
        *DENSE_OUT_PROJ_HEAD,
        *QA_RENAMES,
    )

    def read_config(self, config: dict[str, Any]) -> EncoderConfig:
        return _bert_like_config(
            config, embedding_size=config.get("embedding_size", config["hidden_size"]), classifier_activation="gelu"
        )


class DistilBert(Bert):
    """DistilBERT: BERT's layers under other names, no token types, LayerNorm eps fixed at 1e-12, a ReLU head."""

    name = "DistilBERT"
    model_types = ("distilbert",)
    prefix = "distilbert."
    renames = (
        (r"^embeddings\.word_embeddings\.", "encoder.embeddings.word."),
        (r"^embeddings\.position_embeddings\.", "encoder.embeddings.position."),
        (r"^embeddings\.LayerNorm\.", "encoder.embeddings.norm."),
        (r"^transformer\.layer\.(\d+)\.attention\.q_lin\.", r"encoder.layers.\1.attention.query."),
        (r"^transformer\.layer\.(\d+)\.attention\.k_lin\.", r"encoder.layers.\1.attention.key."),
        (r"^transformer\.layer\.(\d+)\.attention\.v_lin\.", r"encoder.layers.\1.attention.value."),
        (r"^transformer\.layer\.(\d+)\.attention\.out_lin\.", r"encoder.layers.\1.attention.output."),
        (r"^transformer\.layer\.(\d+)\.sa_layer_norm\.", r"encoder.layers.\1.attention_norm."),
        (r"^transformer\.layer\.(\d+)\.ffn\.lin1\.", r"encoder.layers.\1.ffn.up."),
        (r"^transformer\.layer\.(\d+)\.ffn\.lin2\.", r"encoder.layers.\1.ffn.down."),
        (r"^transformer\.layer\.(\d+)\.output_layer_norm\.", r"encoder.layers.\1.ffn_norm."),
        (r"^pre_classifier\.", "head.pooler."),
        (r"^classifier\.", "head.classifier."),
        *QA_RENAMES,
    )

    def read_config(self, config: dict[str, Any]) -> EncoderConfig:
        require_divisible(config["dim"], config["n_heads"])
        return EncoderConfig(
            vocab_size=config["vocab_size"],
            hidden_size=config["dim"],
            num_layers=config["n_layers"],
            num_heads=config["n_heads"],
            intermediate_size=config["hidden_dim"],
            max_position_embeddings=config.get("max_position_embeddings", 512),
            type_vocab_size=0,
            layer_norm_eps=1e-12,
            dropout=config.get("dropout", 0.1),
            activation=require_activation(config.get("activation", "gelu"), "activation"),
            pad_token_id=config.get("pad_token_id") or 0,
            classifier_activation="relu",
        )
