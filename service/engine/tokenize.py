"""Tokenization with character offsets, from the model's tokenizer.json. Imports no torch.

The ingress runs this before anything is queued (a bad input must not fail a whole batch), and the
model replicas receive plain lists of ids: small to send, and sized by tokens for batching.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from tokenizers import Encoding, Tokenizer

from service.engine.errors import ContextTooLongError, EmptyInputError, InvalidTextError, QuestionTooLongError

Offset = tuple[int, int]


@dataclass(frozen=True)
class TextInput:
    """One sentiment input: [CLS] text [SEP], with each token's (start, end) in the original text."""

    ids: list[int]
    offsets: list[Offset]  # (0, 0) for special tokens
    truncated: bool
    text_tokens: int  # tokens the whole text has, before any truncation

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class QAWindow:
    """One window of a (question, context) pair: [CLS] question [SEP] context-slice [SEP]."""

    ids: list[int]
    type_ids: list[int]
    context_offsets: list[Offset | None]  # char span in the context, None for question/special tokens
    question_offsets: list[Offset | None]  # char span in the question, None elsewhere
    context_word_offsets: list[Offset | None]  # char span of the whole word a context token is part of

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class QAInput:
    context: str
    windows: list[QAWindow]

    def __len__(self) -> int:
        return sum(len(w) for w in self.windows)


class TextTokenizer:
    """Wraps a fast `tokenizers` tokenizer; padding and truncation are ours, never the file's."""

    def __init__(self, tokenizer_file: str | Path, max_tokens: int = 512) -> None:
        self._tok = Tokenizer.from_file(str(tokenizer_file))
        self._tok.no_padding()
        self._tok.no_truncation()
        self.max_tokens = max_tokens
        self.cls_id = self._require_token("[CLS]")
        self.sep_id = self._require_token("[SEP]")
        self.pad_id = self._tok.token_to_id("[PAD]") or 0

    def _require_token(self, token: str) -> int:
        token_id = self._tok.token_to_id(token)
        if token_id is None:
            raise ValueError(f"tokenizer has no {token} token; only BERT-style vocabularies are supported")
        return token_id

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
        room = self.max_tokens - 2
        ids, offsets = encoding.ids[:room], encoding.offsets[:room]
        return TextInput(
            ids=[self.cls_id, *ids, self.sep_id],
            offsets=[(0, 0), *offsets, (0, 0)],
            truncated=len(encoding.ids) > room,
            text_tokens=len(encoding.ids),
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

        Each window holds the whole question and up to `max_seq_len - len(question) - 3` context
        tokens; consecutive windows share `doc_stride` context tokens, so an answer near a window's
        edge is whole in the next one.
        """
        q = self._content(question, "question")
        if len(q.ids) > max_question_len:
            raise QuestionTooLongError(
                f"question has {len(q.ids)} tokens; the limit is max_question_len={max_question_len}", "question"
            )
        c = self._content(context, "context")
        room = max_seq_len - len(q.ids) - 3
        if room < 1:
            raise QuestionTooLongError("question leaves no room for the context in max_seq_len tokens", "question")
        stride = min(doc_stride, room // 2) if room > 1 else 0  # overlap must leave progress per window
        step = room - stride
        n_windows = 1 if len(c.ids) <= room else 1 + math.ceil((len(c.ids) - room) / step)
        if n_windows > max_windows:
            raise ContextTooLongError(
                f"context needs {n_windows} windows of {max_seq_len} tokens; the limit is {max_windows}", "context"
            )
        word_offsets = _word_offsets(c)
        prefix_ids = [self.cls_id, *q.ids, self.sep_id]
        prefix_q_offsets: list[Offset | None] = [None, *q.offsets, None]
        windows = []
        for start in range(0, n_windows * step, step):
            end = min(start + room, len(c.ids))
            ids = [*prefix_ids, *c.ids[start:end], self.sep_id]
            windows.append(
                QAWindow(
                    ids=ids,
                    type_ids=[0] * len(prefix_ids) + [1] * (end - start + 1),
                    context_offsets=[None] * len(prefix_ids) + list(c.offsets[start:end]) + [None],
                    question_offsets=prefix_q_offsets + [None] * (end - start + 1),
                    context_word_offsets=[None] * len(prefix_ids) + word_offsets[start:end] + [None],
                )
            )
        return QAInput(context=context, windows=windows)


def _word_offsets(encoding: Encoding) -> list[Offset]:
    """Each token's whole-word character span, so answers never end inside a word ("##ing")."""
    spans: dict[int, Offset] = {}
    for word, (start, end) in zip(encoding.word_ids, encoding.offsets, strict=True):
        if word is not None:
            low, high = spans.get(word, (start, end))
            spans[word] = (min(low, start), max(high, end))
    return [
        spans[word] if word is not None else offset
        for word, offset in zip(encoding.word_ids, encoding.offsets, strict=True)
    ]
