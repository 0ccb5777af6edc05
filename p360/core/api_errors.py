"""One error body for every 4xx/5xx: {"error": {"code", "message", "details"}}."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

logger = logging.getLogger(__name__)

_DEFAULT_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "throttled",
    500: "server_error",
    503: "unavailable",
}


# The message an error gets when the code that raised it gave none (an HTML error page turned into JSON).
_DEFAULT_MESSAGES = {
    400: "Bad request.",
    401: "Authentication credentials were not provided.",
    403: "You do not have permission to perform this action.",
    404: "Not found.",
    405: "Method not allowed.",
    500: "Internal server error.",
}


def default_message(status: int, reason_phrase: str = "") -> str:
    return _DEFAULT_MESSAGES.get(status) or reason_phrase or "Error."


def error_body(status: int, message: str, code: str | None = None, details: dict[str, Any] | None = None) -> dict:
    return {
        "error": {"code": code or _DEFAULT_CODES.get(status, "error"), "message": message, "details": details or {}}
    }


def error_response(
    status: int, message: str, code: str | None = None, details: dict[str, Any] | None = None
) -> JsonResponse:
    return JsonResponse(error_body(status, message, code, details), status=status)


def _flatten_validation(detail: Any, path: str = "") -> dict[str, Any]:
    """Turn DRF's nested ValidationError detail into {"field.path": ["message", ...]}."""
    if isinstance(detail, dict):
        out: dict[str, Any] = {}
        for key, value in detail.items():
            out.update(_flatten_validation(value, f"{path}.{key}" if path else str(key)))
        return out
    if isinstance(detail, list) and detail and all(not isinstance(item, dict | list) for item in detail):
        return {path or "non_field_errors": [str(item) for item in detail]}
    if isinstance(detail, list):
        out = {}
        for index, value in enumerate(detail):
            out.update(_flatten_validation(value, f"{path}[{index}]"))
        return out
    return {path or "non_field_errors": [str(detail)]}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, RequestDataTooBig):
        from p360.core.api_parsers import PayloadTooLarge

        exc = PayloadTooLarge(str(exc) or None)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, SuspiciousOperation):
        # e.g. TooManyFieldsSent from a form body of 1,001+ fields: Django's own answer is a 400 (session 11:
        # it reached this handler as an unknown exception, a 500).
        exc = exceptions.ParseError(str(exc) or None)
    response = drf_exception_handler(exc, context)
    if response is None:
        logger.exception("unhandled API error", exc_info=exc)
        return Response(error_body(500, "Internal server error."), status=500)
    if isinstance(exc, exceptions.ValidationError):
        details = _flatten_validation(exc.detail)
        first = next(iter(details.items()), ("", ["Invalid input."]))
        message = f"{first[0]}: {first[1][0]}" if first[0] != "non_field_errors" else first[1][0]
        response.data = error_body(400, message, "invalid", {"fields": details})
    elif isinstance(exc, exceptions.APIException):
        code = exc.get_codes() if isinstance(exc.get_codes(), str) else None
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        extra = getattr(exc, "details", None)
        response.data = error_body(response.status_code, str(detail), code, extra)  # type: ignore[arg-type]
    return response


def is_api_path(path: str) -> bool:
    return path.startswith("/api/") or ("/api/" in path and path.startswith("/o/"))


def json_or_html_handler(status: int, message: str):  # type: ignore[no-untyped-def]
    """Build a handlerNNN view: JSON for API paths, the HTML error page otherwise."""
    from django.views import defaults

    html_views = {
        400: defaults.bad_request,
        403: defaults.permission_denied,
        404: defaults.page_not_found,
        500: defaults.server_error,
    }

    def handler(request: HttpRequest, exception: Exception | None = None):  # type: ignore[no-untyped-def]
        if is_api_path(request.path):
            return error_response(status, message)
        view = html_views[status]
        return view(request) if status == 500 else view(request, exception)  # type: ignore[operator]

    return handler
