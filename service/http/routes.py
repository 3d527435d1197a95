"""The API's routes, as routers built by factories: each application includes the routes it serves, and the
front application builds all of them once more, without models, for the one OpenAPI document of the whole API.

Everything a request can get wrong is found here, before anything is queued: schema (pydantic), size limits,
empty text, over-long questions. Only work the model can do reaches the batch queue, so one bad input never
fails a batch.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from fastapi import APIRouter, FastAPI, Response
from fastapi.responses import JSONResponse

from service import __version__
from service.serving.batcher import Timing
from service.engine.errors import InputError
from service.http.edge import Edge, EdgeMiddleware
from service.http.errors import (
    ERROR_RESPONSES,
    ApiError,
    GatewayTimeout,
    InvalidInput,
    InvalidRequest,
    NotFound,
    Overloaded,
    Unavailable,
    install_error_handlers,
)
from service.http.explorer import DOCS_LINK
from service.protocol import (
    CARD_ROUTE,
    ErrorDetail,
    ErrorResponse,
    Health,
    ModelsResponse,
    QARequest,
    QAResponse,
    SentimentRequest,
    SentimentResponse,
)
from service.settings import SOURCE_MODEL_CARD, Settings
from service.serving.worker import QAWorker, SentimentWorker

T = TypeVar("T")
DESCRIPTION = "Sentiment and extractive QA with a BERT-family encoder; attention weights on request. " + DOCS_LINK


def api_app(settings: Settings, edge: Edge, *routers: APIRouter) -> FastAPI:
    """A FastAPI app behind the HTTP edge, with the error envelope: what every application serves."""
    app = FastAPI(title="attention-serve", version=__version__, description=DESCRIPTION)
    for router in routers:
        app.include_router(router)
    install_error_handlers(app, settings)
    app.add_middleware(EdgeMiddleware, edge=edge)
    return app


class QueueAdmission:
    """Refuse a task request when the work queued ahead of it would make it wait past the task's limit:
    max_queue_wait_s, or overload_queue_wait_s while the queue stands (service/serving/admission.py). The accepted
    requests' latency stays bounded, however many more arrive. It also tells the batch queue how many admitted
    requests are still on their way to it (reading, parsing, tokenizing), so a batch waits for company only when
    company is coming."""

    def __init__(self, worker: Callable[[], SentimentWorker | QAWorker]) -> None:
        self._worker = worker

    def admit(self) -> ApiError | None:
        worker = self._worker()
        wait = worker.batcher.expected_wait_s()
        limit = worker.admission_limit(wait)
        if wait > limit:
            normal = worker.batching.max_queue_wait_s
            why = f"limit {limit:g} s" if limit == normal else f"limit {limit:g} s while overloaded, else {normal:g} s"
            return Overloaded(f"about {wait:.2f} s of work is queued on this replica ({why}); retry later")
        worker.batcher.announce()
        return None

    def release(self) -> None:
        self._worker().batcher.withdraw()


def _server_timing(tokenize_s: float, timing: Timing) -> str:
    """Where the request's time went, as the `Server-Timing` header says it (milliseconds)."""
    return (
        f"tokenize;dur={tokenize_s * 1000:.1f}, queue;dur={timing.queue_s * 1000:.1f}, "
        f"inference;dur={timing.inference_s * 1000:.1f}"
    )


async def _within_timeout(settings: Settings, work: Awaitable[T]) -> T:
    """The model's answer, or 504 past request_timeout_s (the request's queued jobs are then dropped)."""
    try:
        return await asyncio.wait_for(work, timeout=settings.request_timeout_s)
    except TimeoutError:
        raise GatewayTimeout(f"no answer within {settings.request_timeout_s} s") from None
    except ApiError:
        raise
    except Exception as exc:  # the batch this request was in failed: a clean 503, the cause in the log
        raise Unavailable(f"the model could not answer ({type(exc).__name__}); retry later") from exc


def _too_long(field: str, length: int, limit: int) -> InvalidRequest:
    return InvalidRequest(
        f"{field} is {length} characters; the limit is {limit}",
        [ErrorDetail(field=field, message=f"at most {limit} characters")],
        code="input_too_long",
    )


def _input_error(exc: InputError, field: str | None = None) -> InvalidInput:
    field = field if field is not None else exc.field
    return InvalidInput(exc.message, [ErrorDetail(field=field, message=exc.message)], code=exc.code)


def _worker_missing() -> SentimentWorker | QAWorker:
    raise Unavailable("this application does not serve that task")


def sentiment_router(settings: Settings, worker: Callable[[], SentimentWorker] = _worker_missing) -> APIRouter:
    router = APIRouter()

    @router.post("/v1/sentiment", response_model=SentimentResponse, responses=ERROR_RESPONSES)
    async def sentiment(body: SentimentRequest, response: Response) -> SentimentResponse:
        model = worker()
        began = time.perf_counter()
        texts = body.texts()
        if not texts or len(texts) > settings.max_items_per_request:
            raise InvalidRequest(
                f"text must hold 1 to {settings.max_items_per_request} items, got {len(texts)}",
                [ErrorDetail(field="text", message="wrong number of items")],
            )
        items = []
        for i, text in enumerate(texts):
            field = "text" if isinstance(body.text, str) else f"text.{i}"
            if len(text) > settings.max_text_chars:
                raise _too_long(field, len(text), settings.max_text_chars)
            try:
                items.append(model.encode(text, field))
            except InputError as exc:
                raise _input_error(exc) from None
        tokenize_s = time.perf_counter() - began
        model.metrics.accepted(len(items), body.return_attention)
        results, timing = await _within_timeout(settings, model.classify(items, body.return_attention))
        response.headers["Server-Timing"] = _server_timing(tokenize_s, timing)
        return SentimentResponse(model=model.model_ref(), results=results)

    return router


def qa_router(settings: Settings, worker: Callable[[], QAWorker] = _worker_missing) -> APIRouter:
    router = APIRouter()

    @router.post("/v1/qa", response_model=QAResponse, responses=ERROR_RESPONSES)
    async def qa(body: QARequest, response: Response) -> QAResponse:
        model = worker()
        began = time.perf_counter()
        pairs = body.pairs()
        if len(pairs) > settings.max_items_per_request:
            raise InvalidRequest(
                f"inputs must hold at most {settings.max_items_per_request} items, got {len(pairs)}",
                [ErrorDetail(field="inputs", message="too many items")],
            )
        items = []
        for i, pair in enumerate(pairs):
            prefix = "" if body.inputs is None else f"inputs.{i}."
            if len(pair.question) > settings.max_question_chars:
                raise _too_long(prefix + "question", len(pair.question), settings.max_question_chars)
            if len(pair.context) > settings.max_context_chars:
                raise _too_long(prefix + "context", len(pair.context), settings.max_context_chars)
            try:
                items.append(
                    model.encode(
                        pair.question,
                        pair.context,
                        max_seq_len=settings.max_seq_len,
                        doc_stride=body.doc_stride,
                        max_question_len=settings.max_question_len,
                        max_windows=settings.max_windows,
                    )
                )
            except InputError as exc:
                raise _input_error(exc, prefix + (exc.field or "")) from None
        tokenize_s = time.perf_counter() - began
        model.metrics.accepted(len(items), body.return_attention)
        work = model.answer(
            items, body.top_k, body.max_answer_len, body.return_attention, body.handle_impossible_answer
        )
        results, timing = await _within_timeout(settings, work)
        response.headers["Server-Timing"] = _server_timing(tokenize_s, timing)
        return QAResponse(model=model.model_ref(), results=results)

    return router


Describe = Callable[[], Awaitable[ModelsResponse]]
Ready = Callable[[], Awaitable[dict[str, str]]]


CARD_RESPONSES: dict[int | str, dict] = {
    200: {"content": {"text/markdown": {"schema": {"type": "string"}}}, "description": "The model card (Markdown)"},
    404: {"model": ErrorResponse, "description": "No model card where the service looks (the message says where)"},
}


def front_router(models: Describe, readiness: Ready, card_file: Path = SOURCE_MODEL_CARD) -> APIRouter:
    """Liveness, readiness and what is loaded: served beside the task applications, asking them."""
    router = APIRouter()

    @router.get("/v1/models", response_model=ModelsResponse)
    async def models_route() -> ModelsResponse:
        return await models()

    @router.get(CARD_ROUTE, response_class=Response, responses=CARD_RESPONSES)
    def model_card() -> Response:
        """The model card: how each model version was trained and how it scores. Each model's `card` in
        /v1/models links to its version's section. Read on each request, so an updated card needs no restart."""
        try:
            text = card_file.read_bytes()
        except OSError as exc:  # missing or unreadable: the operator's to fix, not a server error
            raise NotFound(f"no model card at {card_file} ({exc.strerror or type(exc).__name__})") from None
        return Response(text, media_type="text/markdown; charset=utf-8")

    @router.get("/healthz", response_model=Health)
    async def healthz() -> Health:
        """Liveness: this process answers HTTP."""
        return Health(status="ok")

    @router.get("/readyz", response_model=Health, responses={503: {"model": Health}})
    async def readyz():
        """Readiness: every task's model runs a tiny forward pass in time."""
        checks = await readiness()
        ready = all(v == "ok" for v in checks.values())
        health = Health(status="ok" if ready else "unavailable", checks=checks)
        return JSONResponse(health.model_dump(), status_code=200 if ready else 503)

    return router
