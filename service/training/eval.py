"""Evaluate a task model: SST-2 accuracy, SQuAD v1.1 exact match and F1 (the official script's rules).

python -m service.training.eval sentiment --data ../shared/data/sst2/dev.tsv
python -m service.training.eval qa --data ../shared/data/squad/dev-v1.1.json [--precision fp32]
python -m service.training.eval no-answer --data ../shared/data/squad/train-v1.1.rebuilt.json --held-out 12

`no-answer` measures `handle_impossible_answer` on training articles held out from training (the dev set
is never used to tune it): each held-out question with its own paragraph, and as three kinds of unanswerable
question (made by the rules that make the training negatives): with another paragraph of its article that does
not contain the answer, with its own paragraph less the sentences that hold the answer, and with one of its names
or numbers swapped for another of the article that its paragraph lacks. It prints a table: the share of each
kind that gets the empty answer with the option on, F1 with the option off and on, and a SQuAD-2.0-style F1 over
all of them together (the empty answer is right, and the only right one, for an unanswerable question).
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import string
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from service.engine.engine import EngineConfig, QAEngine, SentimentEngine
from service.settings import default_model_dir
from service.training.data import LabelledText, SquadQuestion, read_squad, read_sst2, sha256_of

_NO_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """Lowercase, drop punctuation and the articles a/an/the, collapse whitespace (SQuAD v1.1 rules)."""
    text = text.lower().translate(_NO_PUNCTUATION)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1(prediction: str, gold: str) -> float:
    pred_tokens, gold_tokens = normalize_answer(prediction).split(), normalize_answer(gold).split()
    common = collections.Counter(pred_tokens) & collections.Counter(gold_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def squad_scores(predictions: Sequence[str], questions: Sequence[SquadQuestion]) -> dict[str, float]:
    """EM and F1 in percent, each the max over a question's gold answers, as the official script."""
    em = sum(max(exact_match(p, g) for g in q.answers) for p, q in zip(predictions, questions, strict=True))
    f = sum(max(f1(p, g) for g in q.answers) for p, q in zip(predictions, questions, strict=True))
    return {"exact_match": 100 * em / len(questions), "f1": 100 * f / len(questions)}


def evaluate_sentiment(engine: SentimentEngine, rows: Sequence[LabelledText], chunk: int = 256) -> dict[str, float]:
    labels = engine.info.labels
    correct = 0
    began = time.perf_counter()
    for i in range(0, len(rows), chunk):
        part = rows[i : i + chunk]
        for row, result in zip(part, engine.classify_texts([r.text for r in part]), strict=True):
            correct += labels.index(result.label) == row.label
    seconds = time.perf_counter() - began
    return {"accuracy": 100 * correct / len(rows), "examples_per_s": len(rows) / seconds, "n": len(rows)}


def predict_qa(
    engine: QAEngine, questions: Sequence[SquadQuestion], handle_impossible_answer: bool = False, chunk: int = 64
) -> list[str]:
    """The best answer's text per question ("" for the empty answer)."""
    predictions = []
    for i in range(0, len(questions), chunk):
        part = questions[i : i + chunk]
        items = [engine.encode(q.question, q.context, max_question_len=256) for q in part]
        flags = [handle_impossible_answer] * len(part)
        for result in engine.answer(items, handle_impossible_answer=flags).results:
            predictions.append(result.answers[0].text if result.answers else "")
    return predictions


def evaluate_qa(engine: QAEngine, questions: Sequence[SquadQuestion], chunk: int = 64) -> dict[str, float]:
    began = time.perf_counter()
    predictions = predict_qa(engine, questions, chunk=chunk)
    seconds = time.perf_counter() - began
    return {**squad_scores(predictions, questions), "examples_per_s": len(questions) / seconds, "n": len(questions)}


def evaluate_no_answer(
    engine: QAEngine,
    answerable: Sequence[SquadQuestion],
    unanswerable: Sequence[SquadQuestion] | Mapping[str, Sequence[SquadQuestion]],
) -> dict[str, float]:
    """How well the null score separates: answerable F1 with the option off and on, and how often each kind
    of question gets the empty answer with the option on.

    `unanswerable` is one list or several by kind; per kind K the result has `K_said_no_answer` and `n_K`, and
    `unanswerable_*` is over all of them. `overall_f1_on|off` is SQuAD 2.0's F1 over answerable and unanswerable
    together: an unanswerable question scores 1 for the empty answer, else 0. With the option off the engine
    always gives a span, so there every unanswerable question scores 0."""
    kinds = dict(unanswerable) if isinstance(unanswerable, Mapping) else {"unanswerable": unanswerable}
    off = squad_scores(predict_qa(engine, answerable), answerable)
    on_answerable = predict_qa(engine, answerable, handle_impossible_answer=True)
    on = squad_scores(on_answerable, answerable)
    scores = {
        "answerable_f1_off": off["f1"],
        "answerable_f1_on": on["f1"],
        "answerable_said_no_answer": 100 * sum(p == "" for p in on_answerable) / len(answerable),
        "n_answerable": len(answerable),
    }
    abstained = 0
    for kind, questions in kinds.items():
        said = sum(p == "" for p in predict_qa(engine, questions, handle_impossible_answer=True))
        abstained += said
        if kind != "unanswerable":
            scores[f"{kind}_said_no_answer"] = 100 * said / len(questions) if questions else 0.0
            scores[f"n_{kind}"] = len(questions)
    n_unanswerable = sum(len(q) for q in kinds.values())
    total = len(answerable) + n_unanswerable
    scores["unanswerable_said_no_answer"] = 100 * abstained / n_unanswerable if n_unanswerable else 0.0
    scores["n_unanswerable"] = n_unanswerable
    scores["overall_f1_off"] = off["f1"] * len(answerable) / total
    scores["overall_f1_on"] = (on["f1"] * len(answerable) + 100 * abstained) / total
    return scores


def held_out_articles(questions: Sequence[SquadQuestion], n: int) -> list[SquadQuestion]:
    """The last n articles of a training file: the slice `service.training.train` holds out by default."""
    titles = list(dict.fromkeys(q.title for q in questions))
    if n >= len(titles):
        raise ValueError(f"cannot hold out {n} of {len(titles)} articles: nothing would be left to train on")
    kept = set(titles[-n:]) if n > 0 else set()
    return [q for q in questions if q.title in kept]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task", choices=["sentiment", "qa", "no-answer"])
    parser.add_argument("--data", required=True, type=Path, help="SST-2 dev.tsv or SQuAD dev-v1.1.json")
    parser.add_argument("--model", type=Path, default=None, help="model directory (default: the shipped one)")
    parser.add_argument(
        "--precision", choices=["fp32", "bf16", "int8", "both", "all"], default="both", help="both: fp32 and bf16"
    )
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--held-out", type=int, default=12, help="no-answer: last N articles of a training file")
    parser.add_argument("--last-articles", type=int, default=None, help="qa: only the last N articles of --data")
    parser.add_argument("--limit", type=int, default=None, help="no-answer: only the first N held-out questions")
    args = parser.parse_args(argv)
    if args.task == "no-answer":
        return _no_answer_report(args)
    model_dir = args.model or default_model_dir(args.task)
    precisions = {"both": ["fp32", "bf16"], "all": ["fp32", "bf16", "int8"]}.get(args.precision, [args.precision])
    for precision in precisions:
        config = EngineConfig(precision=precision, threads=args.threads)
        if args.task == "sentiment":
            scores = evaluate_sentiment(SentimentEngine(model_dir, config), read_sst2(args.data))
            print(
                f"sentiment {precision}: accuracy {scores['accuracy']:.2f}% on {scores['n']} examples "
                f"({scores['examples_per_s']:.0f} examples/s) model={model_dir}"
            )
        else:
            questions = read_squad(args.data)
            if args.last_articles:  # a training file's held-out articles, to compare models off the dev set
                questions = held_out_articles(questions, args.last_articles)
            scores = evaluate_qa(QAEngine(model_dir, config), questions)
            print(
                f"qa {precision}: exact match {scores['exact_match']:.2f}  F1 {scores['f1']:.2f} on {scores['n']} "
                f"questions ({scores['examples_per_s']:.1f} questions/s) model={model_dir}"
            )


# The unanswerable kinds of the no-answer report: name, what it is (a table row), seed of its draw.
NO_ANSWER_KINDS = [
    ("other_paragraph", "another paragraph", 7),
    ("removed", "answer sentences removed", 8),
    ("swapped", "a name or number swapped", 9),
]


def no_answer_sets(answerable: Sequence[SquadQuestion]) -> dict[str, list[SquadQuestion]]:
    """Every unanswerable question of each kind that the held-out questions give (fraction 1), seeded."""
    # Imported here: the rules live with the training examples (the same rules make the training negatives).
    import random

    from service.training.examples import answer_removed_pairs, swapped_questions, unanswerable_pairs

    make = {"other_paragraph": unanswerable_pairs, "removed": answer_removed_pairs, "swapped": swapped_questions}
    return {kind: make[kind](answerable, 1.0, random.Random(seed)) for kind, _, seed in NO_ANSWER_KINDS}


def no_answer_table(scores: Mapping[str, float]) -> str:
    """The no-answer scores as a table: one row per kind of question, then all of them together."""
    rows = [("answerable (own paragraph)", scores["n_answerable"], scores["answerable_said_no_answer"],
             scores["answerable_f1_off"], scores["answerable_f1_on"])]  # fmt: skip
    for kind, label, _ in NO_ANSWER_KINDS:
        if f"n_{kind}" in scores:
            said = scores[f"{kind}_said_no_answer"]
            rows.append((f"unanswerable: {label}", scores[f"n_{kind}"], said, 0.0, said))
    rows.append(("all unanswerable", scores["n_unanswerable"], scores["unanswerable_said_no_answer"], 0.0,
                 scores["unanswerable_said_no_answer"]))  # fmt: skip
    rows.append(("all (SQuAD 2.0-style F1)", scores["n_answerable"] + scores["n_unanswerable"], None,
                 scores["overall_f1_off"], scores["overall_f1_on"]))  # fmt: skip
    width = max(len(r[0]) for r in rows)
    lines = [f"{'questions':<{width}}  {'n':>6}  {'empty answer (on)':>17}  {'F1 off':>7}  {'F1 on':>7}"]
    lines.append("-" * len(lines[0]))
    for label, n, said, f1_off, f1_on in rows:
        said_text = f"{said:.1f} %" if said is not None else ""
        lines.append(f"{label:<{width}}  {n:>6,}  {said_text:>17}  {f1_off:>7.2f}  {f1_on:>7.2f}")
    return "\n".join(lines)


def _no_answer_report(args: argparse.Namespace) -> None:
    model_dir = args.model or default_model_dir("qa")
    questions = read_squad(args.data)
    titles = set(held_out_titles_of(model_dir, args.data, args.held_out))
    answerable = [q for q in questions if q.title in titles][: args.limit]
    unanswerable = no_answer_sets(answerable)
    if not answerable or not any(unanswerable.values()):
        sys.exit("the held-out articles give no answerable or no unanswerable questions to measure on")
    precision = "fp32" if args.precision in ("both", "all") else args.precision
    engine = QAEngine(model_dir, EngineConfig(precision=precision, threads=args.threads))
    began = time.perf_counter()
    scores = evaluate_no_answer(engine, answerable, unanswerable)
    print(
        f"no-answer {precision}, model {model_dir}, on {len({q.title for q in answerable})} held-out articles of "
        f'{args.data.name} ({time.perf_counter() - began:.0f} s); "empty answer" and F1 on = with '
        "handle_impossible_answer"
    )
    print(no_answer_table(scores))


def held_out_titles_of(model_dir: Path, data: Path, n: int) -> list[str]:
    """The articles the model was not trained on: from its artifact, which must come from this very file."""
    meta_file = model_dir / "attention_serve.json"
    if not meta_file.exists():
        sys.exit(f"{model_dir} is not an attention-serve artifact: which articles it was trained on is unknown")
    meta = json.loads(meta_file.read_text())
    if meta.get("data", {}).get("sha256") != sha256_of(data):
        sys.exit(f"{model_dir} was trained on another file than {data}: its held-out articles are unknown here")
    recipe = meta.get("recipe", {})
    if "held_out_titles" in recipe:
        return list(recipe["held_out_titles"])
    if f"the last {n} articles" not in str(recipe.get("held_out", "")):
        sys.exit(f"{model_dir} held out {recipe.get('held_out')!r}, not the last {n} articles: pass --held-out")
    titles = list(dict.fromkeys(q.title for q in held_out_articles(read_squad(data), n)))
    return titles


if __name__ == "__main__":
    main()
