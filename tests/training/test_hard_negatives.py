"""Hard "no answer" examples (answer removed, name or number swapped) and the no-answer report over them.

The fixtures are made up here (two small invented articles), never copies of the shared data.
"""

from __future__ import annotations

import json
import random

import pytest

from service.engine.engine import EngineConfig, QAEngine
from service.engine.layout import ARTIFACT_FILE
from service.training import train
from service.training.data import SquadQuestion
from service.training.eval import evaluate_no_answer, no_answer_sets, no_answer_table, normalize_answer
from service.training.examples import (
    answer_removed_pairs,
    entities,
    remove_answer,
    sentence_spans,
    swapped_questions,
)

ARTICLES = {
    "Lune Valley": [
        (
            "The Lune Bridge was opened in 1932 by Mary Fell. It was designed by the county engineers. "
            "Its central span is 84 metres long. Traffic crosses it in two lanes.",
            [
                ("When was the Lune Bridge opened?", "1932"),
                ("Who opened the Lune Bridge in 1932?", "Mary Fell"),
                ("How long is the central span of the Lune Bridge?", "84 metres"),
            ],
        ),
        (
            "The Kent Viaduct was finished in 1857 for the Furness Railway. It has 50 arches of grey stone. "
            "Trains still cross it every hour.",
            [
                ("When was the Kent Viaduct finished?", "1857"),
                ("Which company was the Kent Viaduct built for?", "the Furness Railway"),
                ("How many arches does the Kent Viaduct have?", "50"),
            ],
        ),
        (
            "Salmon return to the river every autumn. They spawn in gravel beds near Sedbergh Town. "
            "Anglers need a permit from Thomas Ashworth. The season ends in October.",
            [
                ("Where do salmon spawn?", "gravel beds near Sedbergh Town"),
                ("Who gives permits to anglers?", "Thomas Ashworth"),
            ],
        ),
    ],
    "Moor Farms": [
        (
            "Hill Top Farm was bought by Alice Brennan in 1968. She kept 300 sheep there. "
            "The farm was sold to the National Trust in 1990. Its barns are now a museum.",
            [
                ("Who bought Hill Top Farm in 1968?", "Alice Brennan"),
                ("How many sheep did Alice Brennan keep?", "300"),
                ("Who was Hill Top Farm sold to?", "the National Trust"),
            ],
        ),
        (
            "Low Moss Farm grows oats and barley. Its owner, Peter Dacre, won the county prize in 1975. "
            "The farm has 12 fields. Its sheep graze on the fell in summer.",
            [
                ("What does Low Moss Farm grow?", "oats and barley"),
                ("When did Peter Dacre win the county prize?", "1975"),
            ],
        ),
    ],
}


def _questions(articles=ARTICLES) -> list[SquadQuestion]:
    questions = []
    for title, paragraphs in articles.items():
        for p, (context, qas) in enumerate(paragraphs):
            for i, (q, a) in enumerate(qas):
                questions.append(SquadQuestion(f"{title}-{p}-{i}", title, q, context, (a,), (context.index(a),)))
    return questions


def _many_questions(copies: int) -> list[SquadQuestion]:
    """The fixture's articles under `copies` titles each: enough questions to check drawn fractions."""
    return _questions({f"{title} {k}": paragraphs for k in range(copies) for title, paragraphs in ARTICLES.items()})


def test_sentences_split_at_ends_not_at_initials_or_abbreviations():
    text = 'Dwight D. Eisenhower joined the U.S. Army in 1911. He said "go." [citation needed] Then he left! Why? No.'
    assert [text[s:e] for s, e in sentence_spans(text)] == [
        "Dwight D. Eisenhower joined the U.S. Army in 1911.",
        'He said "go." [citation needed]',
        "Then he left!",
        "Why?",
        "No.",
    ]


def test_an_answer_removed_paragraph_never_holds_the_answer():
    questions = _questions()
    removed = answer_removed_pairs(questions, 1.0, random.Random(0))
    assert len(removed) >= len(questions) - 2
    own = {q.qid: q for q in questions}
    for r in removed:
        original = own[r.qid.removesuffix("-removed")]
        assert r.question == original.question and r.title == original.title and r.answers == ()
        assert normalize_answer(original.answers[0]) not in normalize_answer(r.context)
        kept = [r.context[s:e] for s, e in sentence_spans(r.context)]
        assert len(kept) >= 2 and all(sentence in original.context for sentence in kept)
        assert len(kept) < len(sentence_spans(original.context))  # the answer's sentence went


def test_an_answer_elsewhere_in_the_paragraph_or_too_little_left_gives_no_example():
    context = "The mill opened in 1850. It burned in 1850 too. The village grew."
    repeated = SquadQuestion("r", "t", "When did the mill open?", context, ("1850",), (context.index("1850"),))
    assert remove_answer(repeated) is None  # the other sentence still says 1850
    short = "The mill opened in 1850. The village grew."
    assert remove_answer(SquadQuestion("s", "t", "When?", short, ("1850",), (short.index("1850"),))) is None
    kept = remove_answer(SquadQuestion("s", "t", "When?", short, ("1850",), (short.index("1850"),)), min_sentences=1)
    assert kept is not None and kept.context == "The village grew."


def test_a_swapped_question_differs_by_one_entity_that_its_paragraph_lacks():
    questions = _questions()
    swapped = swapped_questions(questions, 1.0, random.Random(0))
    assert len(swapped) >= 8
    own = {q.qid: q for q in questions}
    for s in swapped:
        original = own[s.qid.removesuffix("-swapped")]
        assert s.context == original.context and s.answers == () and s.question != original.question
        shortest = min(len(s.question), len(original.question))
        head = 0
        while head < shortest and s.question[head] == original.question[head]:
            head += 1
        tail = 0
        while tail < shortest - head and s.question[-1 - tail] == original.question[-1 - tail]:
            tail += 1
        # The differing stretch is one whole entity of the original, replaced by one of the same kind.
        old = [e for e in entities(original.question) if e[0] <= head and len(original.question) - e[1] <= tail]
        assert len(old) == 1, (original.question, s.question)
        start, end, text, kind = old[0]
        replacement = s.question[start : len(s.question) - (len(original.question) - end)]
        assert text in original.context and replacement.lower() not in original.context.lower()
        assert original.question[:start] + replacement + original.question[end:] == s.question
        assert [e[3] for e in entities(replacement) if e[2] == replacement] == [kind]
        article = {q.context for q in questions if q.title == original.title}
        assert any(replacement in other for other in article - {original.context})


def test_swaps_leave_set_aside_entities_and_name_variants_alone():
    context = "Lune Bridge opened in 1932. Kent Bridge opened in 1935. North Korea is far away."
    other = "Korean Peninsula talks were held in 1950."
    questions = [
        SquadQuestion("a", "t", "Aside from 1932, when did a bridge open?", context, ("1935",), (45,)),
        SquadQuestion("b", "t", "Where is North Korea?", context, ("far away",), (context.index("far away"),)),
        SquadQuestion("c", "t", "When?", other, ("1950",), (other.index("1950"),)),
    ]
    assert swapped_questions(questions, 1.0, random.Random(0)) == []  # 1950 would fit "a", but it is set aside


@pytest.mark.parametrize("make", [answer_removed_pairs, swapped_questions])
def test_fractions_are_of_all_questions_and_draws_are_seeded(make):
    questions = _many_questions(20)
    possible = len(make(questions, 1.0, random.Random(0)))
    assert 0 < possible <= len(questions)
    assert make(questions, 0.0, random.Random(0)) == []
    for fraction in (0.1, 0.25):
        drawn = make(questions, fraction, random.Random(1))
        assert len(drawn) == min(possible, round(fraction * len(questions)))
        assert len({q.qid for q in drawn}) == len(drawn)
    assert make(questions, 0.25, random.Random(5)) == make(questions, 0.25, random.Random(5))
    assert make(questions, 0.25, random.Random(5)) != make(questions, 0.25, random.Random(6))


def test_the_trainer_counts_each_kind_in_the_recipe(tmp_path):
    data = {"version": "1.1", "data": []}
    for title, paragraphs in ARTICLES.items():
        article = {"title": title, "paragraphs": []}
        for p, (context, qas) in enumerate(paragraphs):
            rows = [{"id": f"{title}{p}{i}", "question": q, "answers": [{"text": a, "answer_start": context.index(a)}]}
                    for i, (q, a) in enumerate(qas)]  # fmt: skip
            article["paragraphs"].append({"context": context, "qas": rows})
        data["data"].append(article)
    path = tmp_path / "train-hard.json"
    path.write_text(json.dumps(data))
    out = tmp_path / "qa"
    train.main(["qa", "--data", str(path), "--out", str(out), "--run-dir", str(tmp_path / "run"), "--epochs", "1",
                "--held-out", "1", "--max-seq-len", "64", "--doc-stride", "16", "--unanswerable", "0.5",
                "--removed", "0.5", "--swapped", "0.5", "--threads", "2", "--precision", "fp32", "--batch-size", "8",
                "--seed", "3"])  # fmt: skip
    recipe = json.loads((out / ARTIFACT_FILE).read_text())["recipe"]
    assert recipe["questions"] == 8 and (recipe["removed_fraction"], recipe["swapped_fraction"]) == (0.5, 0.5)
    training = _questions({"Lune Valley": ARTICLES["Lune Valley"]})
    assert recipe["removed_questions"] == len(answer_removed_pairs(training, 0.5, random.Random(3 + 2))) == 4
    assert recipe["swapped_questions"] == len(swapped_questions(training, 0.5, random.Random(3 + 3))) == 4
    assert recipe["unanswerable_questions"] >= 1
    windows = sum(recipe[f"{kind}_windows"] for kind in ("unanswerable", "removed", "swapped"))
    assert recipe["train_examples"] == recipe["windows"] + windows


def test_the_no_answer_report_scores_each_kind_and_squad2_overall(null_leaning_qa_checkpoint):
    answerable = [q for q in _questions() if q.title == "Lune Valley"]
    kinds = no_answer_sets(answerable)
    assert set(kinds) == {"other_paragraph", "removed", "swapped"} and all(kinds.values())
    engine = QAEngine(null_leaning_qa_checkpoint, EngineConfig(precision="fp32", threads=2))
    scores = evaluate_no_answer(engine, answerable, kinds)  # a model that always says "no answer"
    n_unanswerable = sum(len(v) for v in kinds.values())
    assert scores["n_unanswerable"] == n_unanswerable and scores["n_removed"] == len(kinds["removed"])
    assert scores["removed_said_no_answer"] == scores["swapped_said_no_answer"] == 100
    assert scores["answerable_f1_on"] == 0
    assert scores["overall_f1_on"] == pytest.approx(100 * n_unanswerable / (n_unanswerable + len(answerable)))
    assert scores["overall_f1_off"] == pytest.approx(
        scores["answerable_f1_off"] * len(answerable) / (n_unanswerable + len(answerable))
    )
    table = no_answer_table(scores)
    assert "answer sentences removed" in table and "SQuAD 2.0" in table and len(table.splitlines()) == 8
