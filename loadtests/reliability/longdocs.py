"""Questions about long documents from a few clients at a time: a closed loop the service must serve, not refuse.

    python -m loadtests.reliability.longdocs --url http://127.0.0.1:8000 [--clients 4] [--requests 40]

Each client asks one question about a long document (a made-up county gazetteer of several town articles, 20-60
QA windows of 384 tokens), waits for the answer, and asks the next (a refused one again, after its Retry-After).
A closed loop of a few clients cannot overload anything: every question should be answered, within the request
timeout. Prints each answer's windows, status and latency (and a refusal's reason), and a summary; exits 1 on any
refusal, timeout or error. How often the best answer holds the asked-for fact is printed too (answer_found): that
is the model's quality on long documents full of look-alike towns, not the service's. The texts are this
project's own (loadtests/locust/corpus.py), not copied from anywhere.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass

import httpx

from loadtests.common.machine import machine
from loadtests.common.stats import percentile
from loadtests.locust.corpus import FILLER_PARAGRAPHS, TOWN_PARAGRAPHS, TOWN_QUESTIONS, TOWNS


@dataclass(frozen=True)
class Question:
    question: str
    context: str
    answer: str


def gazetteer_question(rng: random.Random, towns: int, fillers_per_town: int) -> Question:
    """A question about one town of a gazetteer of `towns` town articles, each padded with filler paragraphs."""
    chosen = rng.sample(TOWNS, towns)
    articles = []
    for town in chosen:
        paragraphs = [p.format(**town) for p in TOWN_PARAGRAPHS]
        for _ in range(fillers_per_town):
            paragraphs.insert(rng.randrange(1, len(paragraphs)), rng.choice(FILLER_PARAGRAPHS).format(**town))
        articles.append(f"{town['name']}\n\n" + "\n\n".join(paragraphs))
    town = rng.choice(chosen)
    question, key, _ = rng.choice(TOWN_QUESTIONS)
    return Question(question.format(**town), "\n\n\n".join(articles), town[key])


@dataclass
class Answered:
    client: int
    status: int
    seconds: float
    windows: int | None
    correct: bool | None
    code: str | None


async def run(url: str, clients: int, requests: int, timeout_s: float, seed: int) -> list[Answered]:
    rng = random.Random(seed)
    # 4-8 towns of 12-22 fillers each: about 20-60 windows of 384 tokens with the default stride.
    questions = [gazetteer_question(rng, rng.randint(4, 8), rng.randint(12, 22)) for _ in range(requests)]
    queue: asyncio.Queue[Question] = asyncio.Queue()
    for q in questions:
        queue.put_nowait(q)
    answered: list[Answered] = []

    async def client(index: int, http: httpx.AsyncClient) -> None:
        retry: Question | None = None
        while retry is not None or not queue.empty():
            q, retry = retry or queue.get_nowait(), None
            began = time.perf_counter()
            reply = await http.post("/v1/qa", json={"question": q.question, "context": q.context})
            seconds = time.perf_counter() - began
            body = reply.json()
            if reply.status_code == 200:
                result = body["results"][0]
                best = result["answers"][0]["text"] if result["answers"] else ""
                answered.append(Answered(index, 200, seconds, result["windows"], q.answer in best, None))
            else:
                answered.append(Answered(index, reply.status_code, seconds, None, None, body["error"]["code"]))
                if reply.status_code == 503 and "retry-after" in reply.headers:  # as a polite client: wait, ask again
                    await asyncio.sleep(float(reply.headers["retry-after"]))
                    retry = q
            done = answered[-1]
            why = f" ({body['error']['message']})" if reply.status_code != 200 else ""
            print(f"client {index}: {done.status} in {seconds:.2f} s, {done.windows} windows{why}", flush=True)

    async with httpx.AsyncClient(base_url=url, timeout=timeout_s + 30) as http:
        await asyncio.gather(*(client(i, http) for i in range(clients)))
    return answered


def summary(answered: list[Answered], clients: int, timeout_s: float) -> dict:
    ok = [a for a in answered if a.status == 200]
    seconds = [a.seconds for a in ok]
    windows = [a.windows for a in ok if a.windows is not None]
    return {
        "clients": clients,
        "requests": len(answered),
        "statuses": {str(k): v for k, v in sorted(Counter(a.status for a in answered).items())},
        "error_codes": dict(Counter(a.code for a in answered if a.code)),
        "windows_min_max": [min(windows, default=0), max(windows, default=0)],
        "p50_s": round(percentile(seconds, 50), 2) if seconds else None,
        "p99_s": round(percentile(seconds, 99), 2) if seconds else None,
        "max_s": round(max(seconds, default=0), 2),
        "over_timeout": sum(1 for s in seconds if s >= timeout_s),
        "answer_found": sum(1 for a in ok if a.correct),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--timeout-s", type=float, default=30.0, help="the service's request_timeout_s")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    print(f"Machine: {machine()}")
    answered = asyncio.run(run(args.url, args.clients, args.requests, args.timeout_s, args.seed))
    report = summary(answered, args.clients, args.timeout_s)
    print(json.dumps(report, indent=2))
    broken = len(answered) - report["statuses"].get("200", 0) + report["over_timeout"]
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
