"""One exception handler maps every error raised under /api/ to the failure envelope.

Nothing unexpected leaks: unknown exceptions are logged with their trace and answered
with a bare 500; a database that cannot be reached is a 503 with Retry-After.
"""

import logging

from django.core import exceptions as django_exceptions
from django.db import DataError, InterfaceError, OperationalError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response

from leadmarket.errors import DomainError

from .envelope import failure_body

logger = logging.getLogger(__name__)

DATABASE_RETRY_AFTER_SECONDS = 5


def flatten_errors(detail, prefix: str = "") -> dict[str, list[str]]:
    """DRF error details as {"field": ["message"]}, nested fields joined with dots."""
    if isinstance(detail, dict):
        errors: dict[str, list[str]] = {}
        for key, value in detail.items():
            errors.update(flatten_errors(value, f"{prefix}.{key}" if prefix else str(key)))
        return errors
    if isinstance(detail, list) and any(isinstance(item, dict | list) for item in detail):
        errors = {}
        for index, value in enumerate(detail):
            if value:
                errors.update(flatten_errors(value, f"{prefix}.{index}" if prefix else str(index)))
        return errors
    messages = detail if isinstance(detail, list) else [detail]
    return {prefix or "non_field_errors": [str(message) for message in messages]}


def database_unavailable(exc: Exception) -> dict:
    """The failure answered when the database cannot be reached (503, retry later), as
    keyword arguments of `failure_response` and of this handler's responses."""
    logger.error("database unavailable: %s", exc)
    return {
        "status": status.HTTP_503_SERVICE_UNAVAILABLE,
        "message": "Service temporarily unavailable, retry later.",
        "headers": {"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
    }


def _response(status: int, message: str, errors=None, headers=None) -> Response:
    response = Response(failure_body(message, errors), status=status, headers=headers)
    response.exception = True
    return response


def envelope_exception_handler(exc, context):
    if isinstance(exc, DomainError):
        return _response(exc.status_code, exc.message, exc.errors)
    if isinstance(exc, django_exceptions.ValidationError):
        errors = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        return _response(status.HTTP_400_BAD_REQUEST, "Invalid input.", errors)
    if isinstance(exc, Http404):
        return _response(status.HTTP_404_NOT_FOUND, "Not found.")
    if isinstance(exc, django_exceptions.PermissionDenied):
        return _response(status.HTTP_403_FORBIDDEN, "You do not have permission to perform this action.")
    if isinstance(exc, django_exceptions.RequestDataTooBig):
        return _response(status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, "Request body is too large.")
    if isinstance(exc, DataError | OverflowError):
        # A filter or field value the database cannot hold (an id beyond bigint, say).
        return _response(status.HTTP_400_BAD_REQUEST, "A value is out of range.")
    if isinstance(exc, OperationalError | InterfaceError):
        return _response(**database_unavailable(exc))
    if isinstance(exc, exceptions.ValidationError):
        return _response(exc.status_code, "Invalid input.", flatten_errors(exc.detail))
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        # DRF turns these into 403 on views without authenticators (login, refresh); bad
        # credentials are a 401 everywhere.
        exc.status_code = status.HTTP_401_UNAUTHORIZED
        exc.auth_header = getattr(exc, "auth_header", None) or 'Bearer realm="api"'
    if isinstance(exc, exceptions.APIException):
        headers = {}
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None) is not None:
            headers["Retry-After"] = str(int(exc.wait))
        detail = exc.detail
        if isinstance(detail, dict):
            # simplejwt puts a "detail" and token "messages" in a dict
            message = str(detail.get("detail", "Request failed."))
            return _response(exc.status_code, message, {}, headers)
        return _response(exc.status_code, str(detail), {}, headers)
    logger.exception("unhandled error in %s", context.get("view").__class__.__name__)
    return _response(status.HTTP_500_INTERNAL_SERVER_ERROR, "Internal server error.")
