"""The HTTP edge and the task routes in one process, without Ray: every status the contract promises.

The app is the one a sentiment replica serves (`api_app` with `Edge.for_replica` and `sentiment_router`), driven
through httpx's ASGI transport. Its models are fakes: `FakeModels` and `FakeWorker` stand in for
service/serving/models.py's TaskModels (`get`, `acquire`, `late`) and worker.py's SentimentWorker (`prepare`, `run`,
`model_ref`), because a real worker needs a model loaded; the routes and the edge are the real code. The real worker
behind the same routes is tested in tests/service (a Ray Serve instance), the batch queue in tests/serving.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import httpx
import pytest

from service.engine.errors import EmptyInputError
from service.engine.results import SentimentResult
from service.http.edge import Edge
from service.http.routes import api_app, sentiment_router
from service.protocol import ModelRef, SentimentRequest
from service.serving.batcher import BatchFailed, Timing
from service.serving.models import UnknownModelError
from service.settings import Settings

KEY = "edge-test-key-0c1d"
JSON = {"Content-Type": "application/json"}


class FakeWorker:
    """A SentimentWorker without a model: `prepare` refuses blank text as the tokenizer does, `run` answers every
    text positive after `fail` (an exception to raise instead) is checked."""

    def __init__(self) -> None:
        self.fail: BaseException | None = None
        self.ran: list[list[str]] = []

    def prepare(self, body: SentimentRequest) -> list[str]:
        texts = body.texts()
        if any(not text.strip() for text in texts):
            raise EmptyInputError("text is empty or whitespace", "text")
        return texts

    async def run(self, work: list[str]) -> tuple[list[SentimentResult], Timing]:
        if self.fail is not None:
            raise self.fail
        self.ran.append(work)
        results = [SentimentResult("positive", {"negative": 0.1, "positive": 0.9}, False, 3) for _ in work]
        return results, Timing(queue_s=0.004, inference_s=0.012)

    def model_ref(self) -> ModelRef:
        return ModelRef(id="fake", version="1")


class FakeModels:
    """A TaskModels serving one model, "fake", loaded; `lateness` is why a prepared request would be answered past
    its deadline (None: it would not)."""

    def __init__(self) -> None:
        self.worker = FakeWorker()
        self.lateness: str | None = None
        self.deadlines: list[float] = []

    def get(self, model_id: str | None) -> FakeWorker:
        if model_id not in (None, "fake"):
            raise UnknownModelError(f"no sentiment model {model_id!r}; this service serves 'fake'", "model")
        return self.worker

    async def acquire(self, model_id: str | None) -> FakeWorker:
        return self.get(model_id)

    def late(self, worker: FakeWorker, work: object, deadline_s: float) -> str | None:
        self.deadlines.append(deadline_s)
        return self.lateness


class FakeAdmission:
    """Admits while `refusal` is None; counts admissions and releases (every admitted request must be released)."""

    def __init__(self) -> None:
        self.refusal: str | None = None
        self.admitted = self.released = 0
        self.deadlines: list[float] = []

    def admit(self, deadline_s: float) -> str | None:
        self.deadlines.append(deadline_s)
        if self.refusal is None:
            self.admitted += 1
        return self.refusal

    def release(self) -> None:
        self.released += 1


@pytest.fixture(autouse=True)
def _no_settings_from_the_environment(monkeypatch):
    import os

    for name in list(os.environ):
        if name.startswith("ATTENTION_SERVE_"):
            monkeypatch.delenv(name)


class Replica:
    """One sentiment replica's app, its fakes, and a client for it."""

    def __init__(self, **settings) -> None:
        self.settings = Settings(**settings)
        self.models = FakeModels()
        self.admission = FakeAdmission()
        edge = Edge.for_replica(self.settings, self.admission)
        self.app = api_app(self.settings, edge, sentiment_router(self.settings, lambda: self.models))
        # An exception the app does not handle reaches the server (which logs it) after the 500 went out: the
        # client sees the 500, as it would behind Serve.
        transport = httpx.ASGITransport(app=self.app, raise_app_exceptions=False)
        self.client = httpx.AsyncClient(transport=transport, base_url="http://replica")

    async def post(self, body: object = None, **kwargs) -> httpx.Response:
        if body is not None:
            kwargs["json"] = body
        return await self.client.post("/v1/sentiment", **kwargs)


def run(coro):
    return asyncio.run(coro)


def error(response: httpx.Response) -> dict:
    """The error envelope's body, checked to be one."""
    payload = response.json()
    assert set(payload) == {"error"}, payload
    assert {"code", "message", "details", "request_id"} <= set(payload["error"]), payload
    return payload["error"]


def test_an_answer_carries_the_model_the_results_and_where_the_time_went():
    async def main():
        replica = Replica()
        return replica, await replica.post({"text": ["fine", "good"]})

    replica, response = run(main())
    assert response.status_code == 200
    assert response.json()["model"] == {"id": "fake", "version": "1"}
    assert [r["label"] for r in response.json()["results"]] == ["positive", "positive"]
    assert replica.models.worker.ran == [["fine", "good"]]
    timing = response.headers["server-timing"]  # the route's parts and the edge's total
    assert re.search(r"tokenize;dur=[\d.]+, queue;dur=4\.0, inference;dur=12\.0", timing), timing
    assert re.search(r"total;dur=[\d.]+", timing), timing
    assert replica.admission.admitted == replica.admission.released == 1


def test_a_request_id_is_made_when_none_comes():
    async def main():
        return await Replica().post({"text": "   "})

    response = run(main())
    made = response.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    assert error(response)["request_id"] == made


def test_a_request_id_that_comes_is_the_requests_own():
    """Serve's proxy passes the client's X-Request-ID (or one it made) and returns it itself: the edge uses it, and
    does not add a second one to the response."""

    async def main():
        return await Replica().post({"text": "   "}, headers={"X-Request-ID": "client-chosen-id-42"})

    response = run(main())
    assert error(response)["request_id"] == "client-chosen-id-42"
    assert "x-request-id" not in response.headers
    assert "total;dur=" in response.headers["server-timing"]


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-API-Key": "wrong"}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}],
    ids=["none", "wrong-x-api-key", "wrong-bearer", "not-bearer"],
)
def test_without_the_right_key_401(headers):
    async def main():
        replica = Replica(api_key=KEY)
        return replica, await replica.post({"text": "fine"}, headers=headers)

    replica, response = run(main())
    assert response.status_code == 401 and error(response)["code"] == "unauthorized"
    assert response.headers["www-authenticate"] == "Bearer"
    assert replica.admission.admitted == 0 and replica.models.worker.ran == []  # refused before anything else


@pytest.mark.parametrize(
    "headers", [{"X-API-Key": KEY}, {"Authorization": f"Bearer {KEY}"}], ids=["x-api-key", "bearer"]
)
def test_with_the_key_200(headers):
    async def main():
        return await Replica(api_key=KEY).post({"text": "fine"}, headers=headers)

    assert run(main()).status_code == 200


def test_the_key_is_not_asked_outside_the_api():
    async def main():
        return await Replica(api_key=KEY).client.get("/openapi.json")

    assert run(main()).status_code == 200


async def _trickle(first: bytes, then_wait_s: float) -> AsyncIterator[bytes]:
    yield first
    await asyncio.sleep(then_wait_s)
    yield b"]}"


def test_a_body_not_all_there_within_body_timeout_s_408():
    async def main():
        replica = Replica(body_timeout_s=0.2)
        response = await replica.post(content=_trickle(b'{"text": ["fine"', 30), headers=JSON)
        return replica, response

    replica, response = run(main())
    assert response.status_code == 408 and error(response)["code"] == "body_timeout"
    assert replica.admission.admitted == replica.admission.released == 1
    assert replica.models.worker.ran == []


def test_a_body_declared_over_max_body_bytes_413():
    async def main():
        body = b'{"text": "' + b"x" * 2000 + b'"}'
        return await Replica(max_body_bytes=1024).post(content=body, headers=JSON)

    response = run(main())
    assert response.status_code == 413 and error(response)["code"] == "payload_too_large"
    assert "declared" not in response.text and "2012 bytes" in error(response)["message"]


def test_a_streamed_body_over_max_body_bytes_413():
    """A chunked body declares no length: the edge counts what arrives."""

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"text": "' + b"x" * 600
        yield b"x" * 600 + b'"}'

    async def main():
        replica = Replica(max_body_bytes=1024)
        return replica, await replica.post(content=chunks(), headers=JSON)

    replica, response = run(main())
    assert response.status_code == 413 and error(response)["code"] == "payload_too_large"
    assert "over the limit of 1024 bytes" in error(response)["message"]
    assert replica.models.worker.ran == []


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_not_json_415(content_type):
    async def main():
        headers = {"Content-Type": content_type} if content_type else {}
        return await Replica().post(content=b'{"text": "fine"}', headers=headers)

    response = run(main())
    assert response.status_code == 415 and error(response)["code"] == "unsupported_media_type"


def test_json_with_parameters_or_a_json_suffix_is_json():
    async def main():
        replica = Replica()
        body = b'{"text": "fine"}'
        return [
            await replica.post(content=body, headers={"Content-Type": content_type})
            for content_type in ("application/json; charset=utf-8", "application/vnd.api+json")
        ]

    assert [response.status_code for response in run(main())] == [200, 200]


def test_over_the_rate_limit_429_with_retry_after():
    async def main():
        # A token every 100 s: the third request finds the bucket empty however slowly the test runs.
        replica = Replica(rate_limit_per_s=0.01, rate_limit_burst=2)
        return [await replica.post({"text": "fine"}) for _ in range(3)]

    first, second, third = run(main())
    assert first.status_code == second.status_code == 200
    assert third.status_code == 429 and error(third)["code"] == "rate_limited"
    assert 90 <= int(third.headers["retry-after"]) <= 100


def test_the_rate_limit_comes_before_the_key():
    """Guessing keys is throttled too."""

    async def main():
        replica = Replica(api_key=KEY, rate_limit_per_s=0.01, rate_limit_burst=1)
        return [await replica.post({"text": "fine"}, headers={"X-API-Key": "guess"}) for _ in range(2)]

    first, second = run(main())
    assert first.status_code == 401 and second.status_code == 429


def test_refused_by_admission_503_with_retry_after():
    async def main():
        replica = Replica(retry_after_s=3)
        replica.admission.refusal = "about 2.00 s of work is queued on this replica (limit 1 s); retry later"
        return replica, await replica.post({"text": "fine"})

    replica, response = run(main())
    assert response.status_code == 503 and error(response)["code"] == "overloaded"
    assert response.headers["retry-after"] == "3"
    assert "2.00 s of work is queued" in error(response)["message"]
    assert replica.models.worker.ran == [] and replica.admission.released == 0  # never admitted


def test_a_request_that_would_be_answered_past_its_deadline_503_with_retry_after():
    """Once prepared, a request whose own work, behind the work queued, would end past its deadline is refused."""

    async def main():
        replica = Replica(request_timeout_s=20)
        replica.models.lateness = "about 30 s of work is ahead of this request (its deadline is 5 s); retry later"
        return replica, await replica.post({"text": "fine"}, headers={"X-Request-Timeout": "5"})

    replica, response = run(main())
    assert response.status_code == 503 and error(response)["code"] == "overloaded"
    assert response.headers["retry-after"] == "1"
    assert replica.admission.deadlines == [5.0] and 0 < replica.models.deadlines[0] <= 5.0  # the client's deadline
    assert replica.models.worker.ran == []


def test_a_deadline_that_is_not_a_number_of_seconds_422():
    async def main():
        return await Replica().post({"text": "fine"}, headers={"X-Request-Timeout": "soon"})

    response = run(main())
    assert response.status_code == 422 and error(response)["details"][0]["field"] == "X-Request-Timeout"


def test_an_unknown_model_is_a_422():
    async def main():
        return await Replica().post({"text": "fine", "model": "nope"})

    response = run(main())
    assert response.status_code == 422
    body = error(response)
    assert body["code"] == "model_not_found" and body["details"] == [{"field": "model", "message": body["message"]}]


def test_an_input_error_422():
    async def main():
        replica = Replica()
        return replica, await replica.post({"text": ["fine", " "]})

    replica, response = run(main())
    assert response.status_code == 422
    body = error(response)
    assert body["code"] == "empty_input" and body["details"][0]["field"] == "text"
    assert replica.models.worker.ran == []  # found before anything was queued


def test_a_request_off_the_schema_422():
    async def main():
        return await Replica().post({"text": "fine", "return_attention": 1})

    response = run(main())
    assert response.status_code == 422 and error(response)["code"] == "invalid_request"


def test_a_failed_batch_503():
    async def main():
        replica = Replica()
        failed = BatchFailed("the batch this request was in failed (RuntimeError)")
        failed.__cause__ = RuntimeError("out of memory")
        replica.models.worker.fail = failed
        return await replica.post({"text": "fine"})

    response = run(main())
    assert response.status_code == 503
    body = error(response)
    assert body["code"] == "unavailable" and "retry later" in body["message"]
    assert "out of memory" not in response.text


def test_no_answer_within_request_timeout_s_504():
    async def main():
        replica = Replica(request_timeout_s=0.2)

        async def never(_work):
            await asyncio.sleep(60)

        replica.models.worker.run = never  # type: ignore[method-assign]
        return await replica.post({"text": "fine"})

    response = run(main())
    assert response.status_code == 504 and error(response)["code"] == "timeout"


@pytest.mark.parametrize("request_id", ["bug-report-7", None], ids=["sent", "made"])
def test_any_other_exception_500_in_the_envelope_with_the_request_id(request_id, caplog):
    """A bug: the client gets the request id to report, the log has the exception under it, nobody sees the trace."""

    async def main():
        replica = Replica()
        replica.models.worker.fail = KeyError("a bug, with 'secret' details")
        headers = {"X-Request-ID": request_id} if request_id else {}
        return replica, await replica.post({"text": "fine"}, headers=headers)

    replica, response = run(main())
    assert response.status_code == 500
    body = error(response)
    assert body["code"] == "internal_error" and "secret" not in response.text and "Traceback" not in response.text
    if request_id is None:  # made here, and returned like any other answer's
        request_id = response.headers["x-request-id"]
    assert body["request_id"] == request_id
    assert "total;dur=" in response.headers["server-timing"]
    logged = [r for r in caplog.records if r.levelname == "ERROR" and request_id in r.getMessage()]
    assert logged and logged[0].exc_info and isinstance(logged[0].exc_info[1], KeyError)
    assert replica.admission.admitted == replica.admission.released == 1
