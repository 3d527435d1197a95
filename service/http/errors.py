"""One error hierarchy for the HTTP API, and the one table that maps it to status codes.

ApiError                      code                  status
├── MalformedJson             malformed_json        400
├── Unauthorized              unauthorized          401 (api_key set, key missing or wrong)
├── UnsupportedMediaType      unsupported_media_type 415
├── PayloadTooLarge           payload_too_large     413
├── BodyTimeout               body_timeout          408 (body not all there within body_timeout_s: slow clients)
├── InvalidRequest            invalid_request       422  (schema, limits)
├── InvalidInput              empty_input, …        422  (engine InputError: empty text, long question)
├── NotFound / MethodNotAllowed                     404 / 405
├── RateLimited               rate_limited          429 + Retry-After (rate_limit_per_s set, client over it)
├── Overloaded                overloaded            503 + Retry-After (queue full: shed, don't wait)
├── Unavailable               unavailable           503 (the model failed or is not loaded)
├── GatewayTimeout            timeout               504
└── Internal                  internal_error        500 (a bug; the message never carries a trace)
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.protocol import ErrorBody, ErrorDetail, ErrorResponse
from service.settings import Settings

logger = logging.getLogger("ray.serve")


class ApiError(Exception):
    status = 500
    code = "internal_error"

    def __init__(self, message: str, details: list[ErrorDetail] | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []
        if code:
            self.code = code

    def response(self, request_id: str | None) -> ErrorResponse:
        return ErrorResponse(
            error=ErrorBody(code=self.code, message=self.message, details=self.details, request_id=request_id)
        )


class MalformedJson(ApiError):
    status, code = 400, "malformed_json"


class Unauthorized(ApiError):
    status, code = 401, "unauthorized"


class UnsupportedMediaType(ApiError):
    status, code = 415, "unsupported_media_type"


class PayloadTooLarge(ApiError):
    status, code = 413, "payload_too_large"


class BodyTimeout(ApiError):
    status, code = 408, "body_timeout"


class InvalidRequest(ApiError):
    status, code = 422, "invalid_request"


class InvalidInput(ApiError):
    status, code = 422, "invalid_input"


class NotFound(ApiError):
    status, code = 404, "not_found"


class MethodNotAllowed(ApiError):
    status, code = 405, "method_not_allowed"


class RateLimited(ApiError):
    status, code = 429, "rate_limited"

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Overloaded(ApiError):
    status, code = 503, "overloaded"


class Unavailable(ApiError):
    status, code = 503, "unavailable"


class GatewayTimeout(ApiError):
    status, code = 504, "timeout"


class Internal(ApiError):
    status, code = 500, "internal_error"


# What a 500 says: never the exception, which may quote input or internals; the log has it, under the request id.
INTERNAL_MESSAGE = "internal error; see the server log for this request id"

# What the OpenAPI document lists for each route, beside its 200.
ERROR_RESPONSES: dict[int | str, dict] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in {
        400: "Malformed JSON",
        401: "API key missing or wrong (only when the service has api_key set)",
        408: "Body not received within body_timeout_s",
        413: "Body over max_body_bytes",
        415: "Content-Type is not application/json",
        422: "Invalid request or input",
        429: "Over rate_limit_per_s for this client (Retry-After; only when the service has a rate limit set)",
        503: "Overloaded (Retry-After) or no replica available",
        504: "No answer within request_timeout_s",
    }.items()
}


def error_response(
    error: ApiError, request_id: str | None, settings: Settings, headers: dict[str, str] | None = None
) -> JSONResponse:
    """The envelope, with the headers its status calls for (WWW-Authenticate, Retry-After)."""
    headers = dict(headers or {})
    if isinstance(error, Unauthorized):
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(error, Overloaded):
        headers["Retry-After"] = str(settings.retry_after_s)
    if isinstance(error, RateLimited):
        headers["Retry-After"] = str(error.retry_after_s)
    return JSONResponse(error.response(request_id).model_dump(), status_code=error.status, headers=headers)


def install_error_handlers(app: FastAPI, settings: Settings) -> None:
    """Every error a route or FastAPI itself raises leaves in the envelope; nothing leaves as a stack trace."""

    def reply(request: Request, error: ApiError, headers: dict[str, str] | None = None) -> JSONResponse:
        return error_response(error, getattr(request.state, "request_id", None), settings, headers)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return reply(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return reply(request, MalformedJson("request body is not valid JSON"))
        details = [
            ErrorDetail(field=".".join(str(p) for p in e.get("loc", ())[1:]) or None, message=e.get("msg", "invalid"))
            for e in errors
        ]
        return reply(request, InvalidRequest("request does not match the schema", details))

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
        return reply(request, error, dict(exc.headers or {}))

    # The edge answers what a route leaves unhandled itself, with its headers (service/http/edge.py); this is the
    # last resort, for an exception in the edge.
    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error in request %s", getattr(request.state, "request_id", None))
        return reply(request, Internal(INTERNAL_MESSAGE))
