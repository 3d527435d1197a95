"""Readers for the training and evaluation sets (SST-2 TSV, SQuAD v1.1 JSON), given by path.

Nothing here downloads anything; the files come from the command line.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class LabelledText:
    text: str
    label: int


@dataclass(frozen=True)
class SquadQuestion:
    qid: str
    title: str
    question: str
    context: str
    answers: tuple[str, ...]
    answer_starts: tuple[int, ...]


def read_sst2(path: str | Path) -> list[LabelledText]:
    """GLUE's SST-2 TSV: header `sentence<TAB>label`, no quoting, split each line on its last tab."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    if not lines or lines[0].split("\t") != ["sentence", "label"]:
        raise ValueError(f"{path} does not start with the SST-2 header 'sentence<TAB>label'")
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        text, _, label = line.rpartition("\t")
        if label not in ("0", "1"):
            raise ValueError(f"{path}:{number}: label must be 0 or 1, got {label!r}")
        rows.append(LabelledText(text.strip(), int(label)))
    return rows


def read_squad(path: str | Path) -> list[SquadQuestion]:
    """SQuAD v1.1 JSON: every question with its context and all gold answers."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    questions = []
    for article in data["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                questions.append(
                    SquadQuestion(
                        qid=qa["id"],
                        title=article["title"],
                        question=qa["question"],
                        context=paragraph["context"],
                        answers=tuple(a["text"] for a in qa["answers"]),
                        answer_starts=tuple(a["answer_start"] for a in qa["answers"]),
                    )
                )
    return questions


def sha256_of(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
