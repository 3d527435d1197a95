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

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse

from service import __version__
from service.engine.errors import InputError
from service.http.edge import Edge, EdgeMiddleware
from service.http.errors import (
    ERROR_RESPONSES,
    GatewayTimeout,
    InvalidInput,
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
from service.serving.batcher import BatchFailed, Timing
from service.serving.models import TaskModels, UnknownModelError
from service.serving.worker import total_chars
from service.settings import SOURCE_MODEL_CARD, Settings

T = TypeVar("T")
DESCRIPTION = (
    "Sentiment and extractive QA with transformer encoders (BERT, RoBERTa, DeBERTa, ModernBERT, …); attention weights "
    "on request. " + DOCS_LINK
)


def api_app(settings: Settings, edge: Edge, *routers: APIRouter) -> FastAPI:
    """A FastAPI app behind the HTTP edge, with the error envelope: what every application serves."""
    app = FastAPI(title="attention-serve", version=__version__, description=DESCRIPTION)
    for router in routers:
        app.include_router(router)
    install_error_handlers(app, settings)
    app.add_middleware(EdgeMiddleware, edge=edge)
    return app


# A request bringing more text than this is tokenized on a worker thread: 64 texts of 100k characters take about a
# second to tokenize, which on the event loop would hold up every other request of the replica (and the admission
# decisions that refuse them quickly). Below it the thread hop would cost a lone short request more than it saves.
OFF_LOOP_CHARS = 20_000


def _server_timing(tokenize_s: float, timing: Timing) -> str:
    """Where the request's time went, as the `Server-Timing` header says it (milliseconds)."""
    return (
        f"tokenize;dur={tokenize_s * 1000:.1f}, queue;dur={timing.queue_s * 1000:.1f}, "
        f"inference;dur={timing.inference_s * 1000:.1f}"
    )


async def _answer(
    settings: Settings, models: TaskModels, body: SentimentRequest | QARequest, request: Request, response: Response
):
    """The one path of a task request: pick the model, prepare (limits, tokens), run (queue, model), time it.

    Errors: bad input 422 (model_not_found for a model the task does not serve), no answer in time 504, a failed
    batch 503 (retryable: another batch may well succeed); anything else is a bug, answered 500 by the error
    handlers."""
    try:
        worker = await models.acquire(body.model)
        began = time.perf_counter()
        if total_chars(body) < OFF_LOOP_CHARS:
            work = worker.prepare(body)  # type: ignore[arg-type]
        else:
            work = await asyncio.to_thread(worker.prepare, body)  # type: ignore[arg-type]
    except (InputError, UnknownModelError) as exc:  # a model the task does not serve is bad input too: 422
        raise InvalidInput(exc.message, [ErrorDetail(field=exc.field, message=exc.message)], code=exc.code) from None
    tokenize_s = time.perf_counter() - began
    # The deadline the edge set (request_timeout_s, or the client's shorter X-Request-Timeout); without the edge
    # (a route called directly), request_timeout_s from now.
    deadline = getattr(request.state, "deadline", began + settings.request_timeout_s)
    left = deadline - time.perf_counter()
    if (late := models.late(worker, work, left)) is not None:
        raise Overloaded(late)
    try:
        results, timing = await asyncio.wait_for(worker.run(work), timeout=max(left, 0.001))  # type: ignore[arg-type]
    except TimeoutError:  # the request's queued jobs are dropped
        timeout_s = getattr(request.state, "timeout_s", settings.request_timeout_s)
        raise GatewayTimeout(f"no answer within {timeout_s:g} s") from None
    except BatchFailed as exc:  # the cause is in the log, once for the whole batch
        raise Unavailable(f"{exc}; retry later") from exc
    response.headers["Server-Timing"] = _server_timing(tokenize_s, timing)
    return worker.model_ref(), results


def _models_missing() -> TaskModels:
    raise Unavailable("this application does not serve that task")


def sentiment_router(settings: Settings, models: Callable[[], TaskModels] = _models_missing) -> APIRouter:
    router = APIRouter()

    @router.post("/v1/sentiment", response_model=SentimentResponse, responses=ERROR_RESPONSES)
    async def sentiment(body: SentimentRequest, request: Request, response: Response) -> SentimentResponse:
        model, results = await _answer(settings, models(), body, request, response)
        return SentimentResponse(model=model, results=results)

    return router


def qa_router(settings: Settings, models: Callable[[], TaskModels] = _models_missing) -> APIRouter:
    router = APIRouter()

    @router.post("/v1/qa", response_model=QAResponse, responses=ERROR_RESPONSES)
    async def qa(body: QARequest, request: Request, response: Response) -> QAResponse:
        model, results = await _answer(settings, models(), body, request, response)
        return QAResponse(model=model, results=results)

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


def openapi_app(settings: Settings, models: Describe, readiness: Ready) -> FastAPI:
    """Every route of the API, without models: the app whose OpenAPI document the front serves at /openapi.json.

    The task routes are served by their own applications; they are written here once more only to be described,
    so the docs describe the whole API (tests/http/openapi.json holds the document, to change only on purpose)."""
    return api_app(settings, Edge(settings), sentiment_router(settings), qa_router(settings),
                   front_router(models, readiness))  # fmt: skip
