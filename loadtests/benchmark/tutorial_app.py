"""Ray Serve's batching tutorial, done plainly: the baseline a Serve user gets by following the docs.

One deployment, default everything (proxy, replica count, actor options), whose `__call__` awaits a
`@serve.batch` method around transformers' text-classification pipeline in fp32, on the same weights as the
service. The pipeline is given the whole batch (`batch_size=len(texts)`): without it the pipeline runs the
list one text at a time and `@serve.batch` would batch nothing, a weaker baseline than the tutorial intends.
Serve's default `num_cpus: 1` per replica makes Ray set OMP_NUM_THREADS=1 in it, so torch runs on one thread:
that too is what a user following the tutorial gets, and it is left as it is.

    python -m loadtests.benchmark.tutorial_app --port 8001 --model-dir /path/to/hf-sentiment-checkpoint

It takes the service's body, {"text": "..."}, on any path (the benchmark posts to /v1/sentiment), and stops
Serve and its Ray cluster on Ctrl-C (SIGINT).
"""

from __future__ import annotations

import argparse
import time

from ray import serve
from starlette.requests import Request


@serve.deployment
class Sentiment:
    def __init__(self, model_dir: str) -> None:
        from transformers import pipeline

        self.classifier = pipeline("text-classification", model=model_dir, device=-1)

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.01)
    async def classify(self, texts: list[str]) -> list[dict]:
        return self.classifier(texts, batch_size=len(texts))

    async def __call__(self, request: Request) -> dict:
        body = await request.json()
        result = await self.classify(body["text"])
        return {"results": [{"label": result["label"], "score": result["score"]}]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--model-dir", required=True)
    args = parser.parse_args()
    serve.start(http_options={"host": "127.0.0.1", "port": args.port})
    serve.run(Sentiment.bind(args.model_dir))
    print(f"tutorial app up at http://127.0.0.1:{args.port}", flush=True)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        serve.shutdown()


if __name__ == "__main__":
    main()
