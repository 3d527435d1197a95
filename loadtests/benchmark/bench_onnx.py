"""The engine against ONNX Runtime on the same weights and inputs: texts/s at batch 1, 8 and 32, side by side.

    python -m loadtests.benchmark.bench_onnx [--threads 1] [--sentences ../shared/data/sst2/dev.tsv] [--write F]

ONNX Runtime is what a CPU user would reach for (it is text-embeddings-inference's CPU path). The shipped sentiment
model, exported as the plain Hugging Face checkpoint it is (the benchmark's naive server loads the same), goes to
ONNX the way a user exports it (transformers' BertForSequenceClassification, eager attention, traced with dynamic
batch and length axes), once in fp32 and once quantized by ONNX Runtime's dynamic quantization (int8 weights per
channel, the same scheme as the engine's `precision: int8`). Each row times the whole classification of the same
texts in the same batches, from token ids to probabilities: the engine's `classify` (pass planning and result
building included), ONNX Runtime's `run` plus a softmax. Accuracy is each one's agreement with the engine in fp32
on these texts.

Needs `pip install onnxruntime onnx` (the `bench` extra); the service itself does not use them.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from loadtests.benchmark.bench_engine import _report, short_sentences
from loadtests.common.machine import machine

SIZES = (1, 8, 32)


class _Logits(torch.nn.Module):
    """transformers' model as ONNX takes it: ids, mask, types in; logits out."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=ids, attention_mask=mask, token_type_ids=types).logits


def export(folder: Path, threads: int):
    """fp32 and int8 ONNX Runtime sessions of the shipped sentiment model."""
    import onnxruntime as ort
    import transformers
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from loadtests.benchmark.servers import export_checkpoints

    checkpoint = export_checkpoints(("sentiment",), folder)["sentiment"]
    model = transformers.BertForSequenceClassification.from_pretrained(str(checkpoint), attn_implementation="eager")
    fp32_file, int8_file = folder / "model.onnx", folder / "model.int8.onnx"
    ids = torch.ones(2, 16, dtype=torch.long)
    mask = torch.ones_like(ids)
    mask[1, 9:] = 0  # a padded row, so no branch on "no padding" is traced in
    axes = {"ids": {0: "batch", 1: "tokens"}, "mask": {0: "batch", 1: "tokens"}, "types": {0: "batch", 1: "tokens"}}
    torch.onnx.export(
        _Logits(model.eval()),
        (ids, mask, torch.zeros_like(ids)),
        str(fp32_file),
        input_names=["ids", "mask", "types"],
        output_names=["logits"],
        dynamic_axes={**axes, "logits": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    quantize_dynamic(str(fp32_file), str(int8_file), weight_type=QuantType.QInt8, per_channel=True)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return {
        name: ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        for name, path in (("onnxruntime fp32", fp32_file), ("onnxruntime int8", int8_file))
    }


def padded(encoded: list[list[int]], pad_id: int) -> dict[str, np.ndarray]:
    width = max(len(ids) for ids in encoded)
    ids = np.full((len(encoded), width), pad_id, dtype=np.int64)
    mask = np.zeros_like(ids)
    for row, seq in enumerate(encoded):
        ids[row, : len(seq)] = seq
        mask[row, : len(seq)] = 1
    return {"ids": ids, "mask": mask, "types": np.zeros_like(ids)}


def main(argv: list[str] | None = None) -> int:
    from service.engine.config import EngineConfig
    from service.engine.engine import SentimentEngine, SentimentJob
    from service.settings import default_model_dir

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--texts", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3, help="best of N passes over the texts")
    parser.add_argument("--sentences", type=Path, help="real sentences (SST-2's TSV or one per line)")
    parser.add_argument("--write", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.sentences:
        from loadtests.benchmark.benchmark import read_sentences

        texts = read_sentences(args.sentences)[: args.texts]
    else:
        texts = short_sentences(args.texts, seed=2)
    engines = {
        f"engine {p}": SentimentEngine(default_model_dir("sentiment"), EngineConfig(precision=p, threads=args.threads))
        for p in ("fp32", "bf16", "int8")
    }
    reference = engines["engine fp32"]
    jobs = [SentimentJob(reference.encode(t)) for t in texts]
    expected = [r.label for r in reference.classify(jobs).results]
    labels = list(reference.info.labels)
    rows: dict[str, list[float]] = {}
    agree: dict[str, float] = {}

    def timed(classify) -> list[float]:
        rates = []
        for size in SIZES:
            classify(jobs[:size])  # warm-up
            best = float("inf")
            for _ in range(args.repeats):
                began = time.perf_counter()
                for i in range(0, len(jobs), size):
                    classify(jobs[i : i + size])
                best = min(best, time.perf_counter() - began)
            rates.append(len(jobs) / best)
        return rates

    for name, engine in engines.items():
        rows[name] = timed(lambda chunk, e=engine: e.classify(chunk).results)
        got = [r.label for r in engine.classify(jobs).results]
        agree[name] = sum(a == b for a, b in zip(got, expected, strict=True)) / len(jobs)
        print(name, [f"{r:,.0f}" for r in rows[name]], flush=True)
    pad = reference.tokenizer.pad_id
    with tempfile.TemporaryDirectory(prefix="onnx-") as tmp:
        sessions = export(Path(tmp), args.threads)
        for name, session in sessions.items():

            def classify(chunk, s=session):
                logits = s.run(["logits"], padded([j.item.ids for j in chunk], pad))[0]
                e = np.exp(logits - logits.max(axis=-1, keepdims=True))
                return e / e.sum(axis=-1, keepdims=True)

            rows[name] = timed(classify)
            got = [labels[int(i)] for i in classify(jobs).argmax(axis=-1)]
            agree[name] = sum(a == b for a, b in zip(got, expected, strict=True)) / len(jobs)
            print(name, [f"{r:,.0f}" for r in rows[name]], flush=True)
    import onnxruntime

    mix = f"{len(texts)} lines of {args.sentences.name}" if args.sentences else f"{len(texts)} short made-up sentences"
    lines = [
        f"## The engine against ONNX Runtime ({time.strftime('%Y-%m-%d')}, {args.threads} thread(s))",
        "",
        f"Machine: {machine()}. torch {torch.__version__}, onnxruntime {onnxruntime.__version__}.",
        "",
        f"Command: `python -m loadtests.benchmark.bench_onnx {' '.join(argv if argv is not None else sys.argv[1:])}`."
        f" The shipped sentiment model, {mix}, texts/s (best of {args.repeats}) from token ids to probabilities;"
        " labels agreeing with the engine in fp32.",
        "",
        "| runtime | " + " | ".join(f"batch {s}" for s in SIZES) + " | same label as engine fp32 |",
        "|---|" + "---:|" * (len(SIZES) + 1),
    ]
    best_ort = {size: max(rows["onnxruntime fp32"][i], rows["onnxruntime int8"][i]) for i, size in enumerate(SIZES)}
    for name, rates in rows.items():
        cells = [f"{r:,.0f} ({r / best_ort[s]:.2f}× best ORT)" for r, s in zip(rates, SIZES, strict=True)]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {100 * agree[name]:.1f} % |")
    return _report(lines, args.write)


if __name__ == "__main__":
    sys.exit(main())
