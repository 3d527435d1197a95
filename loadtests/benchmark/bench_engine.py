"""Engine speed next to transformers' BertModel, same weights, same inputs, one run, as ratios.

    python -m loadtests.benchmark.bench_engine [--threads 2] [--repeats 3] [--write docs/benchmarks.md]

Two mixes: short sentences (sentiment-like, 8–40 tokens, batches of 64) and full 384-token QA windows
(batches of 16). For each precision (fp32, bf16) it times the encoder forward pass only — tokenization
done beforehand, identical padded batches for both — and prints tokens/s (real tokens) and sequences/s. Each
row is also compared with this machine's matmul bound at that precision, measured in the same run: the peak
GFLOP/s of a 2048² matmul on the same threads divided by the encoder's FLOPs per token (linear layers plus
attention at that sequence length). DESIGN.md quotes ~890 GFLOP/s bf16 (≈ 40k tokens/s) for the machine it
was measured on; the machine this runs on may differ, which is why the bound is measured, not assumed.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from pathlib import Path

import torch


def matmul_peak_flops(dtype: torch.dtype, size: int = 2048, repeats: int = 10) -> float:
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b
    began = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - began)


def flops_per_token(config: dict, mean_length: float) -> float:
    """Multiply-adds ×2 of one token through the encoder: Q, K, V, output and feed-forward linears, and
    the attention scores and weighted sum over `mean_length` keys."""
    hidden, inner, layers = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    linear = 4 * hidden * hidden + 2 * hidden * inner
    attention = 2 * mean_length * hidden
    return 2 * layers * (linear + attention)


def short_sentences(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    words = (
        "the a film movie plot acting cast score ending scene story was is felt truly deeply rather "
        "wonderful dull moving clumsy sharp bland funny sad long short bright dark warm cold"
    ).split()
    return [" ".join(rng.choice(words) for _ in range(rng.randint(6, 36))) for _ in range(n)]


def batches(tokenizer, texts: list[str], width: int | None, batch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    encoded = [tokenizer.encode_text(t).ids for t in texts]
    if width is not None:  # QA-like windows: every sequence exactly `width` tokens
        encoded = [(ids * (width // len(ids) + 1))[:width] for ids in encoded]
    out = []
    for i in range(0, len(encoded), batch):
        chunk = sorted(encoded[i : i + batch], key=len)
        w = max(len(ids) for ids in chunk)
        ids = torch.zeros(len(chunk), w, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, seq in enumerate(chunk):
            ids[row, : len(seq)] = torch.tensor(seq)
            mask[row, : len(seq)] = 1
        out.append((ids, mask))
    return out


def timed(run, data, repeats: int) -> float:
    with torch.inference_mode():
        run(*data[0])  # warm-up
        best = float("inf")
        for _ in range(repeats):
            began = time.perf_counter()
            for ids, mask in data:
                run(ids, mask)
            best = min(best, time.perf_counter() - began)
    return best


def batch_size_sweep(threads: int, sizes: list[int], repeats: int) -> list[str]:
    """Texts/s of the sentiment engine (what a replica runs: tokenized, planned, classified) per batch size, for
    the service's `max_batch_size`: on a CPU, past a few texts a bigger batch only makes each text wait longer."""
    from loadtests.common.texts import Texts
    from service.engine.engine import EngineConfig, SentimentEngine
    from service.settings import default_model_dir

    overload = Texts()
    mixes = {
        "short sentences (6-36 words)": short_sentences(256, seed=2),
        "overload texts (4-123 words)": [overload.text(1000 + i) for i in range(256)],
    }
    lines = [
        f"## Sentiment engine by batch size ({time.strftime('%Y-%m-%d')}, {threads} thread(s))",
        "",
        f"Command: `python -m loadtests.benchmark.bench_engine --threads {threads}"
        f" --sweep {','.join(map(str, sizes))}`. "
        f"Texts/s over 256 texts in batches of each size, best of {repeats}; ms a batch; the ratio to the largest.",
        "",
        "| mix | precision | " + " | ".join(f"batch {size}" for size in sizes) + " |",
        "|---|---|" + "---:|" * len(sizes),
    ]
    for precision in ("fp32", "bf16"):
        engine = SentimentEngine(default_model_dir("sentiment"), EngineConfig(precision=precision, threads=threads))
        for mix, texts in mixes.items():
            engine.classify_texts(texts[: max(sizes)])  # warm-up
            cells, rates = [], []
            for size in sizes:
                best = float("inf")
                for _ in range(repeats):
                    began = time.perf_counter()
                    for i in range(0, len(texts), size):
                        engine.classify_texts(texts[i : i + size])
                    best = min(best, time.perf_counter() - began)
                rates.append(len(texts) / best)
                cells.append(f"{rates[-1]:,.0f}/s, {best / math.ceil(len(texts) / size) * 1000:,.0f} ms")
            cells = [f"{cell} ({rate / rates[-1]:.2f})" for cell, rate in zip(cells, rates, strict=True)]
            lines.append(f"| {mix} | {precision} | " + " | ".join(cells) + " |")
            print(lines[-1], flush=True)
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="best of N passes over the data")
    parser.add_argument("--write", type=Path)
    parser.add_argument(
        "--sweep",
        type=lambda v: sorted(int(x) for x in v.split(",")),
        help="batch sizes, e.g. 1,4,8,16,32: "
        "only the sentiment engine's texts/s per batch size (the service's max_batch_size)",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.sweep:
        return _report(batch_size_sweep(args.threads, args.sweep, args.repeats), args.write)

    import transformers

    from service.engine.layout import default_base_dir, read_json
    from service.engine.tokenize import TextTokenizer
    from service.engine.weights import load_encoder

    base = default_base_dir()
    tokenizer = TextTokenizer(base / "tokenizer.json", max_tokens=512)
    mixes = {
        "short sentences (batch 64)": batches(tokenizer, short_sentences(512), None, 64),
        "384-token QA windows (batch 16)": batches(tokenizer, short_sentences(64, seed=1), 384, 16),
    }
    lines = [
        f"## Engine vs transformers BertModel ({time.strftime('%Y-%m-%d')}, {args.threads} threads)",
        "",
        f"Command: `python -m loadtests.benchmark.bench_engine"
        f" {' '.join(argv if argv is not None else sys.argv[1:])}`. "
        f"Encoder forward only, best of {args.repeats}; tokens/s counts real (unpadded) tokens.",
        "",
        "| mix | precision | ours tokens/s | ours seq/s | transformers tokens/s | ours / transformers "
        "| matmul bound tokens/s | ours / bound |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    config = read_json(base / "config.json")
    for precision, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        peak = matmul_peak_flops(dtype)
        ours, _ = load_encoder(base, "sentiment")
        ours = ours.to(dtype).eval()
        reference = transformers.BertModel.from_pretrained(str(base), attn_implementation="sdpa")
        reference = reference.to(dtype).eval()
        for mix, data in mixes.items():
            real_tokens = sum(int(mask.sum()) for _, mask in data)
            sequences = sum(ids.shape[0] for ids, _ in data)
            ours_s = timed(lambda i, m, model=ours: model.encoder(i, m), data, args.repeats)
            ref_s = timed(lambda i, m, model=reference: model(input_ids=i, attention_mask=m), data, args.repeats)
            ours_tps = real_tokens / ours_s
            bound = peak / flops_per_token(config, real_tokens / sequences)
            lines.append(
                f"| {mix} | {precision} | {ours_tps:,.0f} | {sequences / ours_s:,.1f} | {real_tokens / ref_s:,.0f} "
                f"| {ref_s / ours_s:.2f} | {bound:,.0f} ({peak / 1e9:.0f} GFLOP/s) | {ours_tps / bound:.0%} |"
            )
            print(lines[-1], flush=True)
    return _report(lines, args.write)


def _report(lines: list[str], write: Path | None) -> int:
    """Print the report and, with --write, append it to that markdown file."""
    report = "\n".join(lines) + "\n"
    print(report)
    if write:
        with write.open("a") as f:
            f.write(report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
