"""The long-document questions: each answer is in its document, and the documents are many windows long."""

from __future__ import annotations

import random

from loadtests.reliability.longdocs import Answered, gazetteer_question, summary


def test_gazetteer_questions_are_long_and_answerable(tokenizer):
    rng = random.Random(7)
    windows = []
    for _ in range(10):
        q = gazetteer_question(rng, rng.randint(4, 8), rng.randint(12, 22))
        assert q.answer in q.context
        windows.append(len(tokenizer.encode_qa(q.question, q.context, 384, 128, 64, 200).windows))
    assert min(windows) >= 15 and max(windows) <= 64  # within the service's default max_windows


def test_the_summary_counts_refusals_and_answers_past_the_timeout():
    answered = [Answered(0, 200, 3.0, 30, True, None), Answered(1, 503, 0.01, None, None, "overloaded"),
                Answered(2, 200, 31.0, 50, False, None)]  # fmt: skip
    report = summary(answered, clients=3, timeout_s=30)
    assert report["statuses"] == {"200": 2, "503": 1} and report["error_codes"] == {"overloaded": 1}
    assert report["over_timeout"] == 1 and report["answer_found"] == 1 and report["windows_min_max"] == [30, 50]
