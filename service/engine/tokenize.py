"""Tokenization with character offsets, from the model's tokenizer.json. Imports no torch.

The ingress runs this before anything is queued (a bad input must not fail a whole batch), and the
model replicas receive plain lists of ids: small to send, and sized by tokens for batching.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from tokenizers import Encoding, Tokenizer, models, normalizers, pre_tokenizers, processors

from service.engine.errors import ContextTooLongError, EmptyInputError, InvalidTextError, QuestionTooLongError

Offset = tuple[int, int]


@dataclass(frozen=True)
class TextInput:
    """One sentiment input: the model's special tokens around the text ([CLS] text [SEP] for BERT, <s> text </s>
    for RoBERTa), with each token's (start, end) in the original text."""

    ids: list[int]
    offsets: list[Offset]  # (0, 0) for special tokens
    truncated: bool
    text_tokens: int  # tokens the whole text has, before any truncation
    prefix: int = 1  # special tokens before the text
    suffix: int = 1  # special tokens after it

    @property
    def text_offsets(self) -> list[Offset]:
        """The offsets of the text's own tokens."""
        return self.offsets[self.prefix : len(self.offsets) - self.suffix]

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class QAWindow:
    """One window of a (question, context) pair: [CLS] question [SEP] context-slice [SEP] for BERT (the model's own
    special tokens: <s> question </s></s> context-slice </s> for RoBERTa)."""

    ids: list[int]
    type_ids: list[int]
    context_offsets: list[Offset | None]  # char span in the context, None for question/special tokens
    question_offsets: list[Offset | None]  # char span in the question, None elsewhere
    # char span of the word a context token is part of, as far as the window holds that word (a word cut by the
    # window's edge ends there, as the Hugging Face pipeline's per-window word_to_chars has it)
    context_word_offsets: list[Offset | None]

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class QAInput:
    context: str
    windows: list[QAWindow]

    def __len__(self) -> int:
        return sum(len(w) for w in self.windows)


@dataclass(frozen=True)
class Template:
    """Where a model's special tokens go, read from its tokenizer's post-processor: before a text (`prefix`) and
    after it (`suffix`); for a pair, also between the two (`middle`), with the token type of each part."""

    prefix: tuple[int, ...]
    suffix: tuple[int, ...]
    pair_prefix: tuple[int, ...]
    middle: tuple[int, ...]
    pair_suffix: tuple[int, ...]
    first_type: int = 0  # token type of the prefix, the question and the middle
    second_type: int = 0  # token type of the context and the pair suffix (1 for BERT, 0 for RoBERTa)


# Tokenizers whose file has no post-processor: the special tokens their family uses, by token text.
_FALLBACK_SPECIALS = (("[CLS]", "[SEP]"), ("<s>", "</s>"))


def _template(tok: Tokenizer) -> Template:
    if tok.post_processor is not None:
        single = tok.encode("a", add_special_tokens=True)
        pair = tok.encode("a", "b", add_special_tokens=True)
        if None in single.sequence_ids:  # the post-processor adds special tokens
            seq = single.sequence_ids
            first, last = seq.index(0), len(seq) - 1 - seq[::-1].index(0)
            a_first = pair.sequence_ids.index(0)
            a_last = len(pair.sequence_ids) - 1 - pair.sequence_ids[::-1].index(0)
            b_first = pair.sequence_ids.index(1)
            b_last = len(pair.sequence_ids) - 1 - pair.sequence_ids[::-1].index(1)
            return Template(
                prefix=tuple(single.ids[:first]),
                suffix=tuple(single.ids[last + 1 :]),
                pair_prefix=tuple(pair.ids[:a_first]),
                middle=tuple(pair.ids[a_last + 1 : b_first]),
                pair_suffix=tuple(pair.ids[b_last + 1 :]),
                first_type=pair.type_ids[a_first],
                second_type=pair.type_ids[b_first],
            )
    for cls, sep in _FALLBACK_SPECIALS:
        cls_id, sep_id = tok.token_to_id(cls), tok.token_to_id(sep)
        if cls_id is not None and sep_id is not None:
            middle = (sep_id,) if cls == "[CLS]" else (sep_id, sep_id)
            return Template((cls_id,), (sep_id,), (cls_id,), middle, (sep_id,), 0, 1 if cls == "[CLS]" else 0)
    raise ValueError(
        "the tokenizer adds no special tokens and has neither [CLS]/[SEP] nor <s>/</s>: "
        "give a tokenizer.json with a post-processor (as transformers saves it)"
    )


_PAD_TOKENS = ("[PAD]", "<pad>")


def load_tokenizer(path: Path) -> Tokenizer:
    """A tokenizer.json as it is, or a bare WordPiece vocab.txt built into BERT's tokenizer (lowercasing and accent
    stripping as its tokenizer_config.json says, as transformers' BertTokenizerFast does)."""
    if path.name != "vocab.txt":
        return Tokenizer.from_file(str(path))
    settings_file = path.parent / "tokenizer_config.json"
    settings = json.loads(settings_file.read_text()) if settings_file.exists() else {}
    tok = Tokenizer(models.WordPiece.from_file(str(path), unk_token=settings.get("unk_token", "[UNK]")))
    tok.normalizer = normalizers.BertNormalizer(
        clean_text=True,
        handle_chinese_chars=settings.get("tokenize_chinese_chars", True),
        strip_accents=settings.get("strip_accents"),
        lowercase=settings.get("do_lower_case", True),
    )
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    if cls_id is not None and sep_id is not None:
        tok.post_processor = processors.BertProcessing(("[SEP]", sep_id), ("[CLS]", cls_id))
    return tok


class TextTokenizer:
    """Wraps a fast `tokenizers` tokenizer; padding and truncation are ours, never the file's. Special tokens are
    the model's own (its post-processor's), so BERT, RoBERTa, DeBERTa or ModernBERT inputs come out as transformers
    builds them."""

    def __init__(self, tokenizer: str | Path | Tokenizer, max_tokens: int = 512, pad_id: int | None = None) -> None:
        self._tok = tokenizer if isinstance(tokenizer, Tokenizer) else load_tokenizer(Path(tokenizer))
        self._tok.no_padding()
        self._tok.no_truncation()
        self.max_tokens = max_tokens
        self.template = _template(self._tok)
        self.cls_id = self.template.prefix[0] if self.template.prefix else self.template.pair_prefix[0]
        self.sep_id = self.template.suffix[-1] if self.template.suffix else self.template.pair_suffix[-1]
        found = [self._tok.token_to_id(t) for t in _PAD_TOKENS]
        self.pad_id = pad_id if pad_id is not None else next((i for i in found if i is not None), 0)

    def id_to_token(self, token_id: int) -> str:
        return self._tok.id_to_token(token_id) or "[UNK]"

    def _content(self, text: str, field: str) -> Encoding:
        try:
            text.encode("utf-8")  # a str may hold lone surrogates (JSON "\ud800"); the tokenizer would crash on them
        except UnicodeEncodeError as exc:
            raise InvalidTextError(
                f"{field} is not valid Unicode: unpaired surrogate at character {exc.start}", field
            ) from None
        encoding = self._tok.encode(text, add_special_tokens=False)
        if not encoding.ids:
            raise EmptyInputError(f"{field} has no content once whitespace and control characters are removed", field)
        return encoding

    def encode_text(self, text: str, field: str = "text") -> TextInput:
        """Tokenize for classification; text past max_tokens is truncated and flagged, not refused."""
        encoding = self._content(text, field)
        prefix, suffix = self.template.prefix, self.template.suffix
        room = self.max_tokens - len(prefix) - len(suffix)
        ids, offsets = encoding.ids[:room], encoding.offsets[:room]
        return TextInput(
            ids=[*prefix, *ids, *suffix],
            offsets=[(0, 0)] * len(prefix) + list(offsets) + [(0, 0)] * len(suffix),
            truncated=len(encoding.ids) > room,
            text_tokens=len(encoding.ids),
            prefix=len(prefix),
            suffix=len(suffix),
        )

    def encode_qa(
        self,
        question: str,
        context: str,
        max_seq_len: int = 384,
        doc_stride: int = 128,
        max_question_len: int = 64,
        max_windows: int = 64,
    ) -> QAInput:
        """Split the context into overlapping windows, as the Hugging Face QA pipeline does.

        Each window holds the whole question and up to `max_seq_len - len(question) - specials` context tokens
        (3 special tokens for BERT, 4 for RoBERTa); consecutive windows share `doc_stride` context tokens, so an
        answer near a window's edge is whole in the next one.
        """
        q = self._content(question, "question")
        if len(q.ids) > max_question_len:
            raise QuestionTooLongError(
                f"question has {len(q.ids)} tokens; the limit is max_question_len={max_question_len}", "question"
            )
        c = self._content(context, "context")
        t = self.template
        room = max_seq_len - len(q.ids) - len(t.pair_prefix) - len(t.middle) - len(t.pair_suffix)
        if room < 1:
            raise QuestionTooLongError("question leaves no room for the context in max_seq_len tokens", "question")
        stride = min(doc_stride, room // 2) if room > 1 else 0  # overlap must leave progress per window
        step = room - stride
        n_windows = 1 if len(c.ids) <= room else 1 + math.ceil((len(c.ids) - room) / step)
        if n_windows > max_windows:
            raise ContextTooLongError(
                f"context needs {n_windows} windows of {max_seq_len} tokens; the limit is {max_windows}", "context"
            )
        prefix_ids = [*t.pair_prefix, *q.ids, *t.middle]
        prefix_q_offsets: list[Offset | None] = [None] * len(t.pair_prefix) + list(q.offsets) + [None] * len(t.middle)
        no_offsets: list[Offset | None] = [None] * len(t.pair_suffix)
        windows = []
        for start in range(0, n_windows * step, step):
            end = min(start + room, len(c.ids))
            ids = [*prefix_ids, *c.ids[start:end], *t.pair_suffix]
            windows.append(
                QAWindow(
                    ids=ids,
                    type_ids=[t.first_type] * len(prefix_ids) + [t.second_type] * (len(ids) - len(prefix_ids)),
                    context_offsets=[None] * len(prefix_ids) + list(c.offsets[start:end]) + no_offsets,
                    question_offsets=prefix_q_offsets + [None] * (len(ids) - len(prefix_ids)),
                    context_word_offsets=[None] * len(prefix_ids) + _word_offsets(c, start, end) + no_offsets,
                )
            )
        return QAInput(context=context, windows=windows)


def _word_offsets(encoding: Encoding, start: int, end: int) -> list[Offset]:
    """Each token's whole-word character span among tokens[start:end], so answers never end inside a word
    ("##ing"), and a word the window cuts is only the part the window holds."""
    word_ids, offsets = encoding.word_ids[start:end], encoding.offsets[start:end]
    spans: dict[int, Offset] = {}
    for word, (low, high) in zip(word_ids, offsets, strict=True):
        if word is not None:
            first, last = spans.get(word, (low, high))
            spans[word] = (min(first, low), max(last, high))
    return [spans[word] if word is not None else offset for word, offset in zip(word_ids, offsets, strict=True)]
