"""Many clients at once: batches really form, and every request gets its own answer back."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from ray import serve

from service.tasks import TASKS
from tests.service.conftest import MAIN_APPS

pytestmark = pytest.mark.integration

ADJECTIVES = "wonderful dreadful charming tedious brilliant clumsy moving bland sharp messy".split()
NOUNS = ["script", "cast", "score", "pacing", "ending", "camera work", "dialogue", "plot", "humour", "finale"]


def distinct_texts(n: int) -> list[str]:
    """n different reviews of different lengths, so that each has its own probabilities."""
    texts = []
    for i in range(n):
        a, b = ADJECTIVES[i % 10], ADJECTIVES[(i // 10) % 10]
        texts.append(f"the {NOUNS[i % 10]} is {a} and the {NOUNS[(i * 3 + 1) % 10]} is {b}" + " really" * (i % 7))
    assert len(set(texts)) == n
    return texts


def qa_pair(i: int) -> dict:
    town, keeper = f"Port {chr(65 + i % 26)}{i}", f"Captain Number{i}"
    context = f"The lighthouse of {town} is old. Its keeper is {keeper}, who has lived there for {i + 2} years."
    return {"question": f"How many years has the keeper of {town} lived there?", "context": context}


def task_handle(task: str):
    """The task's ingress deployment in the main test deployment (stats and describe, not requests)."""
    return serve.get_deployment_handle(TASKS[task].deployment, app_name=MAIN_APPS[task])


def batch_sizes(task: str) -> dict[int, int]:
    handle = task_handle(task)
    return {int(k): v for k, v in handle.stats.remote().result()["batch_sizes"].items()}


def new_batches(before: dict[int, int], after: dict[int, int]) -> dict[int, int]:
    return {size: after[size] - before.get(size, 0) for size in after if after[size] > before.get(size, 0)}


async def post_all(url: str, path: str, bodies: list[dict], headers: dict | None = None) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=len(bodies))
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits, headers=headers) as http:
        return await asyncio.gather(*(http.post(path, json=body) for body in bodies))


CONCURRENT = 60  # about 1,000 tokens: well under what the test app's admission limit (0.5 s of work) admits


def test_concurrent_sentiment_requests_each_get_their_own_answer(service_url, sentiment_engine):
    texts = distinct_texts(CONCURRENT)
    # The answer each text gets alone, from the engine in this process (fp32, like the test service).
    alone = {text: sentiment_engine.classify_texts([text])[0] for text in texts}
    before = batch_sizes("sentiment")
    replies = asyncio.run(post_all(service_url, "/v1/sentiment", [{"text": t} for t in texts]))
    batches = new_batches(before, batch_sizes("sentiment"))

    assert [r.status_code for r in replies] == [200] * CONCURRENT
    for text, reply in zip(texts, replies, strict=True):
        result = reply.json()["results"][0]
        assert result["tokens"] == alone[text].tokens
        assert result["label"] == alone[text].label
        for label, p in alone[text].probabilities.items():
            assert result["probabilities"][label] == pytest.approx(p, abs=1e-4), text
    assert max(batches) > 1, f"no batching under {CONCURRENT} concurrent requests: {batches}"
    assert sum(size * count for size, count in batches.items()) == CONCURRENT


def test_concurrent_qa_answers_come_from_their_own_context(client, service_url):
    bodies = [qa_pair(i) for i in range(60)]
    alone = [client.post("/v1/qa", json=body).json()["results"][0]["answers"][0] for body in bodies[:10]]
    before = batch_sizes("qa")
    replies = asyncio.run(post_all(service_url, "/v1/qa", bodies))
    assert max(new_batches(before, batch_sizes("qa"))) > 1
    for i, (body, reply) in enumerate(zip(bodies, replies, strict=True)):
        assert reply.status_code == 200
        answer = reply.json()["results"][0]["answers"][0]
        assert body["context"][answer["start"] : answer["end"]] == answer["text"]
        if i < len(alone):
            assert answer["text"] == alone[i]["text"]
            assert answer["score"] == pytest.approx(alone[i]["score"], abs=1e-4)


def test_clients_that_disconnect_do_not_hurt_the_replica(client, service_url):
    async def impatient() -> int:
        async with httpx.AsyncClient(base_url=service_url, timeout=0.05) as http:
            bodies = [{"text": t} for t in distinct_texts(50)]
            posts = (http.post("/v1/sentiment", json=b) for b in bodies)
            outcomes = await asyncio.gather(*posts, return_exceptions=True)
            return sum(isinstance(o, httpx.TimeoutException) for o in outcomes)

    asyncio.run(impatient())
    reply = client.post("/v1/sentiment", json={"text": "still standing, and still good"})
    assert reply.status_code == 200
    assert client.get("/readyz").status_code == 200
