"""Every error a client can see, and the one place that turns exceptions into responses.

The body is always OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``, the
framework's own 404/405/413 included; an unexpected exception becomes a 500 whose message
says nothing about the code (the details go to the log).
"""

from __future__ import annotations

import logging

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException

log = logging.getLogger("visiongate.errors")


class ErrorDetail(msgspec.Struct):
    """The inner object of an error response."""

    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorBody(msgspec.Struct):
    """An OpenAI-shaped error response body."""

    error: ErrorDetail


class ApiError(Exception):
    """An error with an HTTP status and an OpenAI-shaped body."""

    status_code = 400
    type = "invalid_request_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.headers = headers or {}

    def body(self) -> ErrorBody:
        """The response body."""
        return ErrorBody(ErrorDetail(self.message, self.type, self.param, self.code))


class InvalidRequest(ApiError):
    """The request is malformed, or asks for something this service does not do (400)."""


class UnsupportedParameter(InvalidRequest):
    """A parameter the service cannot honour (400, naming it)."""

    code = "unsupported_parameter"


class PayloadTooLarge(ApiError):
    """The request body exceeds the configured cap (413)."""

    status_code = 413
    code = "request_too_large"


class ModelNotFound(ApiError):
    """No model with that id is served here (404)."""

    status_code = 404
    code = "model_not_found"

    def __init__(self, model: str) -> None:
        super().__init__(
            f"The model `{model}` does not exist or you do not have access to it.", param="model"
        )


class RouteNotFound(ApiError):
    """No endpoint at that path (404)."""

    status_code = 404
    code = "unknown_url"


class MethodNotAllowed(ApiError):
    """The endpoint exists but not for that method (405)."""

    status_code = 405
    code = "method_not_allowed"


class BackendUnavailable(ApiError):
    """Triton is unreachable or its model is not ready (503, with ``retry-after``)."""

    status_code = 503
    type = "service_unavailable"
    code = "model_unavailable"

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message, headers={"retry-after": str(retry_after_s)})


class DatabaseUnavailable(ApiError):
    """The database does not answer: keys cannot be looked up nor usage recorded (503)."""

    status_code = 503
    type = "service_unavailable"
    code = "database_unavailable"

    def __init__(self, *, retry_after_s: int) -> None:
        super().__init__(
            "The database is unavailable; try again shortly.",
            headers={"retry-after": str(retry_after_s)},
        )


class BackendTimeout(ApiError):
    """Triton did not finish within the request timeout (504)."""

    status_code = 504
    type = "timeout_error"
    code = "timeout"


class InternalError(ApiError):
    """Something failed inside the service (500); the details are in the log, not here."""

    status_code = 500
    type = "internal_error"
    code = "internal_error"


_ENCODER = msgspec.json.Encoder()


def error_response(error: ApiError) -> Response[bytes]:
    """The HTTP response for an ApiError."""
    return Response(
        _ENCODER.encode(error.body()),
        status_code=error.status_code,
        media_type="application/json",
        headers=error.headers,
    )


def _from_http_exception(exc: HTTPException) -> ApiError:
    status = exc.status_code
    if status == 404:
        return RouteNotFound("Unknown request URL. Please check the URL and method.")
    if status == 405:
        return MethodNotAllowed("Method not allowed for this URL.")
    if status == 413:
        return PayloadTooLarge("The request body is larger than this service accepts.")
    error = ApiError(str(exc.detail) or "Request failed.", headers=dict(exc.headers or {}))
    error.status_code = status
    if status >= 500:
        error.type = "internal_error"
    return error


def handle_exception(request: Request, exc: Exception) -> Response[bytes]:
    """The one exception-to-response mapping, registered for every exception type."""
    if isinstance(exc, ApiError):
        error = exc
    elif isinstance(exc, HTTPException):
        error = _from_http_exception(exc)
    else:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        error = InternalError("The server had an error while processing your request.")
    return error_response(error)
