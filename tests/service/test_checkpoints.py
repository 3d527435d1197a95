"""Users' own checkpoints, served: a tiny random checkpoint of every supported family for each task, all at once
under /zoo (tests/service/conftest.py), each request answered by the model it names, as transformers answers.

The checkpoints are saved with `save_pretrained` beside tokenizers trained offline (tests/families/tiny.py), with
three labels of mixed case; the service loads them from their directories as a user's would be loaded.
"""

from __future__ import annotations

import asyncio
import random

import httpx
import pytest

from tests.families.tiny import LABELS

transformers = pytest.importorskip("transformers", reason="transformers is a test dependency (pip install .[test])")
pytestmark = pytest.mark.integration

TEXTS = ["A gorgeous, moving film.", "The Eiffel Tower was finished in 1889 and stands in Paris.", "naïve café 東京"]
QA = [
    ("When was the tower finished?", "The Eiffel Tower was finished in 1889 and stands in Paris."),
    ("Who won two prizes?", "Marie Curie won two Nobel prizes, in physics and in chemistry. " * 12),
]


@pytest.fixture(scope="module")
def pipelines(zoo):
    """transformers' pipelines on the very directories the service serves."""
    return {
        ("sentiment", family): transformers.pipeline("text-classification", model=d, top_k=None, device="cpu")
        for family, d in zoo["sentiment"].items()
    } | {
        ("qa", family): transformers.pipeline("question-answering", model=d, device="cpu")
        for family, d in zoo["qa"].items()
    }


def test_models_lists_every_model_with_its_family_and_real_labels(client, zoo):
    models = client.get("/zoo/v1/models").json()["models"]
    for task, served in zoo.items():
        listed = [m for m in models if m["task"] == task]
        assert [m["id"] for m in listed] == list(served)  # in the configured order
        assert [m["default"] for m in listed] == [True] + [False] * (len(served) - 1)
        assert len({m["family"] for m in listed}) >= len(served) - 1  # RoBERTa and XLM-R share a family
        for m in listed:
            assert m["labels"] == (list(LABELS.values()) if task == "sentiment" else [])
            assert m["multi_label"] is False
            assert 0 < m["load_s"] < 60  # what a cold model costs, measured when the replica loaded it


@pytest.mark.parametrize(
    "family", ["bert", "distilbert", "roberta", "xlm-roberta", "electra", "deberta-v2", "modernbert"]
)
def test_each_family_answers_as_transformers_does(client, zoo, pipelines, family):
    if family not in zoo["sentiment"]:
        pytest.fail(f"{family} is not in the zoo")
    reply = client.post("/zoo/v1/sentiment", json={"text": TEXTS, "model": family})
    assert reply.status_code == 200, reply.text
    assert reply.json()["model"]["id"] == family
    for text, result in zip(TEXTS, reply.json()["results"], strict=True):
        expected = {row["label"]: row["score"] for row in pipelines["sentiment", family]([text])[0]}
        assert set(result["probabilities"]) == set(LABELS.values())
        for label, score in expected.items():
            assert result["probabilities"][label] == pytest.approx(score, abs=3e-3)
        assert result["label"] == max(expected, key=expected.get)
    for question, context in QA:
        body = {"question": question, "context": context, "model": family, "doc_stride": 32}
        reply = client.post("/zoo/v1/qa", json=body)
        assert reply.status_code == 200, reply.text
        best = reply.json()["results"][0]["answers"][0]
        expected = pipelines["qa", family](question=question, context=context, max_seq_len=384, doc_stride=32)
        assert (best["text"], best["start"], best["end"]) == (expected["answer"], expected["start"], expected["end"])


def test_concurrent_requests_to_different_models_each_get_their_own_models_answer(service_url, zoo):
    """Requests for every model at once share the replica's model thread; a batch never mixes models, so each
    answer is the one its model gives alone."""
    families = list(zoo["sentiment"])
    with httpx.Client(base_url=service_url, timeout=60) as http:
        alone = {
            (family, text): http.post("/zoo/v1/sentiment", json={"text": text, "model": family}).json()["results"][0]
            for family in families
            for text in TEXTS
        }
    asks = [(family, text) for family in families for text in TEXTS] * 3
    random.Random(7).shuffle(asks)

    async def ask_all():
        async with httpx.AsyncClient(base_url=service_url, timeout=60) as http:
            return await asyncio.gather(
                *(http.post("/zoo/v1/sentiment", json={"text": text, "model": family}) for family, text in asks)
            )

    replies = asyncio.run(ask_all())
    for (family, text), reply in zip(asks, replies, strict=True):
        assert reply.status_code == 200, reply.text
        assert reply.json()["model"]["id"] == family
        got = reply.json()["results"][0]["probabilities"]
        assert got == pytest.approx(alone[family, text]["probabilities"], abs=1e-4)


def test_a_model_the_task_does_not_serve_is_a_422_naming_the_ones_it_does(client, zoo):
    reply = client.post("/zoo/v1/sentiment", json={"text": "fine", "model": "gpt2"})
    assert reply.status_code == 422
    error = reply.json()["error"]
    assert error["code"] == "model_not_found" and error["details"][0]["field"] == "model"
    assert all(repr(family) in error["message"] for family in zoo["sentiment"])


def test_requests_naming_no_model_get_the_first(client, zoo):
    first = next(iter(zoo["qa"]))
    reply = client.post("/zoo/v1/qa", json={"question": QA[0][0], "context": QA[0][1]})
    assert reply.status_code == 200 and reply.json()["model"]["id"] == first
