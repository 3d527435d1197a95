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
├── Unavailable               unavailable           503 (no replica can answer)
├── GatewayTimeout            timeout               504
└── Internal                  internal_error        500 (a bug; the message never carries a trace)
"""

from __future__ import annotations

from service.protocol import ErrorBody, ErrorDetail, ErrorResponse


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
