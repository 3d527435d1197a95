"""The HTTP edge: raw ASGI in front of every route of every application, before any parsing.

In order: request id in and out, rate limit, API key, admission control, then Content-Type, body size and body
deadline for the task routes; one access-log line, one metrics observation and a `Server-Timing` total for
every request. Both task applications and the front application wrap their FastAPI app in it, so the HTTP
contract is one piece of code.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from math import ceil
from typing import Any, Protocol

from pydantic import SecretStr

from service.http.errors import (
    INTERNAL_MESSAGE,
    ApiError,
    BodyTimeout,
    Internal,
    InvalidRequest,
    Overloaded,
    PayloadTooLarge,
    RateLimited,
    Unauthorized,
    UnsupportedMediaType,
    error_response,
)
from service.http.rate_limit import TokenBuckets
from service.metrics import EdgeMetrics
from service.protocol import ErrorDetail
from service.settings import Settings
from service.tasks import TASK_OF_ROUTE  # the JSON routes; others count as "other"

access_logger = logging.getLogger("ray.serve.attention_serve.access")
logger = logging.getLogger("ray.serve")

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class Admission(Protocol):
    """Admission control of a task route: asked before a request's body is read, told when it is over."""

    def admit(self, deadline_s: float) -> str | None:
        """None to let in a request with `deadline_s` left, or why it is refused (503 overloaded, Retry-After)."""

    def release(self) -> None:
        """An admitted request is over (answered, refused later, or abandoned)."""


@dataclass
class Edge:
    """What the edge of one replica needs: its settings, metrics, rate limiter and admission check."""

    settings: Settings
    metrics: EdgeMetrics | None = None
    admission: Admission | None = None
    rate_limiter: TokenBuckets | None = None

    @classmethod
    def for_replica(cls, settings: Settings, admission: Admission | None = None) -> Edge:
        per_second = settings.rate_limit_per_s
        limiter = TokenBuckets(per_second, settings.rate_limit_burst) if per_second is not None else None
        return cls(settings, EdgeMetrics(), admission, limiter)


class EdgeMiddleware:
    """Starlette middleware (`app.add_middleware(EdgeMiddleware, edge=...)`) around one replica's app."""

    def __init__(self, app: ASGIApp, edge: Edge) -> None:
        self.app = app
        self.edge = edge

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Serve mounts an application at its route prefix and says so in root_path; our routes are written with
        # their paths below the API's prefix (one OpenAPI document for all applications), so that is the root.
        scope["root_path"] = self.edge.settings.path_prefix
        began = time.perf_counter()
        outcome = {"status": 500}
        try:
            await self._handle(scope, receive, send, outcome, began)
        finally:
            _account(self.edge.metrics, scope, outcome["status"], time.perf_counter() - began)

    async def _handle(self, scope: Scope, receive: Receive, send: Send, outcome: dict, began: float) -> None:
        settings, path = self.edge.settings, _route(scope)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        # Serve's proxy takes the client's X-Request-ID (or makes one), passes it here and returns it in the
        # response; only when it does not do we make one and return it ourselves.
        request_id = headers.get("x-request-id") or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                outcome["status"], outcome["started"] = message["status"], True
                extra = [(b"server-timing", f"total;dur={(time.perf_counter() - began) * 1000:.1f}".encode())]
                if "x-request-id" not in headers:
                    extra.append((b"x-request-id", request_id.encode()))
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        async def refuse(error: ApiError) -> None:
            await error_response(error, request_id, settings)(scope, receive, send_with_id)

        async def answer(app_receive: Receive) -> None:
            """The app's answer. An exception it did not handle (a bug) is answered here, 500 in the envelope, so the
            answer has this edge's headers too (the request id it made, Server-Timing): left to Starlette, the 500
            would go out around the edge, without them. Once the answer has begun, the server must cut it off."""
            try:
                await self.app(scope, app_receive, send_with_id)
            except Exception:
                if outcome.get("started"):
                    raise
                logger.exception("unhandled error in request %s", request_id)
                await refuse(Internal(INTERNAL_MESSAGE))

        is_api = path.startswith("/v1/")
        # Before the key check, so guessing keys is throttled too.
        if self.edge.rate_limiter is not None and is_api:
            wait = self.edge.rate_limiter.take(_client_address(scope, headers, settings.client_ip_header))
            if wait > 0:
                await refuse(RateLimited(f"over {settings.rate_limit_per_s:g} requests/s; retry later", ceil(wait)))
                return

        if settings.api_key is not None and is_api and not _key_matches(headers, settings.api_key):
            await refuse(Unauthorized("send the API key as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"))
            return

        if scope["method"] != "POST" or path not in TASK_OF_ROUTE:
            await answer(receive)
            return
        # Admission control before parsing: refusing costs no parsing, tokenizing or queueing, so under overload
        # the cores keep serving the requests already admitted, whose wait stays bounded.
        admission = self.edge.admission
        deadline = _deadline(headers, settings)
        if isinstance(deadline, ApiError):
            await refuse(deadline)
            return
        scope["state"]["deadline"] = began + deadline  # perf_counter time by which the answer is due
        scope["state"]["timeout_s"] = deadline
        if admission is not None and (refusal := admission.admit(deadline)) is not None:
            await refuse(Overloaded(refusal))
            return
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
                await answer(_replaying(body, receive))
        finally:
            if admission is not None:
                admission.release()


DEADLINE_HEADER = "x-request-timeout"


def _deadline(headers: dict[str, str], settings: Settings) -> float | ApiError:
    """Seconds the client gives the request: request_timeout_s, or less if it says so in X-Request-Timeout (a
    client that will give up after 5 s is better refused at once than answered after it left)."""
    given = headers.get(DEADLINE_HEADER)
    if given is None:
        return settings.request_timeout_s
    try:
        seconds = float(given)
    except ValueError:
        seconds = float("nan")
    if not seconds > 0 or seconds == float("inf"):
        return InvalidRequest(
            f"X-Request-Timeout must be a number of seconds above 0, got {given[:40]!r}",
            [ErrorDetail(field="X-Request-Timeout", message="seconds above 0")],
        )
    return min(seconds, settings.request_timeout_s)


def _client_address(scope: Scope, headers: dict[str, str], trusted_header: str | None) -> str:
    """Who is asking: the last address the trusted front proxy put in its header, else the peer address."""
    if trusted_header is not None and (forwarded := headers.get(trusted_header.lower(), "").strip()):
        return forwarded.split(",")[-1].strip()
    return (scope.get("client") or ("unknown", 0))[0]


def _declared_body_problem(headers: dict[str, str], settings: Settings) -> ApiError | None:
    """What is wrong with a task request's body by its headers alone: not JSON, or declared too large."""
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json" and not content_type.endswith("+json"):
        return UnsupportedMediaType(f"Content-Type must be application/json, got {content_type!r}")
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > settings.max_body_bytes:
        return PayloadTooLarge(f"body is {declared} bytes; the limit is {settings.max_body_bytes}")
    return None


async def _read_body(receive: Receive, settings: Settings, deadline: float) -> bytes | ApiError | None:
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


def _replaying(body: bytes, receive: Receive) -> Receive:
    """An ASGI `receive` that hands the app the body already read, then defers to the real one (disconnects)."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _key_matches(headers: dict[str, str], api_key: SecretStr) -> bool:
    """Constant-time comparison, so response timing does not leak how much of a guess was right."""
    given = headers.get("x-api-key", "")
    authorization = headers.get("authorization", "")
    if not given and authorization.lower().startswith("bearer "):
        given = authorization[7:].strip()
    return hmac.compare_digest(given.encode(), api_key.get_secret_value().encode())


def _route(scope: Scope) -> str:
    """The path below the API's prefix (root_path): what the routes and TASK_OF_ROUTE are written with."""
    path, root = scope["path"], scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def _account(metrics: EdgeMetrics | None, scope: Scope, status: int, seconds: float) -> None:
    """One metrics observation and one access-log line per request: sizes and codes, never the text."""
    path = _route(scope)
    task = TASK_OF_ROUTE.get(path, "other")
    if metrics is not None:
        metrics.observe(task, status, seconds)
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
