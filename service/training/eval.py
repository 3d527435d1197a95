"""Evaluate a task model: SST-2 accuracy, SQuAD v1.1 exact match and F1 (the official script's rules).

python -m service.training.eval sentiment --data ../shared/data/sst2/dev.tsv
python -m service.training.eval qa --data ../shared/data/squad/dev-v1.1.json [--precision fp32]
"""

from __future__ import annotations

import argparse
import collections
import re
import string
import time
from collections.abc import Sequence
from pathlib import Path

from service.engine.engine import EngineConfig, QAEngine, SentimentEngine
from service.settings import default_model_dir
from service.training.data import LabelledText, SquadQuestion, read_squad, read_sst2


def normalize_answer(text: str) -> str:
    """Lowercase, drop punctuation and the articles a/an/the, collapse whitespace (SQuAD v1.1 rules)."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
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


def evaluate_qa(engine: QAEngine, questions: Sequence[SquadQuestion], chunk: int = 64) -> dict[str, float]:
    predictions = []
    began = time.perf_counter()
    for i in range(0, len(questions), chunk):
        part = questions[i : i + chunk]
        items = [engine.encode(q.question, q.context, max_question_len=256) for q in part]
        for result in engine.answer(items).results:
            predictions.append(result.answers[0].text if result.answers else "")
    seconds = time.perf_counter() - began
    return {**squad_scores(predictions, questions), "examples_per_s": len(questions) / seconds, "n": len(questions)}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task", choices=["sentiment", "qa"])
    parser.add_argument("--data", required=True, type=Path, help="SST-2 dev.tsv or SQuAD dev-v1.1.json")
    parser.add_argument("--model", type=Path, default=None, help="model directory (default: the shipped one)")
    parser.add_argument("--precision", choices=["fp32", "bf16", "both"], default="both")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    model_dir = args.model or default_model_dir(args.task)
    precisions = ["fp32", "bf16"] if args.precision == "both" else [args.precision]
    for precision in precisions:
        config = EngineConfig(precision=precision, threads=args.threads)
        if args.task == "sentiment":
            scores = evaluate_sentiment(SentimentEngine(model_dir, config), read_sst2(args.data))
            print(
                f"sentiment {precision}: accuracy {scores['accuracy']:.2f}% on {scores['n']} examples "
                f"({scores['examples_per_s']:.0f} examples/s) model={model_dir}"
            )
        else:
            scores = evaluate_qa(QAEngine(model_dir, config), read_squad(args.data))
            print(
                f"qa {precision}: exact match {scores['exact_match']:.2f}  F1 {scores['f1']:.2f} on {scores['n']} "
                f"questions ({scores['examples_per_s']:.1f} questions/s) model={model_dir}"
            )


if __name__ == "__main__":
    main()
