"""Tiny random checkpoints of every supported family, built offline: a transformers config, `save_pretrained`,
and a tokenizer trained here on a few sentences (WordPiece for BERT-style vocabularies, byte-level BPE for
RoBERTa's, Unigram with SentencePiece's ▁ for XLM-R's and DeBERTa-v3's). Nothing comes from a hub.

Labels are three names of mixed case, as users' checkpoints have them.
"""

from __future__ import annotations

import functools
import inspect
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

LABELS = {0: "Negative", 1: "neutral", 2: "POSITIVE"}
CORPUS = [
    "The Eiffel Tower was finished in 1889 and stands in Paris.",
    "Marie Curie won two Nobel prizes, in physics and in chemistry.",
    "A gorgeous, moving film with a dull and lifeless middle act.",
    "The Amazon rainforest was named by Francisco de Orellana in 1542.",
    "When was the tower finished? Who won the prizes? Where is the forest?",
    "Ça ne marche pas, naïve café, crème brûlée. 東京 is big; numbers 12,345 and 3.14 too!",
] * 3


def wordpiece_tokenizer(lowercase: bool = True) -> Tokenizer:
    """BERT's kind: [CLS] a [SEP] b [SEP], token types 0 then 1."""
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=lowercase)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(CORPUS, trainers.WordPieceTrainer(vocab_size=300, special_tokens=specials))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    return tok


def byte_bpe_tokenizer() -> Tokenizer:
    """RoBERTa's kind: byte-level BPE with leading-space tokens ("Ġ"), <s> a </s></s> b </s>, pad id 1."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(CORPUS, trainer)
    tok.post_processor = processors.RobertaProcessing(
        ("</s>", 2), ("<s>", 0), trim_offsets=True, add_prefix_space=False
    )
    return tok


def unigram_tokenizer(template: str = "xlm-r") -> Tokenizer:
    """SentencePiece's kind (Unigram, "▁" marks a word's start): XLM-R's <s> a </s></s> b </s> or DeBERTa-v3's
    [CLS] a [SEP] b [SEP]."""
    if template == "xlm-r":
        specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    else:
        specials = ["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"]
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    unk = "<unk>" if template == "xlm-r" else "[UNK]"
    tok.train_from_iterator(CORPUS, trainers.UnigramTrainer(vocab_size=300, special_tokens=specials, unk_token=unk))
    if template == "xlm-r":
        tok.post_processor = processors.TemplateProcessing(
            single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
        )
    else:
        cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
        )
    return tok


def fast_tokenizer(tok: Tokenizer, token_types: bool = True):
    """The transformers wrapper, with the special tokens named, so pipelines and save_pretrained work."""
    from transformers import PreTrainedTokenizerFast

    vocab = tok.get_vocab()
    if "<s>" in vocab:
        names = {
            "bos_token": "<s>",
            "eos_token": "</s>",
            "cls_token": "<s>",
            "sep_token": "</s>",
            "pad_token": "<pad>",
            "unk_token": "<unk>",
            "mask_token": "<mask>",
        }
    else:
        names = {
            "cls_token": "[CLS]",
            "sep_token": "[SEP]",
            "pad_token": "[PAD]",
            "unk_token": "[UNK]",
            "mask_token": "[MASK]",
        }
    inputs = ["input_ids", "token_type_ids", "attention_mask"] if token_types else ["input_ids", "attention_mask"]
    return PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=512, model_input_names=inputs, **names)


def save_checkpoint(model, tok: Tokenizer, out: Path) -> Path:
    """save_pretrained for the model and its tokenizer (tokenizer.json and friends), as a user's directory has."""
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    # As transformers' own tokenizer classes: token types only for models that embed more than one (not DistilBERT,
    # RoBERTa, XLM-R, DeBERTa-v3, ModernBERT).
    token_types = (
        "token_type_ids" in inspect.signature(model.forward).parameters
        and getattr(model.config, "type_vocab_size", 0) > 1
    )
    fast_tokenizer(tok, token_types).save_pretrained(out)
    return out


def task_model(config_class, model_classes: dict[str, type], task: str, seed: int = 0, **config):
    """A seeded random model of one family for `task` ("sentiment": three labels of mixed case; "qa")."""
    torch.manual_seed(seed)
    if task == "sentiment":
        config = {**config, "id2label": LABELS, "label2id": {v: k for k, v in LABELS.items()}}
    model = model_classes[task](config_class(**config)).eval()
    with torch.no_grad():  # random heads are near-uniform; make the answers decisive enough to compare
        for name, param in model.named_parameters():
            if name.startswith(("classifier", "qa_outputs")) or ".out_proj." in name:
                param.normal_(0, 0.5)
    return model


WINDOW = 8  # ModernBERT's local attention window, small so tests exceed it


def modernbert_tokenizer() -> Tokenizer:
    """ModernBERT's kind: byte-level BPE ("Ġ" marks a leading space), [CLS] a [SEP] b [SEP], [PAD] not id 0."""
    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"]
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(CORPUS, trainer)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    return tok


def modernbert_config(tok: Tokenizer, **overrides) -> dict:
    cls, sep, pad = (tok.token_to_id(t) for t in ("[CLS]", "[SEP]", "[PAD]"))
    return {
        "vocab_size": tok.get_vocab_size(),
        "hidden_size": 32,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "intermediate_size": 64,
        "max_position_embeddings": 512,  # the service cuts QA windows to the positions
        "local_attention": WINDOW,
        "pad_token_id": pad,
        "cls_token_id": cls,
        "sep_token_id": sep,
        "bos_token_id": cls,
        "eos_token_id": sep,
        **overrides,
    }


def sharpen(model, seed: int) -> None:
    """ModernBERT's init (std 0.02, unit norms, zero biases) makes near-uniform attention and nothing to compare:
    give every weight some size, so positions, windows and biases all matter."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=generator)
            if "norm" in name and name.endswith("weight"):
                param.copy_(1 + 0.2 * noise)
            elif not name.startswith("classifier"):  # task_model already made the classifier decisive
                param.copy_(0.25 * noise)


_TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64}
_ROBERTA = {"pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2, "layer_norm_eps": 1e-5,
            "max_position_embeddings": 514, "type_vocab_size": 1}  # fmt: skip

# family -> (tokenizer, transformers class prefix, config): the configurations that exercise what each family does
# differently (RoBERTa's pad id 1 and eps 1e-5, ELECTRA's embeddings narrower than hidden, ...).
FAMILY_CHECKPOINTS: dict[str, tuple] = {
    "bert": (wordpiece_tokenizer, "Bert", _TINY),
    "distilbert": (wordpiece_tokenizer, "DistilBert", {"dim": 32, "n_layers": 2, "n_heads": 4, "hidden_dim": 64}),
    "roberta": (byte_bpe_tokenizer, "Roberta", {**_TINY, **_ROBERTA}),
    "xlm-roberta": (unigram_tokenizer, "XLMRoberta", {**_TINY, **_ROBERTA}),
    "electra": (wordpiece_tokenizer, "Electra", {**_TINY, "embedding_size": 16}),
    "deberta-v2": (
        functools.partial(unigram_tokenizer, "deberta"),
        "DebertaV2",
        {
            **_TINY,
            "relative_attention": True,
            "position_buckets": 8,
            "max_relative_positions": 16,
            "pos_att_type": ["p2c", "c2p"],
            "share_att_key": True,
            "norm_rel_ebd": "layer_norm",
            "position_biased_input": False,
            "type_vocab_size": 0,
        },  # fmt: skip
    ),
    "modernbert": (modernbert_tokenizer, "ModernBert", modernbert_config),
}


def build_checkpoint(family: str, task: str, out: Path, seed: int = 0) -> Path:
    """A tiny random `family` checkpoint for `task`, saved as a user's directory is."""
    import transformers

    make_tokenizer, prefix, config = FAMILY_CHECKPOINTS[family]
    tok = make_tokenizer()
    config = config(tok) if callable(config) else {"vocab_size": tok.get_vocab_size(), **config}
    classes = {
        "sentiment": getattr(transformers, f"{prefix}ForSequenceClassification"),
        "qa": getattr(transformers, f"{prefix}ForQuestionAnswering"),
    }
    config_class = getattr(transformers, f"{prefix}Config")
    model = task_model(config_class, classes, task, seed=seed, **config)
    if family == "modernbert":
        sharpen(model, seed)
    return save_checkpoint(model, tok, out)
