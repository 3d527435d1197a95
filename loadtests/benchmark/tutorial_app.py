"""Ray Serve's batching tutorial, done plainly: the baseline a Serve user gets by following the docs.

One replica, the default proxy, whose `__call__` awaits a `@serve.batch(max_batch_size=32,
batch_wait_timeout_s=0.01)` method around transformers' text-classification pipeline in fp32, on the same weights
as the service, called on the batch's list as the tutorial does, `max_ongoing_requests` 32 as Serve's batching guide
asks. It gets the naive server's threads (`--threads`):
Serve's default `num_cpus: 1` would make Ray set OMP_NUM_THREADS=1 and leave the anchor on half the cores the
others get, and an earlier version that also forced `batch_size=len(texts)` padded every batch to its longest
text; both made the anchor slower than a plain tutorial app measured beside it (issue 21), so a ratio against it
said little.

    python -m loadtests.benchmark.tutorial_app --port 8001 --model-dir /path/to/hf-sentiment-checkpoint [--threads 2]

It takes the service's body, {"text": "..."}, on any path (the benchmark posts to /v1/sentiment), and stops
Serve and its Ray cluster on Ctrl-C (SIGINT).
"""

from __future__ import annotations

import argparse
import time

from ray import serve
from starlette.requests import Request


# max_ongoing_requests at the batch size, as Serve's batching guide says (and warns at the first batch when it
# is not): with the default 5, no batch could hold more than 5 requests.
@serve.deployment(max_ongoing_requests=32)
class Sentiment:
    def __init__(self, model_dir: str, threads: int) -> None:
        import torch
        from transformers import pipeline

        torch.set_num_threads(threads)
        self.classifier = pipeline("text-classification", model=model_dir, device=-1)

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.01)
    async def classify(self, texts: list[str]) -> list[dict]:
        return self.classifier(texts)

    async def __call__(self, request: Request) -> dict:
        body = await request.json()
        result = await self.classify(body["text"])
        return {"results": [{"label": result["label"], "score": result["score"]}]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--threads", type=int, default=2, help="torch threads, as the naive server gets")
    args = parser.parse_args()
    serve.start(http_options={"host": "127.0.0.1", "port": args.port})
    serve.run(Sentiment.bind(args.model_dir, args.threads))
    print(f"tutorial app up at http://127.0.0.1:{args.port}", flush=True)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        serve.shutdown()


if __name__ == "__main__":
    main()
