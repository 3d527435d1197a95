"""The HTTP API on real Ray Serve: right answers, the documented shapes, one error envelope for all bad input."""

from __future__ import annotations

import json

import pytest

from tests.service.conftest import TIGHT_AUTH

pytestmark = pytest.mark.integration

CONTEXT = (
    "The Amazon rainforest covers much of the Amazon basin of South America. "
    "Four nations have the largest shares: Brazil holds about sixty percent, followed by Peru and Colombia. "
    "The forest was named by the Spanish explorer Francisco de Orellana in 1542."
)


def test_liveness_readiness_and_models(client):
    assert client.get("/healthz").json() == {"status": "ok", "checks": {}}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"sentiment": "ok", "qa": "ok"}
    models = {m["task"]: m for m in client.get("/v1/models").json()["models"]}
    assert set(models) == {"sentiment", "qa"}
    assert models["sentiment"]["labels"] == ["negative", "positive"]
    assert models["sentiment"]["precision"] == "fp32"
    assert models["qa"]["max_tokens"] == 384  # the QA window (max_seq_len)


def test_every_model_links_its_section_of_the_model_card(client):
    """The card served over HTTP has a section for each model version loaded: a retrained artifact without one fails."""
    models = client.get("/v1/models").json()["models"]
    assert models
    card = client.get("/v1/models/card")
    assert card.status_code == 200, card.text
    assert card.headers["content-type"] == "text/markdown; charset=utf-8"
    for model in models:
        assert model["card"] == f"/v1/models/card#{model['id']}-{model['version']}"
        assert f'id="{model["id"]}-{model["version"]}"' in card.text, model["card"]
    assert "/v1/models/card" in client.get("/openapi.json").json()["paths"]


def test_model_card_links_follow_the_path_prefix(client):
    models = client.get("/tight/v1/models", headers=TIGHT_AUTH).json()["models"]
    assert models and all(m["card"].startswith("/tight/v1/models/card#") for m in models)
    assert client.get("/tight/v1/models/card", headers=TIGHT_AUTH).status_code == 200


def test_openapi_documents_both_tasks(client):
    spec = client.get("/openapi.json").json()
    assert {"/v1/sentiment", "/v1/qa", "/v1/models", "/healthz", "/readyz"} <= set(spec["paths"])
    assert "422" in spec["paths"]["/v1/sentiment"]["post"]["responses"]
    assert client.get("/docs").status_code == 200


def test_sentiment_labels_and_order(client):
    texts = ["a warm, funny and beautifully acted film", "a dull, lifeless and badly written mess"]
    reply = client.post("/v1/sentiment", json={"text": texts}, headers={"X-Request-ID": "req-123"})
    assert reply.status_code == 200
    assert reply.headers["x-request-id"] == "req-123"
    body = reply.json()
    assert body["model"]["id"] == "minilm-l6-sentiment"
    assert [r["label"] for r in body["results"]] == ["positive", "negative"]
    for result in body["results"]:
        assert sum(result["probabilities"].values()) == pytest.approx(1, abs=1e-5)
        assert result["truncated"] is False
        assert "attention" not in result or result["attention"] is None


def test_sentiment_matches_the_engine(client, sentiment_engine):
    text = "not the best film of the year, but a solid and often touching one"
    served = client.post("/v1/sentiment", json={"text": text}).json()["results"][0]
    local = sentiment_engine.classify_texts([text])[0]
    assert served["label"] == local.label
    for label, probability in local.probabilities.items():
        assert served["probabilities"][label] == pytest.approx(probability, abs=1e-4)


def test_qa_matches_the_engine(client, qa_engine):
    """The service scores windows in its own batches and puts answers together with the engine's assemble: the
    same answers, scores, no-answer score and attention map as QAEngine.answer on its own."""
    context = ("The Amazon rainforest covers much of the Amazon basin of South America. " * 3 + "The forest was named "
               "by the Spanish explorer Francisco de Orellana in 1542. ") * 12  # several windows  # fmt: skip
    question = "Who named the forest?"
    body = {"question": question, "context": context, "top_k": 3, "doc_stride": 64, "return_attention": True,
            "handle_impossible_answer": True}  # fmt: skip
    served = client.post("/v1/qa", json=body).json()["results"][0]
    item = qa_engine.encode(question, context, doc_stride=64)
    local = qa_engine.answer([item], [3], [15], [True], [True]).results[0]
    assert served["windows"] == local.windows > 1
    assert [(a["text"], a["start"], a["end"]) for a in served["answers"]] == [
        (a.text, a.start, a.end) for a in local.answers
    ]
    for got, want in zip(served["answers"], local.answers, strict=True):
        assert got["score"] == pytest.approx(want.score, abs=1e-4)
    assert served["no_answer_score"] == pytest.approx(local.no_answer_score, abs=1e-4)
    assert served["attention"]["rollout"] == pytest.approx(local.attention.rollout, abs=1e-4)


def test_long_text_is_truncated_and_says_so(client):
    text = "a fine film. " * 400
    result = client.post("/v1/sentiment", json={"text": text}).json()["results"][0]
    assert result["truncated"] is True
    assert result["tokens"] == 512


def test_sentiment_attention_maps_back_to_the_text(client):
    text = "Ünïcode café — 東京 🎬 was wonderful"
    result = client.post("/v1/sentiment", json={"text": text, "return_attention": True}).json()["results"][0]
    attention = result["attention"]
    assert attention["query"] == "cls"
    assert len(attention["layers"]) == 6
    for layer in attention["layers"]:
        assert len(layer) == len(attention["tokens"])
        assert sum(layer) == pytest.approx(1, abs=1e-3)
    words = [text[t["start"] : t["end"]] for t in attention["tokens"] if t["source"] == "text"]
    assert "wonderful" in words and "東" in words


def test_qa_answer_is_a_slice_of_the_context(client):
    reply = client.post(
        "/v1/qa", json={"question": "Who named the forest?", "context": CONTEXT, "top_k": 3, "return_attention": True}
    )
    assert reply.status_code == 200
    result = reply.json()["results"][0]
    assert 1 <= len(result["answers"]) <= 3
    scores = [a["score"] for a in result["answers"]]
    assert scores == sorted(scores, reverse=True)
    for answer in result["answers"]:
        assert CONTEXT[answer["start"] : answer["end"]] == answer["text"]
    assert result["attention"]["query"] == "answer"
    assert result["windows"] == 1


def test_qa_finds_the_answer(client):
    reply = client.post("/v1/qa", json={"question": "In which year was the forest named?", "context": CONTEXT})
    assert reply.json()["results"][0]["answers"][0]["text"] == "1542"


def test_qa_long_context_spans_windows(client):
    filler = " ".join(f"Sentence number {i} says nothing about rivers." for i in range(200))
    context = filler + " The longest river in the valley is the Saramac. " + filler
    reply = client.post("/v1/qa", json={"question": "What is the longest river in the valley?", "context": context})
    result = reply.json()["results"][0]
    assert result["windows"] > 3
    best = result["answers"][0]
    assert context[best["start"] : best["end"]] == best["text"]
    assert "Saramac" in best["text"]


def test_qa_batch_form_answers_like_single_requests(client):
    inputs = [
        {"question": "Which country holds about sixty percent?", "context": CONTEXT},
        {"question": "Who named the forest?", "context": CONTEXT},
    ]
    results = client.post("/v1/qa", json={"inputs": inputs}).json()["results"]
    assert len(results) == 2
    for pair, result in zip(inputs, results, strict=True):
        alone = client.post("/v1/qa", json=pair).json()["results"][0]
        assert result["answers"][0]["text"] == alone["answers"][0]["text"]
        assert result["answers"][0]["score"] == pytest.approx(alone["answers"][0]["score"], abs=1e-4)
    assert "Orellana" in results[1]["answers"][0]["text"]


NO_ANSWER_QUESTIONS = ["Who named the forest?", "What is the boiling point of mercury?"]


def _qa(client, **body) -> list[dict]:
    reply = client.post("/v1/qa", json=body)
    assert reply.status_code == 200, reply.text
    return reply.json()["results"]


def test_qa_no_answer_option(client):
    """handle_impossible_answer over HTTP, for any model: off, never an empty answer and no null score; on, the
    empty answer {"text": "", "start": 0, "end": 0} ranks by the reported null score among the same spans."""
    pairs = [{"question": q, "context": CONTEXT} for q in NO_ANSWER_QUESTIONS]
    together = _qa(client, inputs=pairs, top_k=2, handle_impossible_answer=True, return_attention=True)
    for pair, on_batched in zip(pairs, together, strict=True):
        (off,) = _qa(client, **pair, top_k=2)
        (on,) = _qa(client, **pair, top_k=2, handle_impossible_answer=True)
        assert off["no_answer_score"] is None and all(a["text"] for a in off["answers"])
        null = on["no_answer_score"]
        assert isinstance(null, float) and 0 < null <= 1
        expected = sorted(
            [*off["answers"], {"text": "", "score": null, "start": 0, "end": 0}], key=lambda a: -a["score"]
        )
        assert [(a["text"], a["start"], a["end"]) for a in on["answers"]] == [
            (a["text"], a["start"], a["end"]) for a in expected[:2]
        ]
        assert [a["score"] for a in on["answers"]] == pytest.approx([a["score"] for a in expected[:2]], abs=1e-4)
        for answer in on["answers"]:
            assert CONTEXT[answer["start"] : answer["end"]] == answer["text"]
        # The batch form answers each pair as alone; attention comes from [CLS] exactly when "no answer" leads.
        assert [a["text"] for a in on_batched["answers"]] == [a["text"] for a in on["answers"]]
        assert on_batched["no_answer_score"] == pytest.approx(null, abs=1e-4)
        null_wins = on_batched["answers"][0]["text"] == ""
        assert on_batched["attention"]["query"] == ("cls" if null_wins else "answer")
        if null_wins:
            assert all(null > a["score"] for a in off["answers"])


def test_openapi_documents_the_no_answer_option(client):
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    option = schemas["QARequest"]["properties"]["handle_impossible_answer"]
    assert option["type"] == "boolean" and option["default"] is False
    assert "no answer" in option["description"] and "no_answer_score" in option["description"]
    assert "no_answer_score" in schemas["QAResult"]["properties"]


BAD_REQUESTS = [
    # (name, method, path, kwargs, status, code)
    ("malformed json", "POST", "/v1/sentiment", {"content": b'{"text": "x"', "json_ct": True}, 400, "malformed_json"),
    ("wrong content type", "POST", "/v1/sentiment", {"content": b"text=hi", "ct": "text/plain"}, 415,
     "unsupported_media_type"),
    ("missing field", "POST", "/v1/sentiment", {"json": {}}, 422, "invalid_request"),
    ("extra field", "POST", "/v1/sentiment", {"json": {"text": "hi", "colour": 1}}, 422, "invalid_request"),
    ("wrong type", "POST", "/v1/sentiment", {"json": {"text": 42}}, 422, "invalid_request"),
    ("empty text", "POST", "/v1/sentiment", {"json": {"text": ""}}, 422, "empty_input"),
    ("whitespace text", "POST", "/v1/sentiment", {"json": {"text": " \n\t "}}, 422, "empty_input"),
    ("empty list", "POST", "/v1/sentiment", {"json": {"text": []}}, 422, "invalid_request"),
    ("too many items", "POST", "/v1/sentiment", {"json": {"text": ["ok"] * 65}}, 422, "invalid_request"),
    ("text over the limit", "POST", "/v1/sentiment", {"json": {"text": "a" * 100_001}}, 422, "input_too_long"),
    ("json array body", "POST", "/v1/sentiment", {"json": ["hi"]}, 422, "invalid_request"),
    ("qa without context", "POST", "/v1/qa", {"json": {"question": "why?"}}, 422, "invalid_request"),
    ("qa both forms", "POST", "/v1/qa",
     {"json": {"question": "a?", "context": "b", "inputs": [{"question": "a?", "context": "b"}]}}, 422,
     "invalid_request"),
    ("qa empty question", "POST", "/v1/qa", {"json": {"question": "  ", "context": "text"}}, 422, "empty_input"),
    ("qa question too long", "POST", "/v1/qa", {"json": {"question": "why " * 100, "context": "text"}}, 422,
     "question_too_long"),
    ("qa context too long", "POST", "/v1/qa", {"json": {"question": "why?", "context": "word " * 19_000}}, 422,
     "context_too_long"),
    ("qa top_k zero", "POST", "/v1/qa", {"json": {"question": "a?", "context": "b", "top_k": 0}}, 422,
     "invalid_request"),
    ("qa no-answer option not a bool", "POST", "/v1/qa",
     {"json": {"question": "a?", "context": "b", "handle_impossible_answer": 1}}, 422, "invalid_request"),
    ("qa nan stride", "POST", "/v1/qa", {"content": b'{"question":"a?","context":"b","doc_stride":NaN}',
     "json_ct": True}, 422, "invalid_request"),
    ("body over the limit", "POST", "/v1/sentiment", {"json": {"text": "a" * (9 * 1024 * 1024)}}, 413,
     "payload_too_large"),
    ("unknown route", "GET", "/v2/nothing", {}, 404, "not_found"),
    ("wrong method", "GET", "/v1/sentiment", {}, 405, "method_not_allowed"),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path", "kwargs", "status", "code"), [b[1:] for b in BAD_REQUESTS],
                         ids=[b[0] for b in BAD_REQUESTS])  # fmt: skip
def test_bad_input_gets_a_clear_error(client, method, path, kwargs, status, code):
    kwargs = dict(kwargs)
    headers = {"X-Request-ID": f"bad-{code}"}
    if kwargs.pop("json_ct", False):
        headers["Content-Type"] = "application/json"
    if "ct" in kwargs:
        headers["Content-Type"] = kwargs.pop("ct")
    reply = client.request(method, path, headers=headers, **kwargs)
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"].startswith("application/json")
    error = reply.json()["error"]
    assert error["code"] == code
    assert error["message"]
    assert error["request_id"] == f"bad-{code}"
    assert reply.headers["x-request-id"] == f"bad-{code}"
    assert "Traceback" not in reply.text


def test_wrong_method_says_which_methods_are_allowed(client):
    reply = client.get("/v1/sentiment")
    assert reply.status_code == 405
    assert reply.headers["allow"] == "POST"  # RFC 9110: a 405 lists what the resource supports


def test_schema_errors_name_the_field(client):
    error = client.post("/v1/sentiment", json={"text": ["fine", 7]}).json()["error"]
    assert any(d["field"] and d["field"].startswith("text") for d in error["details"])
    error = client.post("/v1/sentiment", json={"text": ["fine", "   "]}).json()["error"]
    assert error["details"][0]["field"] == "text.1"


def test_request_id_is_made_when_absent(client):
    reply = client.post("/v1/sentiment", json={"text": "fine"})
    assert len(reply.headers["x-request-id"]) >= 16


def test_invalid_utf8_is_a_client_error(client):
    reply = client.post("/v1/sentiment", content=b'{"text": "\xff\xfe"}', headers={"Content-Type": "application/json"})
    assert reply.status_code == 400
    assert json.loads(reply.text)["error"]["code"] == "malformed_json"


def test_logs_carry_request_ids_and_never_the_text(client):
    import time
    from pathlib import Path

    import ray

    secret = "zebraquokka wonderful"
    client.post("/v1/sentiment", json={"text": secret}, headers={"X-Request-ID": "log-check-1"})
    client.post("/v1/qa", json={"question": "zebraquokka?", "context": secret}, headers={"X-Request-ID": "log-check-2"})
    time.sleep(1)
    log_dir = Path(ray._private.worker._global_node.get_logs_dir_path()) / "serve"
    logs = {path.name: path.read_text(errors="replace") for path in log_dir.glob("*.log")}
    assert not [name for name, text in logs.items() if "zebraquokka" in text], "request text reached a log"
    access = [
        json.loads(line)
        for name, text in logs.items()
        if name.startswith("replica_attention-serve-") and "Ingress" in name
        for line in text.splitlines()
        if line.startswith("{") and "log-check-" in line
    ]
    lines = {entry.get("request_id"): entry for entry in access if "latency_ms" in entry}
    assert lines["log-check-1"]["task"] == "sentiment" and lines["log-check-1"]["status"] == 200
    assert lines["log-check-2"]["task"] == "qa" and lines["log-check-2"]["latency_ms"] > 0
