"""The trainer, run for real on tiny fixtures with the real base: artifacts serve, resume is exact.

The fixtures are made here (a few sentences and two made-up articles), never copies of the shared data.
"""

from __future__ import annotations

import json
import random

import pytest
import torch
from safetensors.torch import load_file

from service.engine.engine import EngineConfig, QAEngine, SentimentEngine
from service.engine.layout import ADAPTER_FILE, ARTIFACT_FILE
from service.training import train
from service.training.data import SquadQuestion, read_squad, sha256_of
from service.training.eval import evaluate_no_answer, held_out_articles
from service.training.examples import (
    NO_ANSWER,
    collate,
    length_batches,
    qa_examples,
    span_target,
    unanswerable_examples,
    unanswerable_pairs,
)

PARAGRAPHS = {
    "Bridges": [
        (
            "The Lune bridge was opened in 1932 after six years of work by the county engineers.",
            [("When was the Lune bridge opened?", "1932"), ("Who built the Lune bridge?", "the county engineers")],
        ),
        (
            "Its central span is 84 metres long and carries two lanes of traffic over the river.",
            [("How long is the central span?", "84 metres"), ("How many lanes does it carry?", "two")],
        ),
        (
            "A toll was charged until 1961, when the council bought the bridge from its owners.",
            [("Until when was a toll charged?", "1961")],
        ),
    ],
    "Rivers": [
        (
            "The Lune rises on the slopes of Ravenstonedale and flows for 53 miles to the Irish Sea.",
            [("Where does the Lune rise?", "Ravenstonedale"), ("How long is the Lune?", "53 miles")],
        ),
        (
            "Salmon and sea trout return to the river every autumn to spawn in its gravel beds.",
            [("Which fish return to the river?", "Salmon and sea trout")],
        ),
    ],
}
SENTENCES = [
    ("a gorgeous , moving film", 1), ("a dull , lifeless mess", 0), ("funny and warm", 1),
    ("a tedious waste of time", 0), ("beautifully acted", 1), ("badly written and boring", 0),
    ("one of the best of the year", 1), ("the worst film in years", 0), ("i loved it", 1), ("i hated it", 0),
    ("charming and clever", 1), ("clumsy and stupid", 0), ("a delight", 1), ("a mess", 0),
]  # fmt: skip


@pytest.fixture(scope="module")
def squad_file(tmp_path_factory):
    data = {"version": "1.1", "data": []}
    for title, paragraphs in PARAGRAPHS.items():
        article = {"title": title, "paragraphs": []}
        for p, (context, qas) in enumerate(paragraphs):
            article["paragraphs"].append(
                {
                    "context": context,
                    "qas": [
                        {
                            "id": f"{title}-{p}-{i}",
                            "question": q,
                            "answers": [{"text": a, "answer_start": context.index(a)}],
                        }
                        for i, (q, a) in enumerate(qas)
                    ],
                }
            )
        data["data"].append(article)
    path = tmp_path_factory.mktemp("squad") / "train-tiny.json"
    path.write_text(json.dumps(data))
    return path


@pytest.fixture(scope="module")
def sst2_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sst2")
    rows = "".join(f"{text} \t{label}\n" for text, label in SENTENCES)
    (folder / "train.tsv").write_text("sentence\tlabel\n" + rows)
    return folder


def _train(*args: str) -> None:
    train.main([*args, "--threads", "2", "--precision", "fp32", "--batch-size", "4", "--seed", "3"])


def test_qa_windows_point_at_the_answer_or_at_cls(tokenizer, squad_file):
    questions = read_squad(squad_file)
    assert len(qa_examples(tokenizer, questions, max_seq_len=24, doc_stride=8)) > len(questions)  # short windows
    for q in questions:
        start_char, windows_with_answer = q.answer_starts[0], 0
        end_char = start_char + len(q.answers[0])
        for window in tokenizer.encode_qa(q.question, q.context, 24, 8, max_question_len=256).windows:
            target = span_target(window.context_offsets, start_char, end_char)
            if target == NO_ANSWER:
                continue
            windows_with_answer += 1
            first, last = window.context_offsets[target[0]], window.context_offsets[target[1]]
            assert q.context[first[0] : last[1]] == q.answers[0]
        assert windows_with_answer >= 1  # every answer sits whole in at least one window


def test_unanswerable_pairs_use_another_paragraph_without_the_answer(tokenizer, squad_file):
    questions = read_squad(squad_file)
    pairs = unanswerable_pairs(questions, 1.0, random.Random(0))
    assert len(pairs) >= len(questions) - 1
    own = {q.question: q for q in questions}
    for pair in pairs:
        original = own[pair.question]
        assert pair.title == original.title and pair.context != original.context
        assert not any(a.lower() in pair.context.lower() for a in original.answers)
        assert pair.answers == ()
    assert all(e.target == NO_ANSWER for e in unanswerable_examples(tokenizer, pairs, 64, 16))


def test_length_batches_cover_every_example_once_with_little_padding(tokenizer, squad_file):
    examples = qa_examples(tokenizer, read_squad(squad_file), max_seq_len=48, doc_stride=16) * 20
    batches = length_batches(examples, 8, random.Random(1))
    assert sorted(i for b in batches for i in b) == list(range(len(examples)))
    real = sum(len(e) for e in examples)
    padded = sum(collate([examples[i] for i in b], 0)["ids"].numel() for b in batches)
    assert padded / real < 1.1


def test_qa_full_fine_tuning_writes_a_servable_artifact(squad_file, tmp_path):
    out = tmp_path / "qa"
    _train("qa", "--data", str(squad_file), "--out", str(out), "--run-dir", str(tmp_path / "run"),
           "--epochs", "2", "--held-out", "1", "--max-seq-len", "64", "--doc-stride", "16")  # fmt: skip
    meta = json.loads((out / ARTIFACT_FILE).read_text())
    assert meta["method"] == "full" and meta["recipe"]["questions"] == 5 and "Rivers" in meta["recipe"]["held_out"]
    tensors = load_file(str(out / ADAPTER_FILE))
    assert "encoder.layers.5.ffn.down.weight" in tensors and "head.qa_outputs.weight" in tensors
    assert not any(name.startswith("encoder.embeddings.word.") for name in tensors)  # frozen, not shipped
    engine = QAEngine(out, EngineConfig(precision="fp32", threads=2))
    trained = engine.model.encoder.layers[5].ffn.down.weight
    assert torch.allclose(trained, tensors["encoder.layers.5.ffn.down.weight"].float())
    result = engine.answer_texts("When was the Lune bridge opened?", PARAGRAPHS["Bridges"][0][0])
    assert result.answers and result.answers[0].text in PARAGRAPHS["Bridges"][0][0]


def test_init_starts_from_an_artifacts_tensors(squad_file, tmp_path, tokenizer):
    common = ["qa", "--data", str(squad_file), "--held-out", "1", "--max-seq-len", "64", "--doc-stride", "16"]
    first = tmp_path / "first"
    _train(*common, "--out", str(first), "--run-dir", str(tmp_path / "run-first"), "--epochs", "1")
    # Before any step the model is the artifact's: the same outputs as the engine serving it.
    served = QAEngine(first, EngineConfig(precision="fp32", threads=2)).model.eval()
    args = train.parse_args([*common, "--out", str(tmp_path / "next"), "--init", str(first)])
    initial = train.build_model(args, train.default_base_dir(), 128.0).eval()
    fresh = train.build_model(train.parse_args([*common, "--out", str(tmp_path / "x")]), train.default_base_dir(), 1)
    window = tokenizer.encode_qa("When was the Lune bridge opened?", PARAGRAPHS["Bridges"][0][0], 64, 16, 64).windows[0]
    ids, types = torch.tensor([window.ids]), torch.tensor([window.type_ids])
    with torch.inference_mode():
        expected, _ = served(ids, torch.ones_like(ids), types)
        got, _ = initial(ids, torch.ones_like(ids), types)
        untrained, _ = fresh.eval()(ids, torch.ones_like(ids), types)
    assert all(torch.equal(e, g) for e, g in zip(expected, got, strict=True))
    assert not torch.allclose(expected[0], untrained[0])
    # The init is part of the fingerprint: a checkpoint of an --init run does not resume without it.
    run = ["--out", str(tmp_path / "next"), "--run-dir", str(tmp_path / "run-next"), "--epochs", "1", "--lr", "0"]
    _train(*common, *run, "--init", str(first), "--stop-at-step", "1")
    with pytest.raises(SystemExit, match="other data or options"):
        _train(*common, *run)
    # With lr 0 (no step moves a weight) the run writes back the very tensors it started from.
    _train(*common, *run, "--init", str(first))
    before, after = load_file(str(first / ADAPTER_FILE)), load_file(str(tmp_path / "next" / ADAPTER_FILE))
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    init = json.loads((tmp_path / "next" / ARTIFACT_FILE).read_text())["recipe"]["init"]
    assert init["from"] == str(first) and init["sha256"] == sha256_of(first / ADAPTER_FILE)


def test_init_is_refused_for_lora_for_its_own_output_and_for_another_held_out_slice(squad_file, tmp_path):
    common = ["qa", "--data", str(squad_file), "--max-seq-len", "64", "--doc-stride", "16", "--epochs", "1"]
    first = tmp_path / "first"
    _train(*common, "--held-out", "1", "--out", str(first), "--run-dir", str(tmp_path / "run-first"))
    run = ["--run-dir", str(tmp_path / "run"), "--init", str(first)]
    with pytest.raises(SystemExit, match="needs --method full"):
        _train(*common, *run, "--held-out", "1", "--out", str(tmp_path / "a"), "--method", "lora")
    with pytest.raises(SystemExit, match="same directory"):
        _train(*common, *run, "--held-out", "1", "--out", str(first))
    with pytest.raises(SystemExit, match="may have trained on what this run scores on"):
        _train(*common, *run, "--held-out", "0", "--out", str(tmp_path / "a"))


def test_lora_artifact_carries_adapters_biases_and_norms(sst2_dir, tmp_path):
    out = tmp_path / "sentiment"
    _train("sentiment", "--data", str(sst2_dir), "--out", str(out), "--run-dir", str(tmp_path / "run"),
           "--method", "lora", "--rank", "4", "--epochs", "1", "--held-out", "4")  # fmt: skip
    meta = json.loads((out / ARTIFACT_FILE).read_text())
    assert meta["method"] == "lora" and meta["lora"]["rank"] == 4
    names = set(load_file(str(out / ADAPTER_FILE)))
    assert "encoder.layers.0.attention.query.lora_A" in names
    assert "encoder.layers.0.attention.query.bias" in names and "encoder.layers.0.ffn_norm.weight" in names
    assert not any(n.endswith("attention.query.weight") for n in names)  # LoRA leaves the weights to the base
    engine = SentimentEngine(out, EngineConfig(precision="fp32", threads=2))
    assert engine.classify_texts(["a delight"])[0].label in ("negative", "positive")


def test_an_interrupted_run_resumes_exactly(sst2_dir, tmp_path):
    common = ["sentiment", "--data", str(sst2_dir), "--epochs", "2", "--held-out", "2", "--save-every", "2"]
    _train(*common, "--out", str(tmp_path / "a"), "--run-dir", str(tmp_path / "run-a"))
    # Stopped in the middle of the second epoch (3 steps an epoch), between two evaluations.
    _train(*common, "--out", str(tmp_path / "b"), "--run-dir", str(tmp_path / "run-b"), "--stop-at-step", "4")
    stopped = torch.load(tmp_path / "run-b" / "state.pt", weights_only=True)
    assert stopped["step"] == 4
    _train(*common, "--out", str(tmp_path / "b"), "--run-dir", str(tmp_path / "run-b"))
    straight = torch.load(tmp_path / "run-a" / "state.pt", weights_only=True)
    resumed = torch.load(tmp_path / "run-b" / "state.pt", weights_only=True)
    assert straight["step"] == resumed["step"] == 6  # 12 rows / batch 4 x 2 epochs
    for name, tensor in straight["model"].items():
        assert torch.equal(tensor, resumed["model"][name]), name
    assert not torch.equal(straight["model"]["head.classifier.weight"], stopped["model"]["head.classifier.weight"])


def test_a_checkpoint_of_other_options_is_refused(sst2_dir, tmp_path):
    common = ["sentiment", "--data", str(sst2_dir), "--held-out", "2", "--run-dir", str(tmp_path / "run")]
    _train(*common, "--out", str(tmp_path / "a"), "--epochs", "2", "--stop-at-step", "2")
    with pytest.raises(SystemExit, match="other data or options"):
        _train(*common, "--out", str(tmp_path / "a"), "--epochs", "3")


def test_without_a_held_out_slice_the_last_model_is_kept(sst2_dir, tmp_path):
    out = tmp_path / "out"
    _train("sentiment", "--data", str(sst2_dir), "--held-out", "0", "--epochs", "2", "--out", str(out),
           "--run-dir", str(tmp_path / "run"))  # fmt: skip
    meta = json.loads((out / ARTIFACT_FILE).read_text())
    assert meta["recipe"]["best_step"] == 8  # 14 rows / 4 = 4 steps an epoch: the end of the second epoch


def test_no_answer_evaluation_counts_empty_answers(qa_engine, null_leaning_qa_checkpoint, squad_file):
    questions = held_out_articles(read_squad(squad_file), 1)
    assert {q.title for q in questions} == {"Rivers"}
    unanswerable = [SquadQuestion("u", q.title, q.question, "Nothing here but a short unrelated note.", (), ())
                    for q in questions]  # fmt: skip
    scores = evaluate_no_answer(qa_engine, questions, unanswerable)
    assert scores["n_answerable"] == scores["n_unanswerable"] == 3
    assert scores["answerable_f1_on"] <= scores["answerable_f1_off"] + 1e-9  # the option can only take answers away
    null_leaning = QAEngine(null_leaning_qa_checkpoint, EngineConfig(precision="fp32", threads=2))
    leaning = evaluate_no_answer(null_leaning, questions, unanswerable)
    assert leaning["unanswerable_said_no_answer"] == leaning["answerable_said_no_answer"] == 100
    assert leaning["answerable_f1_on"] == 0


def test_held_out_articles_leave_something_to_train_on(squad_file):
    with pytest.raises(ValueError, match="nothing would be left"):
        held_out_articles(read_squad(squad_file), 2)
