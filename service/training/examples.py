"""Training examples: tokenized texts and QA windows with their targets, and length-bucketed batches.

Ids are kept as small NumPy arrays (all of SQuAD as Python int lists would take about a gigabyte), and
batches are padded only to their own longest example: a QA window is ~160 tokens on average, not 384.
"""

from __future__ import annotations

import functools
import random
import re
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


# Sentence ends: . ! ? (then closing quotes, brackets or "[citation needed]"-style notes), space, a capital or digit.
_SENTENCE_END = re.compile(
    r"""[.!?]+(?:["'\u201d\u2019)\]]|\s?\[[^\]\n]{0,40}\])*\s+(?=["'\u201c\u2018(\[]?[A-Z0-9])"""
)
# Words before a period that do not end a sentence: initials and common abbreviations.
_ABBREVIATION = re.compile(
    r"(?:\b[A-Z]|\b(?:Mr|Mrs|Ms|Dr|St|Jr|Sr|Prof|Gen|Col|Lt|Capt|Gov|Sen|Rev|Mt|Ft|No|Nos|vs|etc|approx|ca|c|e\.g|i\.e"
    r"|U\.S|U\.K|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec|Inc|Ltd|Co|Corp|Bros))$"
)


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence, trailing space excluded: a regex split that keeps initials and common
    abbreviations ("Dwight D. Eisenhower", "U.S. Army") inside their sentence. Good enough to delete the sentences
    that hold an answer; not a linguistic sentence splitter."""
    spans, start = [], 0
    for match in _SENTENCE_END.finditer(text):
        if (
            _ABBREVIATION.search(text, 0, match.start())
            and text[match.start()] == "."
            and match.group().count(".") == 1
        ):
            continue
        end = match.end() - (len(match.group()) - len(match.group().rstrip()))
        if text[start:end].strip():
            spans.append((start, end))
        start = match.end()
    if text[start:].strip():
        spans.append((start, len(text.rstrip())))
    return spans


def _contains_answer(context: str, answers: Sequence[str]) -> bool:
    """Whether any gold answer, normalized, is inside the normalized context (an empty one always counts)."""
    folded = normalize_answer(context)
    return any(not normalize_answer(a) or normalize_answer(a) in folded for a in answers)


def remove_answer(q: SquadQuestion, min_sentences: int = 2) -> SquadQuestion | None:
    """The question with its own paragraph less every sentence that overlaps a gold answer's span, or None.

    This is the hardest honest "no answer" case short of rewriting text: same paragraph, same topic and words
    around the gap, so the model cannot abstain by noticing the paragraph is about something else (all that
    `unanswerable_pairs` teaches); it must notice that the fact asked for is gone. None when any normalized gold
    answer still occurs in what is left (the answer repeated elsewhere, or a sentence split gone wrong) or fewer
    than `min_sentences` sentences are left (too little context to be a paragraph).
    """
    spans = [(a_start, a_start + len(a)) for a, a_start in zip(q.answers, q.answer_starts, strict=True)]
    kept = [
        (s, e) for s, e in sentence_spans(q.context) if not any(s < a_end and a_start < e for a_start, a_end in spans)
    ]
    if len(kept) < min_sentences:
        return None
    context = " ".join(q.context[s:e] for s, e in kept)
    if _contains_answer(context, q.answers):
        return None
    return SquadQuestion(f"{q.qid}-removed", q.title, q.question, context, answers=(), answer_starts=())


def answer_removed_pairs(
    questions: Sequence[SquadQuestion], fraction: float, rng: random.Random, min_sentences: int = 2
) -> list[SquadQuestion]:
    """`remove_answer` for round(fraction x len(questions)) questions, drawn from those where it applies (all of
    them when fewer apply), in their order. The fraction is of all questions, as for the other kinds."""
    made = [r for q in questions if (r := remove_answer(q, min_sentences)) is not None]
    return _draw(made, fraction, len(questions), rng)


def _draw(items: list, fraction: float, n_questions: int, rng: random.Random) -> list:
    k = min(len(items), round(fraction * n_questions))
    return [items[i] for i in sorted(rng.sample(range(len(items)), k))]


# Capitalised words: a name's parts (Lune, O'Neill, Saint-Denis) or an initial ("D.").
_CAP = r"(?:[A-Z][\w'\u2019\-]*[a-zA-Z]|[A-Z]\.)"
_NAME = re.compile(rf"(?<![\w.'\u2019-]){_CAP}(?:\s+(?:(?:of|de|la|le|du|da|del|der|von|van|the)\s+)*{_CAP})+")
_NUMBER = re.compile(r"(?<![\w.,])(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?![\w]|[.,]\d)")
# Capitalised words that start questions and sentences rather than names; trimmed from a name's ends.
_NOT_NAME = frozenset(
    "What Which Who Whom Whose When Where Why How In On At The A An Of For To From By With Without During After "
    "Before Since Until Is Are Was Were Did Do Does Has Have Had Can Could Would Should Will May Might Must "
    "According Along Besides Other Than And But Or As If That This These Those It Its Their His Her Hers There "
    "Name Give List About Approximately Around Roughly Besides Aside Apart Under Over Between Among Into Upon "
    "Not No Yes Also Then Some Many Most Much Each Every Both All Any While Although Though However Because Despite "
    "Today Later Earlier Following Unlike Like Once Thus Furthermore Moreover Meanwhile Nevertheless Instead Several "
    "Such Within Throughout Against Through Toward Towards Beyond Near Neither Either Whereas Whether Whatever "
    "Currently Recently Eventually Finally First Second Third Last Next Another".split()
)
_CONNECTORS = frozenset("of de la le du da del der von van the".split())
_TRIMMED = _NOT_NAME | _CONNECTORS


def entities(text: str) -> list[tuple[int, int, str, str]]:
    """(start, end, text, kind) of the names and numbers in a text. Kinds: "name" (two or more capitalised words,
    leading and trailing question words and articles trimmed), "year" (1000-2099) and "number" (any other)."""
    found = []
    for match in _NAME.finditer(text):
        words = [(m.start() + match.start(), m.end() + match.start()) for m in re.finditer(r"\S+", match.group())]
        while words and text[words[0][0] : words[0][1]] in _TRIMMED:
            words.pop(0)
        while words and text[words[-1][0] : words[-1][1]] in _TRIMMED:
            words.pop()
        capitalised = [w for w in words if text[w[0]].isupper()]
        if len(capitalised) >= 2:
            start, end = words[0][0], words[-1][1]
            found.append((start, end, text[start:end], "name"))
    for match in _NUMBER.finditer(text):
        kind = "year" if re.fullmatch(r"1\d{3}|20\d{2}", match.group()) else "number"
        found.append((match.start(), match.end(), match.group(), kind))
    return sorted(found)


def _occurs(entity: str, kind: str, context: str, folded: str | None = None) -> bool:
    """Whether a name (any case) or a number (as a whole number: 1932 is not in 11932) is in a text."""
    if kind == "name":
        return entity.lower() in (folded if folded is not None else context.lower())
    return entity in context and re.search(rf"(?<![\d.,]){re.escape(entity)}(?![\d]|[.,]\d)", context) is not None


@functools.lru_cache(maxsize=1 << 16)
def _stems(name: str) -> frozenset[str]:
    """A name's words cut to five letters, so that "Korea" and "Korean Peninsula" count as sharing one."""
    return frozenset(w.lower().strip(".")[:5] for w in name.split() if w not in _CONNECTORS)


# A name or number right after these is one the question sets aside ("Aside from 2009, in what year ..."):
# replacing it leaves the question answerable.
_SET_ASIDE = re.compile(
    r"\b(?:aside from|apart from|besides|other than|except(?: for)?|not|excluding)\W*$", re.IGNORECASE
)


def _replacements(entity: tuple[int, int, str, str], q: SquadQuestion, pool: dict[str, list[str]]):
    """The names or numbers that may stand in for one of the question's (lazily: most questions need one)."""
    _, _, text, kind = entity
    stems, folded = _stems(text) if kind == "name" else frozenset(), q.question.lower()
    for r in pool.get(kind, []):
        if r == text or _occurs(r, kind, q.question, folded):
            continue
        if kind == "name" and not stems.isdisjoint(_stems(r)):  # "Dwight D. Eisenhower" is not another man
            continue
        yield r


def _swappable(q: SquadQuestion) -> list[tuple[int, int, str, str]]:
    """The question's names and numbers that its paragraph holds too (what ties the two), not set aside."""
    return [
        e for e in entities(q.question) if _occurs(e[2], e[3], q.context) and not _SET_ASIDE.search(q.question[: e[0]])
    ]


def _replacement_pools(questions: Sequence[SquadQuestion]) -> dict[tuple[str, str], dict[str, list[str]]]:
    """Per (title, paragraph): the names and numbers of the article's other paragraphs that it does not hold."""
    paragraphs: dict[str, dict[str, list[tuple[str, str]]]] = {}
    for q in questions:
        found = paragraphs.setdefault(q.title, {})
        if q.context not in found:
            found[q.context] = [(text, kind) for _, _, text, kind in entities(q.context)]
    pools = {}
    for title, found in paragraphs.items():
        every = list(dict.fromkeys(item for items in found.values() for item in items))  # in order: reproducible
        for context, own in found.items():
            folded, own = context.lower(), set(own)
            pool: dict[str, list[str]] = {}
            for text, kind in every:
                if (text, kind) not in own and not _occurs(text, kind, context, folded):
                    pool.setdefault(kind, []).append(text)
            pools[(title, context)] = pool
    return pools


def swapped_questions(questions: Sequence[SquadQuestion], fraction: float, rng: random.Random) -> list[SquadQuestion]:
    """Questions with one name or number replaced by another of its kind, asked of their own paragraph: no answer.

    A model that only matches the question's words against the paragraph answers "When did the Lune Bridge open?"
    and "When did the Severn Crossing open?" alike. Here the swapped name or number is one both the question and
    its paragraph hold (so it is what ties them), and the replacement comes from another paragraph of the same
    article (so it is plausible and on topic) and does not occur in this paragraph. A name shares no word (cut to
    five letters) with the one it replaces, so "North Korea" never becomes "Korean Peninsula", nor "Dwight D.
    Eisenhower" "President Eisenhower". Kinds are coarse (a person may become a place), and now and then a swap
    leaves a question answerable; both are noise that the fraction keeps small. Drawn as `answer_removed_pairs`
    is: round(fraction x len(questions)) of the questions where a swap is possible; the entity and its
    replacement are drawn from `rng` too.
    """
    pools = _replacement_pools(questions)
    possible = []
    for q in questions:
        pool = pools[(q.title, q.context)]
        options = [e for e in _swappable(q) if next(_replacements(e, q, pool), None) is not None]
        if options:
            possible.append((q, options))
    swapped = []
    for q, options in _draw(possible, fraction, len(questions), rng):
        entity = options[rng.randrange(len(options))]
        replacement = rng.choice(list(_replacements(entity, q, pools[(q.title, q.context)])))
        question = q.question[: entity[0]] + replacement + q.question[entity[1] :]
        swapped.append(SquadQuestion(f"{q.qid}-swapped", q.title, question, q.context, answers=(), answer_starts=()))
    return swapped


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
