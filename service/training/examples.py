"""Training examples: tokenized texts and QA windows with their targets, and length-bucketed batches.

Ids are kept as small NumPy arrays (all of SQuAD as Python int lists would take about a gigabyte), and
batches are padded only to their own longest example: a QA window is ~160 tokens on average, not 384.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from service.engine.tokenize import TextTokenizer
from service.training.data import LabelledText, SquadQuestion
from service.training.eval import normalize_answer

NO_ANSWER = (0, 0)  # a window without the answer points at [CLS], as in the BERT and SQuAD 2.0 recipes


@dataclass(frozen=True)
class Example:
    ids: np.ndarray
    type_ids: np.ndarray | None
    target: tuple[int, ...]  # (label,) or (start_token, end_token)

    def __len__(self) -> int:
        return len(self.ids)


def sentiment_examples(tokenizer: TextTokenizer, rows: Sequence[LabelledText]) -> list[Example]:
    return [Example(np.asarray(tokenizer.encode_text(r.text).ids, np.int32), None, (r.label,)) for r in rows]


def span_target(context_offsets: list, start_char: int, end_char: int) -> tuple[int, int]:
    """The window's first and last token of the answer, or NO_ANSWER when the window does not hold all of it."""
    tokens = [(t, o) for t, o in enumerate(context_offsets) if o is not None]
    if not (tokens[0][1][0] <= start_char and end_char <= tokens[-1][1][1]):
        return NO_ANSWER
    starts = [t for t, o in tokens if o[0] <= start_char < o[1] or o[0] >= start_char]
    ends = [t for t, o in tokens if o[0] < end_char <= o[1] or o[1] <= end_char]
    if starts and ends and starts[0] <= ends[-1]:
        return starts[0], ends[-1]
    return NO_ANSWER


def qa_examples(
    tokenizer: TextTokenizer, questions: Sequence[SquadQuestion], max_seq_len: int, doc_stride: int
) -> list[Example]:
    """One example per window of each question's own paragraph (the first gold answer is the target)."""
    examples = []
    for q in questions:
        start_char = q.answer_starts[0]
        end_char = start_char + len(q.answers[0])
        for window in _windows(tokenizer, q, max_seq_len, doc_stride):
            examples.append(_window_example(window, span_target(window.context_offsets, start_char, end_char)))
    return examples


def _windows(tokenizer: TextTokenizer, q: SquadQuestion, max_seq_len: int, doc_stride: int):
    return tokenizer.encode_qa(q.question, q.context, max_seq_len, doc_stride, max_question_len=256).windows


def unanswerable_pairs(questions: Sequence[SquadQuestion], fraction: float, rng: random.Random) -> list[SquadQuestion]:
    """Questions put with another paragraph of the same article that does not contain any of their answers.

    Same topic, same vocabulary, no answer: honest unanswerable examples (SQuAD 2.0's are of this kind),
    from which the model learns the [CLS] "no answer" score that `handle_impossible_answer` compares.
    """
    by_title: dict[str, list[str]] = {}
    for q in questions:
        paragraphs = by_title.setdefault(q.title, [])
        if not paragraphs or paragraphs[-1] != q.context:
            paragraphs.append(q.context)
    pairs = []
    for q in questions:
        if rng.random() >= fraction:
            continue
        others = [p for p in by_title[q.title] if p != q.context]
        if not others:
            continue
        context = rng.choice(others)
        folded = normalize_answer(context)
        if any(normalize_answer(a) in folded for a in q.answers):
            continue
        pairs.append(SquadQuestion(f"{q.qid}-unanswerable", q.title, q.question, context, answers=(), answer_starts=()))
    return pairs


def unanswerable_examples(
    tokenizer: TextTokenizer, questions: Sequence[SquadQuestion], max_seq_len: int, doc_stride: int
) -> list[Example]:
    return [
        _window_example(window, NO_ANSWER)
        for q in questions
        for window in _windows(tokenizer, q, max_seq_len, doc_stride)
    ]


def _window_example(window, target: tuple[int, int]) -> Example:
    return Example(np.asarray(window.ids, np.int32), np.asarray(window.type_ids, np.int8), target)


def length_batches(examples: Sequence[Example], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffled batches of similar lengths (sorted within pools of 50 batches), so padding stays small."""
    order = list(range(len(examples)))
    rng.shuffle(order)
    pool = batch_size * 50
    batches = []
    for i in range(0, len(order), pool):
        chunk = sorted(order[i : i + pool], key=lambda j: len(examples[j]))
        batches += [chunk[k : k + batch_size] for k in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def collate(examples: Sequence[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad to the batch's own longest example."""
    width = max(len(e) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    types = torch.zeros_like(ids)
    mask = torch.zeros_like(ids)
    for row, e in enumerate(examples):
        ids[row, : len(e)] = torch.from_numpy(e.ids.astype(np.int64))
        mask[row, : len(e)] = 1
        if e.type_ids is not None:
            types[row, : len(e)] = torch.from_numpy(e.type_ids.astype(np.int64))
    targets = torch.tensor([e.target for e in examples])
    return {"ids": ids, "mask": mask, "types": types, "targets": targets}
