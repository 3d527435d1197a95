"""Requests whose answers show which request they belong to: sentiment texts whose token counts are known, and QA
contexts whose window counts are known.

Used by the reliability runs' traffic (reliability/pressure.py) and by the engine's batch-size sweep
(benchmark/bench_engine.py). Each kind of traffic says where it goes (`path`), what request i sends (`body`) and
whether an answer is request i's own (`correct`).
"""

from __future__ import annotations

from loadtests.locust.corpus import FILLER_PARAGRAPHS, TOWN_PARAGRAPHS, TOWN_QUESTIONS, TOWNS
from service.engine.layout import tokenizer_file
from service.engine.tokenize import TextTokenizer
from service.settings import default_model_dir

WORDS = ["a", "gorgeous", "dull", "moving", "film", "with", "clumsy", "acting", "and", "sharp", "writing"]


class Texts:
    """Request i gets a text of 3 + i % 120 words and its expected token count (from the shipped tokenizer)."""

    def __init__(self, max_tokens: int = 512) -> None:
        self.tokenizer = TextTokenizer(tokenizer_file(default_model_dir("sentiment")), max_tokens=max_tokens)

    def text(self, i: int) -> str:
        words = (WORDS[(i + j) % len(WORDS)] for j in range(3 + i % 120))
        return f"{i} " + " ".join(words)

    def expected_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode_text(text).ids)

    path = "/v1/sentiment"

    def body(self, i: int) -> dict:
        return {"text": self.text(i)}

    def correct(self, i: int, result: dict) -> bool:
        return result["tokens"] == self.expected_tokens(self.text(i)) and result["label"] in result["probabilities"]


class Contexts:
    """QA traffic, long and short contexts mixed: request i asks about one town of a report numbered i; every
    `long_every`-th report is a long one (several towns, filler paragraphs: 10-30 windows of 384 tokens), the
    others are one town's paragraph (1 window). An answer is request i's own when it read as many windows as
    request i's context makes and each answer's text is its context's text at the answer's offsets."""

    path = "/v1/qa"

    def __init__(self, long_every: int = 5) -> None:
        self.tokenizer = TextTokenizer(tokenizer_file(default_model_dir("qa")), max_tokens=384)
        self.long_every = long_every
        self._windows: dict[int, int] = {}

    def pair(self, i: int) -> tuple[str, str]:
        town = TOWNS[i % len(TOWNS)]
        question = TOWN_QUESTIONS[i % len(TOWN_QUESTIONS)][0].format(**town)
        if i % self.long_every == 0:  # a long report: this town among others, each with fillers
            fillers = [FILLER_PARAGRAPHS[(i + k) % len(FILLER_PARAGRAPHS)] for k in range(6 + i % 9)]
            paragraphs = []
            for each in [town, *(TOWNS[(i + k) % len(TOWNS)] for k in range(1, 2 + i % 3))]:
                paragraphs += [p.format(**each) for p in [*TOWN_PARAGRAPHS, *fillers]]
        else:
            paragraphs = [p.format(**town) for p in TOWN_PARAGRAPHS[: 1 + i % 2]]
        return question, f"Report {i}.\n\n" + "\n\n".join(paragraphs)

    def body(self, i: int) -> dict:
        question, context = self.pair(i)
        return {"question": question, "context": context}

    def expected_windows(self, i: int) -> int:
        if i not in self._windows:
            self._windows[i] = len(self.tokenizer.encode_qa(*self.pair(i)).windows)
        return self._windows[i]

    def correct(self, i: int, result: dict) -> bool:
        context = self.pair(i)[1]
        return result["windows"] == self.expected_windows(i) and all(
            a["text"] == context[a["start"] : a["end"]] for a in result["answers"]
        )
