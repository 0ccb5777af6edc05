"""Cross-cutting request middleware."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from p360.core import context

_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def client_ip(request: HttpRequest) -> str | None:
    # REMOTE_ADDR only: X-Forwarded-For is client-controlled unless a trusted proxy rewrites it.
    return request.META.get("REMOTE_ADDR") or None


class RequestContextMiddleware:
    """Assigns a request id (or keeps a well-formed incoming X-Request-ID) and binds the log context."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _SAFE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id  # type: ignore[attr-defined]
        with context.bound(
            request_id=request_id,
            user="-",
            org="-",
            ip=client_ip(request),
            user_agent=request.headers.get("User-Agent", "")[:500],
        ):
            response = self.get_response(request)
        response["X-Request-ID"] = request_id
        return response


class RefuseNulMiddleware:
    """A NUL character in the query string is a 400, for every page and API path (issue 15).

    PostgreSQL text cannot hold NUL, so `/orgs/?q=%00` reached the database as a DataError: a 500. JSON
    bodies are checked by the API's parser (p360.core.api_parsers); form fields by Django's forms."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if any("\x00" in key or any("\x00" in value for value in values) for key, values in request.GET.lists()):
            return refuse_nul(request)
        return self.get_response(request)


def refuse_nul(request: HttpRequest) -> HttpResponse:
    from p360.core.api_errors import error_response, is_api_path

    message = "The query string must not contain the NUL character (%00)."
    if is_api_path(request.path):
        return error_response(400, message, "nul_character")
    return HttpResponse(message + "\n", status=400, content_type="text/plain; charset=utf-8")
