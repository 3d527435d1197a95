"""The HTTP ingress: validate, tokenize, fan out to the model deployments, answer in one envelope.

Everything a request can get wrong is found here, before anything is queued: schema (pydantic),
size limits, empty text, over-long questions. The model deployments then only ever see work they can
do, and each input of a list request is its own batch slot, so inputs from many clients share
forward passes.
"""

import asyncio
import hmac
import logging
import time
import uuid
from collections.abc import Callable
from functools import partial
from math import ceil
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from ray import serve
from ray.exceptions import RayActorError
from ray.serve.exceptions import BackPressureError
from ray.serve.handle import DeploymentHandle, DeploymentResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from service import __version__
from service.api_errors import (
    ERROR_RESPONSES,
    ApiError,
    BodyTimeout,
    GatewayTimeout,
    Internal,
    InvalidInput,
    InvalidRequest,
    MalformedJson,
    MethodNotAllowed,
    NotFound,
    Overloaded,
    PayloadTooLarge,
    RateLimited,
    Unauthorized,
    Unavailable,
    UnsupportedMediaType,
)
from service.engine.errors import InputError
from service.engine.layout import max_positions, tokenizer_file
from service.engine.tokenize import TextTokenizer
from service.http.explorer import explorer_router
from service.metrics import GatewayMetrics
from service.protocol import (
    ErrorDetail,
    Health,
    ModelInfo,
    ModelRef,
    ModelsResponse,
    QARequest,
    QAResponse,
    QAResult,
    SentimentRequest,
    SentimentResponse,
    SentimentResult,
)
from service.rate_limit import TokenBuckets
from service.settings import Settings

logger = logging.getLogger("ray.serve")
access_logger = logging.getLogger("ray.serve.attention_serve.access")
TASK_OF_ROUTE = {"/v1/sentiment": "sentiment", "/v1/qa": "qa"}  # the JSON routes; others count as "other"


def _settings_of(scope: dict) -> Settings:
    """The settings of the app serving this request (set per replica by Gateway.__serve_build_asgi_app__)."""
    settings = getattr(scope["app"].state, "settings", None)
    return settings if settings is not None else Settings()


app = FastAPI(
    title="attention-serve",
    version=__version__,
    description="Sentiment and extractive QA with a BERT-family encoder; attention weights on request.",
)
app.include_router(explorer_router())


def _route_path(scope: dict) -> str:
    """The path inside this app: ASGI's `path` includes the mount point (`root_path`, Serve's route_prefix)."""
    path, root = scope["path"], scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


class EdgeMiddleware:
    """Raw ASGI, before any parsing: request id in and out, rate limit, API key, admission control, then
    Content-Type, body size and body deadline for the task routes."""

    def __init__(self, asgi_app) -> None:
        self.app = asgi_app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        outcome = {"status": 500}
        path = _route_path(scope)
        try:
            await self._handle(scope, receive, send, path, outcome, began)
        finally:
            _account(scope, path, outcome["status"], time.perf_counter() - began)

    async def _handle(self, scope, receive, send, path: str, outcome: dict, began: float) -> None:
        settings = _settings_of(scope)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        # Serve's proxy takes the client's X-Request-ID (or makes one), passes it here and returns it in
        # the response; only when running outside Serve do we make and return one ourselves.
        request_id = headers.get("x-request-id") or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message) -> None:
            if message["type"] == "http.response.start":
                outcome["status"] = message["status"]
                if "x-request-id" not in headers:
                    message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        async def refuse(error: ApiError) -> None:
            response = _error_response(error, request_id, settings)
            await response(scope, receive, send_with_id)

        # Before the key check, so guessing keys is throttled too.
        limiter = getattr(scope["app"].state, "rate_limiter", None)
        if limiter is not None and path.startswith("/v1/"):
            client = (scope.get("client") or ("unknown", 0))[0]
            wait = limiter.take(client)
            if wait > 0:
                await refuse(RateLimited(f"over {settings.rate_limit_per_s:g} requests/s; retry later", ceil(wait)))
                return

        api_key = settings.api_key
        if api_key is not None and path.startswith("/v1/") and not _key_matches(headers, api_key):
            await refuse(Unauthorized("send the API key as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"))
            return

        if scope["method"] == "POST" and path in TASK_OF_ROUTE:
            inflight = scope["app"].state.inflight
            if inflight[0] >= settings.gateway_max_inflight:
                # Admission control: refusing here costs no parsing, tokenizing or queueing, so under overload
                # the cores keep serving the requests already admitted, whose wait stays bounded.
                await refuse(Overloaded(f"{inflight[0]} requests in progress on this gateway; retry later"))
                return
            inflight[0] += 1
            try:
                if (problem := _declared_body_problem(headers, settings)) is not None:
                    await refuse(problem)
                    return
                body = await _read_body(receive, settings, deadline=began + settings.body_timeout_s)
                if body is None:
                    outcome["status"] = 499  # the client left before sending its body
                elif isinstance(body, ApiError):
                    await refuse(body)
                else:
                    await self.app(scope, _replaying(body, receive), send_with_id)
            finally:
                inflight[0] -= 1
            return
        await self.app(scope, receive, send_with_id)


def _declared_body_problem(headers: dict[str, str], settings: Settings) -> ApiError | None:
    """What is wrong with a task request's body by its headers alone: not JSON, or declared too large."""
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json" and not content_type.endswith("+json"):
        return UnsupportedMediaType(f"Content-Type must be application/json, got {content_type!r}")
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > settings.max_body_bytes:
        return PayloadTooLarge(f"body is {declared} bytes; the limit is {settings.max_body_bytes}")
    return None


async def _read_body(receive, settings: Settings, deadline: float) -> bytes | ApiError | None:
    """The whole body, or the error that stopped reading it; None when the client went away.

    A deadline for the whole body: a client trickling it (slow-loris) must not hold a connection and a task
    forever. Counting bytes as they come: a chunked body declares no length.
    """
    body, more = bytearray(), True
    while more:
        try:
            message = await asyncio.wait_for(receive(), timeout=max(deadline - time.perf_counter(), 0))
        except TimeoutError:
            return BodyTimeout(f"the body did not arrive within {settings.body_timeout_s:g} s")
        if message["type"] == "http.disconnect":
            return None
        body += message.get("body", b"")
        more = message.get("more_body", False)
        if len(body) > settings.max_body_bytes:
            return PayloadTooLarge(f"body is over the limit of {settings.max_body_bytes} bytes")
    return bytes(body)


def _replaying(body: bytes, receive):
    """An ASGI `receive` that hands the app the body already read, then defers to the real one (disconnects)."""
    replayed = False

    async def replay() -> dict:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _key_matches(headers: dict[str, str], api_key) -> bool:
    """Constant-time comparison, so response timing does not leak how much of a guess was right."""
    given = headers.get("x-api-key", "")
    authorization = headers.get("authorization", "")
    if not given and authorization.lower().startswith("bearer "):
        given = authorization[7:].strip()
    return hmac.compare_digest(given.encode(), api_key.get_secret_value().encode())


def _account(scope: dict, path: str, status: int, seconds: float) -> None:
    """One metrics observation and one access-log line per request: sizes and codes, never the text."""
    task = TASK_OF_ROUTE.get(path, "other")
    gateway_metrics = getattr(scope["app"].state, "metrics", None)
    if gateway_metrics is not None:
        gateway_metrics.observe(task, status, seconds)
    access_logger.info(
        "%s %s %d %.1f ms",
        scope["method"],
        path if task != "other" else "-",
        status,
        seconds * 1000,
        extra={
            "request_id": scope.get("state", {}).get("request_id"),
            "task": task,
            "status": status,
            "latency_ms": round(seconds * 1000, 2),
        },
    )


app.add_middleware(EdgeMiddleware)


def _error_response(
    error: ApiError, request_id: str | None, settings: Settings, headers: dict[str, str] | None = None
) -> JSONResponse:
    headers = dict(headers or {})
    if isinstance(error, Unauthorized):
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(error, Overloaded):
        headers["Retry-After"] = str(settings.retry_after_s)
    if isinstance(error, RateLimited):
        headers["Retry-After"] = str(error.retry_after_s)
    return JSONResponse(error.response(request_id).model_dump(), status_code=error.status, headers=headers)


def _reply(request: Request, error: ApiError, headers: dict[str, str] | None = None) -> JSONResponse:
    return _error_response(error, _request_id(request), _settings_of(request.scope), headers)


def _request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


@app.exception_handler(ApiError)
async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
    return _reply(request, exc)


@app.exception_handler(RequestValidationError)
async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return _reply(request, MalformedJson("request body is not valid JSON"))
    details = [
        ErrorDetail(field=".".join(str(p) for p in e.get("loc", ())[1:]) or None, message=e.get("msg", "invalid"))
        for e in errors
    ]
    return _reply(request, InvalidRequest("request does not match the schema", details))


@app.exception_handler(StarletteHTTPException)
async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    error: ApiError
    if exc.status_code == 404:
        error = NotFound(f"no route {request.url.path}")
    elif exc.status_code == 405:
        error = MethodNotAllowed(f"{request.method} is not allowed on {request.url.path}")
    elif exc.status_code == 400:  # the body could not be read as JSON at all (e.g. invalid UTF-8)
        error = MalformedJson(f"request body is not valid JSON: {exc.detail}")
    else:
        error = ApiError(str(exc.detail), code="http_error")
        error.status = exc.status_code
    # Starlette's own headers matter: a 405 carries `Allow` (RFC 9110 requires it).
    return _reply(request, error, dict(exc.headers or {}))


@app.exception_handler(Exception)
async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error in request %s", _request_id(request))
    return _reply(request, Internal("internal error; see the server log for this request id"))


def _too_long(field: str, length: int, limit: int) -> InvalidRequest:
    return InvalidRequest(
        f"{field} is {length} characters; the limit is {limit}",
        [ErrorDetail(field=field, message=f"at most {limit} characters")],
        code="input_too_long",
    )


def _input_error(exc: InputError) -> InvalidInput:
    return InvalidInput(exc.message, [ErrorDetail(field=exc.field, message=exc.message)], code=exc.code)


def _cancel_unfinished(responses: list[DeploymentResponse]) -> None:
    """Free the queue slots of answers nobody will read (after a timeout or a sibling's failure).

    Best effort: cancelling a call that already failed re-raises its error from inside `cancel()`
    (Ray 2.60), which must not replace the error the client is about to get.
    """
    for response in responses:
        try:
            response.cancel()
        except Exception:  # noqa: BLE001, S110 - the call is over either way
            pass


async def _ask(call: Callable[[], DeploymentResponse], live: list[DeploymentResponse]) -> dict[str, Any]:
    """One model call, made again once if the replica died under it (inference is pure, so asking twice is safe).

    The second call goes to a live replica, or waits in the handle's queue for the one Serve starts instead.
    """
    response = call()
    live.append(response)
    try:
        return await response
    except RayActorError as exc:  # ActorDiedError, ActorUnavailableError: the process, not the input
        logger.warning("model replica lost (%s); asking again", type(exc).__name__)
        response = call()
        live.append(response)
        return await response


@serve.deployment(name="Gateway")
@serve.ingress(app)
class Gateway:
    def __init__(self, sentiment: DeploymentHandle, qa: DeploymentHandle, settings: dict[str, Any]) -> None:
        self.settings = Settings.model_validate(settings)
        self.metrics = GatewayMetrics()
        self.sentiment = sentiment
        self.qa = qa
        self.tokenizers = {
            task: TextTokenizer(
                tokenizer_file(self.settings.model_dir(task)),
                max_tokens=min(self.settings.max_tokens, max_positions(self.settings.model_dir(task))),
            )
            for task in ("sentiment", "qa")
        }

    def __serve_build_asgi_app__(self):
        """Serve's hook for the replica's ASGI app, called once at start-up: hand this replica's settings to
        the middleware and exception handlers, which have no `self`. (Serve ships the FastAPI app to replicas
        pickled by value, so module-level state would not be shared with them.)"""
        replica_app = self._asgi_app  # this replica's own copy of `app`, set by Serve's ingress wrapper
        replica_app.state.settings = self.settings
        replica_app.state.metrics = self.metrics
        replica_app.state.inflight = [0]  # task requests in progress (one event loop: no lock needed)
        per_second, burst = self.settings.rate_limit_per_s, self.settings.rate_limit_burst
        replica_app.state.rate_limiter = TokenBuckets(per_second, burst) if per_second is not None else None
        return replica_app

    def _count_inputs(self, task: str, count: int, with_attention: bool) -> None:
        self.metrics.items.inc(count, tags={"task": task})
        if with_attention:
            self.metrics.attention_requests.inc(tags={"task": task})

    async def _gather(self, calls: list[Callable[[], DeploymentResponse]]) -> list[dict[str, Any]]:
        """Make every call and await its answer; shed with 503 on backpressure, 504 past the timeout.

        Making a call is inside the guard too: a handle may refuse it (queue full) as it is made.
        """
        live: list[DeploymentResponse] = []
        try:
            answers = asyncio.gather(*(_ask(call, live) for call in calls))
            return await asyncio.wait_for(answers, timeout=self.settings.request_timeout_s)
        except BaseException as exc:
            _cancel_unfinished(live)
            if isinstance(exc, TimeoutError):
                raise GatewayTimeout(f"no answer within {self.settings.request_timeout_s} s") from None
            if isinstance(exc, BackPressureError):
                raise Overloaded("the model queue is full; retry later") from None
            if isinstance(exc, ApiError) or not isinstance(exc, Exception):
                raise  # our own errors, and cancellation when the client went away
            # A replica died twice in a row or failed: the caller gets a clean 503, the log the cause.
            logger.warning("model call failed: %s", type(exc).__name__)
            raise Unavailable("the model could not answer; retry later") from None

    @app.post("/v1/sentiment", response_model=SentimentResponse, responses=ERROR_RESPONSES)
    async def sentiment_route(self, body: SentimentRequest) -> SentimentResponse:
        texts = body.texts()
        if not texts or len(texts) > self.settings.max_items_per_request:
            raise InvalidRequest(
                f"text must hold 1 to {self.settings.max_items_per_request} items, got {len(texts)}",
                [ErrorDetail(field="text", message="wrong number of items")],
            )
        items = []
        for i, text in enumerate(texts):
            field = "text" if isinstance(body.text, str) else f"text.{i}"
            if len(text) > self.settings.max_text_chars:
                raise _too_long(field, len(text), self.settings.max_text_chars)
            try:
                items.append(self.tokenizers["sentiment"].encode_text(text, field=field))
            except InputError as exc:
                raise _input_error(exc) from None
        self._count_inputs("sentiment", len(items), body.return_attention)
        outputs = await self._gather(
            [partial(self.sentiment.classify.remote, item, body.return_attention) for item in items]
        )
        return SentimentResponse(
            model=ModelRef(**outputs[0]["model"]),
            results=[SentimentResult.model_validate(o) for o in outputs],
        )

    @app.post("/v1/qa", response_model=QAResponse, responses=ERROR_RESPONSES)
    async def qa_route(self, body: QARequest) -> QAResponse:
        pairs = body.pairs()
        if len(pairs) > self.settings.max_items_per_request:
            raise InvalidRequest(
                f"inputs must hold at most {self.settings.max_items_per_request} items, got {len(pairs)}",
                [ErrorDetail(field="inputs", message="too many items")],
            )
        items = []
        for i, pair in enumerate(pairs):
            prefix = "" if body.inputs is None else f"inputs.{i}."
            if len(pair.question) > self.settings.max_question_chars:
                raise _too_long(prefix + "question", len(pair.question), self.settings.max_question_chars)
            if len(pair.context) > self.settings.max_context_chars:
                raise _too_long(prefix + "context", len(pair.context), self.settings.max_context_chars)
            try:
                item = self.tokenizers["qa"].encode_qa(
                    pair.question,
                    pair.context,
                    max_seq_len=min(self.settings.max_seq_len, self.tokenizers["qa"].max_tokens),
                    doc_stride=body.doc_stride,
                    max_question_len=self.settings.max_question_len,
                    max_windows=self.settings.max_windows,
                )
            except InputError as exc:
                exc.field = prefix + (exc.field or "")
                raise _input_error(exc) from None
            items.append(item)
        self._count_inputs("qa", len(items), body.return_attention)
        outputs = await self._gather(
            [partial(self.qa.answer.remote, i, body.top_k, body.max_answer_len, body.return_attention) for i in items]
        )
        return QAResponse(model=ModelRef(**outputs[0]["model"]), results=[QAResult.model_validate(o) for o in outputs])

    async def _describe_all(self) -> dict[str, dict[str, Any] | Exception]:
        async def one(handle: DeploymentHandle) -> dict[str, Any] | Exception:
            try:
                return await asyncio.wait_for(handle.describe.remote(), timeout=5)
            except Exception as exc:
                return exc

        sentiment, qa = await asyncio.gather(one(self.sentiment), one(self.qa))
        return {"sentiment": sentiment, "qa": qa}

    @app.get("/v1/models", response_model=ModelsResponse)
    async def models_route(self) -> ModelsResponse:
        models = []
        for task, described in (await self._describe_all()).items():
            if isinstance(described, Exception):
                raise Unavailable(f"the {task} model is not answering")
            models.append(ModelInfo.model_validate(described))
        return ModelsResponse(models=models)

    @app.get("/healthz", response_model=Health)
    async def healthz(self) -> Health:
        """Liveness: this process answers HTTP."""
        return Health(status="ok")

    @app.get("/readyz", response_model=Health, responses={503: {"model": Health}})
    async def readyz(self):
        """Readiness: every model deployment runs a tiny forward pass in time."""
        checks: dict[str, str] = {}
        for task, handle in (("sentiment", self.sentiment), ("qa", self.qa)):
            try:
                await asyncio.wait_for(handle.ping.remote(), timeout=10)
                checks[task] = "ok"
            except Exception as exc:
                checks[task] = f"unavailable: {type(exc).__name__}"
        ready = all(v == "ok" for v in checks.values())
        health = Health(status="ok" if ready else "unavailable", checks=checks)
        return JSONResponse(health.model_dump(), status_code=200 if ready else 503)
