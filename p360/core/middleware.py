"""Cross-cutting request middleware."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse
from django.views.defaults import page_not_found

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
    """A NUL character in the path or the query string is a 400, for every page and API path (issue 15).

    PostgreSQL text cannot hold NUL, so `/orgs/?q=%00` reached the database as a DataError: a 500; so did a
    NUL in a `<str:...>` path parameter (`/o/<slug>/api/v1/users/%00/segments`, session 11's junk sweep).
    JSON bodies are checked by the API's parser (p360.core.api_parsers); form fields by Django's forms."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if "\x00" in request.path_info:
            return refuse_nul(request, "path")
        try:
            query = request.GET.lists()
        except SuspiciousOperation as exc:
            # TooManyFieldsSent (over DATA_UPLOAD_MAX_NUMBER_FIELDS). Answered here: with DEBUG on, Django's
            # debug page reads request.GET again and raised it a second time, out of every handler (session 11).
            return refuse_query(request, str(exc))
        if any("\x00" in key or any("\x00" in value for value in values) for key, values in query):
            return refuse_nul(request)
        return self.get_response(request)


def refuse_query(request: HttpRequest, reason: str) -> HttpResponse:
    from p360.core.api_errors import error_response, is_api_path

    message = f"The query string was refused: {reason}"
    if is_api_path(request.path):
        return error_response(400, message, "bad_request")
    return HttpResponse(message + "\n", status=400, content_type="text/plain; charset=utf-8")


def refuse_nul(request: HttpRequest, where: str = "query string") -> HttpResponse:
    from p360.core.api_errors import error_response, is_api_path

    message = f"The {where} must not contain the NUL character (%00)."
    if is_api_path(request.path):
        return error_response(400, message, "nul_character")
    return HttpResponse(message + "\n", status=400, content_type="text/plain; charset=utf-8")


# Django's debug pages (technical 404/500) carry this sentence; nothing else we serve does.
_DEBUG_PAGE_MARKER = b"<code>DEBUG = True</code>"
# Headers an error response keeps when its HTML body becomes the JSON error body.
_KEPT_HEADERS = ("Allow", "WWW-Authenticate", "Retry-After", "Vary", "Tus-Resumable", "Tus-Version", "Tus-Max-Size")


class ErrorBodyMiddleware:
    """The error contract in every mode, DEBUG included.

    - Every error under /api/ or /o/<slug>/api/ answers {"error": {"code", "message", "details"}},
      even where Django would render HTML (an unknown org or path raised before any API view runs,
      or Django's DEBUG pages, which list every URL pattern).
    - Pages get the branded 404 even with DEBUG on, unless P360_DEBUG_PAGES=1 asks for Django's page.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.status_code < 400:
            return response
        from p360.core.api_errors import is_api_path  # at call time, like refuse_nul: DRF settings import cycle

        content_type = response.get("Content-Type", "")
        if is_api_path(request.path):
            # Any error that is not JSON: HTML pages, and Django's text/plain DEBUG pages, which it serves to
            # clients that do not accept HTML (an API client sending `Accept: application/json`).
            return response if content_type.startswith("application/json") else self._as_json(response)
        if not content_type.startswith("text/html"):
            return response
        if (
            response.status_code == 404
            and settings.DEBUG
            and not settings.P360_DEBUG_PAGES
            and not response.streaming
            and _DEBUG_PAGE_MARKER in response.content
        ):
            return page_not_found(request, Http404())
        return response

    @staticmethod
    def _as_json(response: HttpResponse) -> HttpResponse:
        from p360.core.api_errors import default_message, error_response

        status = response.status_code
        replacement = error_response(status, default_message(status, response.reason_phrase))
        for header in _KEPT_HEADERS:
            if header in response:
                replacement[header] = response[header]
        return replacement
