"""Engine speed next to transformers' BertModel, same weights, same inputs, one run, as ratios.

    python -m loadtests.benchmark.bench_engine [--threads 2] [--repeats 3] [--write docs/benchmarks.md]
    python -m loadtests.benchmark.bench_engine --families [--threads 1]   # a row per model family

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

from loadtests.common.machine import machine


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
        f"Machine: {machine()}.",
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


# Every family at MiniLM-L6's size (6 layers, 384 wide, 12 heads), random weights: what differs is the family's own
# computation (positions, DeBERTa's relative terms, ModernBERT's rotary and sliding window, GeGLU), not its size.
_SIZE = {"hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12, "intermediate_size": 1536}
FAMILY_CONFIGS: dict[str, tuple[str, dict]] = {
    "BERT": ("Bert", _SIZE),
    "DistilBERT": ("DistilBert", {"dim": 384, "n_layers": 6, "n_heads": 12, "hidden_dim": 1536}),
    "RoBERTa": ("Roberta", {**_SIZE, "pad_token_id": 1, "max_position_embeddings": 514, "type_vocab_size": 1}),
    "ELECTRA": ("Electra", {**_SIZE, "embedding_size": 128}),
    "DeBERTa-v3": (
        "DebertaV2",
        {
            **_SIZE,
            "relative_attention": True,
            "position_buckets": 256,
            "max_relative_positions": 512,
            "pos_att_type": ["p2c", "c2p"],
            "norm_rel_ebd": "layer_norm",
            "share_att_key": True,
            "position_biased_input": False,
            "type_vocab_size": 0,
        },
    ),  # fmt: skip
    "ModernBERT": (
        "ModernBert",
        {**_SIZE, "vocab_size": 50368, "local_attention": 128, "global_attn_every_n_layers": 3},
    ),
}


def family_rows(threads: int, repeats: int, precisions: list[str]) -> list[str]:
    """Tokens/s of our engine and of transformers (its default attention: sdpa where the family has it) on the same
    random weights of each family, the same inputs."""
    import transformers

    from service.engine.errors import UnsupportedModelError
    from service.engine.weights import model_from_tensors

    rng = random.Random(3)
    lengths = {"short texts (8-40 tokens, batch 8)": ([rng.randint(8, 40) for _ in range(64)], 8),
               "384-token QA windows (batch 4)": ([384] * 16, 4)}  # fmt: skip
    lines = [
        f"## Engine vs transformers per model family ({time.strftime('%Y-%m-%d')}, {threads} thread(s))",
        "",
        f"Machine: {machine()}.",
        "",
        f"Command: `python -m loadtests.benchmark.bench_engine --families --threads {threads}`. Each family at "
        "MiniLM-L6's size with random weights, a sequence-classification model, the same weights and the same "
        f"padded batches for both; forward pass only, best of {repeats}; tokens/s counts real tokens.",
        "",
        "| family | mix | precision | ours tokens/s | transformers tokens/s | ours / transformers |",
        "|---|---|---|---:|---:|---:|",
    ]
    for family, (prefix, size) in FAMILY_CONFIGS.items():
        torch.manual_seed(0)
        config = getattr(transformers, f"{prefix}Config")(**{"vocab_size": 30522, "num_labels": 2, **size})
        reference = getattr(transformers, f"{prefix}ForSequenceClassification")(config).eval()
        try:
            ours = model_from_tensors(config.to_dict(), reference.state_dict(), "sentiment")
        except UnsupportedModelError as exc:
            lines.append(f"| {family} | — | — | not served: {exc.message} | | |")
            continue
        for precision in precisions:
            dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[precision]
            ours, reference = ours.to(dtype), reference.to(dtype)
            for mix, (seq_lengths, batch) in lengths.items():
                data = _random_batches(seq_lengths, batch, config.vocab_size, first_id=5)
                real = sum(int(mask.sum()) for _, mask in data)
                ours_s = timed(lambda i, m, model=ours: model(i, m), data, repeats)
                ref_s = timed(lambda i, m, model=reference: model(input_ids=i, attention_mask=m), data, repeats)
                lines.append(
                    f"| {family} | {mix} | {precision} | {real / ours_s:,.0f} | {real / ref_s:,.0f} "
                    f"| {ref_s / ours_s:.2f} |"
                )
                print(lines[-1], flush=True)
    return lines


def _random_batches(
    lengths: list[int], batch: int, vocab: int, first_id: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)
    out = []
    for i in range(0, len(lengths), batch):
        chunk = sorted(lengths[i : i + batch])
        ids = torch.randint(first_id, vocab, (len(chunk), chunk[-1]), generator=generator)
        mask = (torch.arange(chunk[-1])[None] < torch.tensor(chunk)[:, None]).long()
        out.append((ids * mask + (1 - mask) * 1, mask))  # padding id 1 (RoBERTa's); masked for every family
    return out


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
    parser.add_argument("--families", action="store_true", help="a row per model family (engine vs transformers)")
    parser.add_argument("--precisions", default="fp32,bf16", help="with --families: fp32, bf16 or both")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.families:
        return _report(family_rows(args.threads, args.repeats, args.precisions.split(",")), args.write)
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
        f"Machine: {machine()}.",
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
