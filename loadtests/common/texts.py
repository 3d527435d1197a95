"""Sentiment texts whose token counts are known, so an answer shows which request it belongs to.

Used by the reliability runs' traffic (reliability/pressure.py) and by the engine's batch-size sweep
(benchmark/bench_engine.py).
"""

from __future__ import annotations

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
