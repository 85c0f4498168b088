"""The admin API's errors, OpenAI-shaped: the service's refusals and Litestar's validation.

Registered on the admin router, so these mappings apply to admin routes only.
"""

from __future__ import annotations

import logging
import re

from litestar import Request, Response
from litestar.exceptions import ClientException, ValidationException
from litestar.exceptions.base_exceptions import SerializationException
from sqlalchemy.exc import DBAPIError, IntegrityError

from gateway.admin.service import AdminError
from gateway.admin_api.auth import services
from gateway.errors import (
    ApiError,
    DatabaseUnavailable,
    InvalidRequest,
    error_response,
    handle_exception,
)

log = logging.getLogger("visiongate.admin_api")

_UNKNOWN_FIELD = re.compile(r"unknown field `([^`]+)`")
_MISSING_FIELD = re.compile(r"missing required field `([^`]+)`")


class AdminConflict(ApiError):
    """A change that raced another one on a unique name (409)."""

    status_code = 409
    code = "conflict"


def _admin_error(_: Request, exc: AdminError) -> Response[bytes]:
    error = ApiError(exc.message, param=exc.param, code=exc.code)
    error.status_code = exc.status_code
    return error_response(error)


def _validation_error(_: Request, exc: ValidationException) -> Response[bytes]:
    """Litestar's refusal of a body or query parameter, naming the parameter."""
    problems = exc.extra if isinstance(exc.extra, list) else []
    first = problems[0] if problems and isinstance(problems[0], dict) else {}
    key, message = str(first.get("key", "")), str(first.get("message", exc.detail))
    if unknown := _UNKNOWN_FIELD.search(message):
        name = unknown.group(1)
        error = InvalidRequest(
            f"Unrecognized request argument: {name}.", param=name, code="unknown_parameter"
        )
    elif missing := _MISSING_FIELD.search(message):
        name = missing.group(1)
        error = InvalidRequest(
            f"Missing required parameter: {name}.", param=name, code="invalid_value"
        )
    elif key == "data" and first.get("source") == "body":
        # The body as a whole: absent (Litestar says "'data'") or not a JSON object.
        text = "A JSON object is required as the request body" if message == "'data'" else message
        error = InvalidRequest(f"{text}.", code="invalid_json")
    else:
        error = InvalidRequest(
            f"Invalid value for `{key}`: {message}.", param=key or None, code="invalid_value"
        )
    return error_response(error)


def _client_error(request: Request, exc: ClientException) -> Response[bytes]:
    """A body that is not JSON; other client errors as everywhere else."""
    if exc.status_code != 400 or not isinstance(exc.__cause__, SerializationException):
        return handle_exception(request, exc)
    return error_response(
        InvalidRequest(f"The request body is not valid JSON: {exc.__cause__}", code="invalid_json")
    )


def _database_error(request: Request, exc: DBAPIError) -> Response[bytes]:
    log.warning("admin request failed on the database", exc_info=exc)
    retry_after_s = services(request).settings.retry_after_s
    return error_response(DatabaseUnavailable(retry_after_s=retry_after_s))


def _integrity_error(_: Request, exc: IntegrityError) -> Response[bytes]:
    return error_response(
        AdminConflict("The change conflicts with one made at the same time; read and retry.")
    )


EXCEPTION_HANDLERS = {
    AdminError: _admin_error,
    ValidationException: _validation_error,
    ClientException: _client_error,
    IntegrityError: _integrity_error,
    DBAPIError: _database_error,
}
