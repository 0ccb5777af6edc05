"""The tus 1.0.0 resumable-upload protocol at /o/<slug>/api/v1/uploads/ (https://tus.io/protocols/resumable-upload).

Extensions: creation, creation-with-upload, termination, checksum (sha1, sha256), expiration.
Authentication and the org check happen before these views (session or API token, then the org
middleware: anonymous -> 401, an org the user may not see -> 404). Session requests must carry the
CSRF header on POST/PATCH/DELETE; token requests carry no cookies and need none.

Plain Django views rather than DRF: the body must be streamed from the socket in small reads
(never `request.body`, never a parser), and every refusal must happen before the first read.
Errors use the contract's JSON shape plus the tus headers.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.core.handlers.wsgi import LimitedStream
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.utils.http import http_date
from django.views.decorators.csrf import csrf_exempt

from p360.core.api_errors import error_body
from p360.core.uploads import services
from p360.core.uploads.models import Upload, UploadStatus
from p360.core.uploads.services import UploadError, UploadTooLarge

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,creation-with-upload,termination,checksum,expiration"
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"
# A refused body up to this size is read and thrown away (64 KB at a time) so the client sees the
# answer instead of a reset connection; a larger one is not read at all.
DISCARD_LIMIT = 32 * 1024 * 1024
LIST_MAX = 100


class _CsrfCheck(CsrfViewMiddleware):
    def _reject(self, request: HttpRequest, reason: str) -> str:  # type: ignore[override]
        return reason


def _csrf_problem(request: HttpRequest) -> str | None:
    if getattr(request, "_dont_enforce_csrf_checks", False):
        return None  # API token requests (no cookies) and the test client
    check = _CsrfCheck(lambda _request: HttpResponse())
    check.process_request(request)
    reason = check.process_view(request, lambda _request: HttpResponse(), (), {})
    return reason if isinstance(reason, str) else None


def _tus(response: HttpResponse) -> HttpResponse:
    response["Tus-Resumable"] = TUS_VERSION
    response["Cache-Control"] = "no-store"
    return response


def _upload_headers(response: HttpResponse, upload: Upload) -> HttpResponse:
    response["Upload-Offset"] = str(upload.offset)
    if upload.status == UploadStatus.UPLOADING and upload.expires_at is not None:
        response["Upload-Expires"] = http_date(upload.expires_at.timestamp())
    return response


def _discard_unread_body(request: HttpRequest) -> None:
    """Deal with a body the view refused without reading.

    Django's development and test server drains an unread body on close with ONE read of all the
    rest (`ServerHandler.close` -> `LimitedStream.read()`), which would buffer a refused gigabyte in
    memory. A small rest is read here in 64 KB pieces and dropped (the client then gets the answer
    on a healthy connection); a large one is not read at all (the server is told nothing is left,
    and the connection fails on its next read and closes). Production servers manage this themselves.
    """
    server_stream = request.META.get("wsgi.input")
    if not isinstance(server_stream, LimitedStream):
        return
    position = getattr(server_stream, "_pos", None)
    if not isinstance(position, int):
        return  # a Django whose LimitedStream changed shape: leave it to the server
    remaining = server_stream.limit - position
    if 0 < remaining <= DISCARD_LIMIT:
        while server_stream.read(services.READ_SIZE):
            pass
    elif remaining > 0:
        server_stream.limit = 0


def _error(
    request: HttpRequest,
    exc: UploadError | None = None,
    *,
    status: int = 400,
    message: str = "",
    code: str | None = None,
    details: dict[str, Any] | None = None,
) -> HttpResponse:
    if exc is not None:
        status, message, code, details = exc.status, exc.message, exc.code, exc.details
    _discard_unread_body(request)
    response = JsonResponse(error_body(status, message, code, details), status=status)
    if status == 412:
        response["Tus-Version"] = TUS_VERSION
    if status == 460:
        response.reason_phrase = "Checksum Mismatch"  # the tus checksum extension's own status
    if isinstance(exc, UploadTooLarge) or status == 413:
        response["Tus-Max-Size"] = str(services.max_upload_bytes())
    if isinstance(exc, services.OffsetMismatch):
        response["Upload-Offset"] = str(exc.details.get("expected_offset", ""))
    return _tus(response)


def _method(request: HttpRequest) -> str:
    """The tus method: POST may carry X-HTTP-Method-Override for PATCH or DELETE (old proxies)."""
    override = request.META.get("HTTP_X_HTTP_METHOD_OVERRIDE", "").upper()
    if request.method == "POST" and override in {"PATCH", "DELETE"}:
        return override
    return request.method or "GET"


def _int_header(request: HttpRequest, meta_key: str, name: str) -> int:
    raw = request.META.get(meta_key)
    if raw is None or raw == "":
        raise UploadError(f"The {name} header is required.", header=name)
    try:
        value = int(raw)
    except ValueError:
        raise UploadError(f"{name} must be a non-negative integer, not {raw[:40]!r}.", header=name) from None
    if value < 0:
        raise UploadError(f"{name} must be a non-negative integer.", header=name)
    return value


def _content_length(request: HttpRequest) -> int:
    if request.META.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked":
        raise _LengthRequired()
    raw = request.META.get("CONTENT_LENGTH") or ""
    if raw == "":
        raise _LengthRequired()
    try:
        value = int(raw)
    except ValueError:
        raise UploadError("Content-Length must be an integer.") from None
    if value < 0:
        raise UploadError("Content-Length must be an integer.")
    return value


class _LengthRequired(UploadError):
    status = 411
    code = "length_required"

    def __init__(self) -> None:
        super().__init__("Send the chunk with a Content-Length header (chunked transfer encoding is not accepted).")


class _UnsupportedMediaType(UploadError):
    status = 415
    code = "unsupported_media_type"

    def __init__(self) -> None:
        super().__init__(f"Send the bytes as Content-Type: {OFFSET_CONTENT_TYPE}.")


def _check_version(request: HttpRequest) -> None:
    if request.META.get("HTTP_TUS_RESUMABLE") != TUS_VERSION:
        raise _VersionMismatch(request.META.get("HTTP_TUS_RESUMABLE", ""))


class _VersionMismatch(UploadError):
    status = 412
    code = "unsupported_version"

    def __init__(self, sent: str) -> None:
        super().__init__(
            f"This server speaks tus {TUS_VERSION}; send the header Tus-Resumable: {TUS_VERSION}"
            + (f" (got {sent[:20]!r})." if sent else "."),
            supported=[TUS_VERSION],
        )


def _is_offset_stream(request: HttpRequest) -> bool:
    return request.META.get("CONTENT_TYPE", "").split(";", 1)[0].strip().lower() == OFFSET_CONTENT_TYPE


def _checksum(request: HttpRequest) -> tuple[str, str] | None:
    header = request.META.get("HTTP_UPLOAD_CHECKSUM")
    return services.parse_checksum(header) if header else None


def _options() -> HttpResponse:
    response = HttpResponse(status=204)
    response["Tus-Resumable"] = TUS_VERSION
    response["Tus-Version"] = TUS_VERSION
    response["Tus-Extension"] = TUS_EXTENSIONS
    response["Tus-Max-Size"] = str(services.max_upload_bytes())
    response["Tus-Checksum-Algorithm"] = ",".join(services.CHECKSUM_ALGORITHMS)
    return response


def upload_url(request: HttpRequest, upload: Upload) -> str:
    org = request.org  # type: ignore[attr-defined]
    return request.build_absolute_uri(f"/o/{org.slug}/api/v1/uploads/{upload.pk}")


def upload_json(request: HttpRequest, upload: Upload) -> dict[str, Any]:
    return {
        "id": str(upload.pk),
        "url": upload_url(request, upload),
        "filename": upload.filename,
        "size": upload.size,
        "offset": upload.offset,
        "percent": round(upload.percent, 2),
        "status": upload.status,
        "purpose": upload.purpose,
        "sha256": upload.sha256 or None,
        "metadata": upload.metadata,
        "created_by": upload.created_by_email or None,
        "created_at": upload.created_at.isoformat() if upload.created_at else None,
        "completed_at": upload.completed_at.isoformat() if upload.completed_at else None,
        "expires_at": upload.expires_at.isoformat() if upload.expires_at else None,
    }


def _unsafe_guard(request: HttpRequest) -> HttpResponse | None:
    problem = _csrf_problem(request)
    if problem:
        return _error(
            request,
            status=403,
            message=f"CSRF check failed: {problem}",
            code="csrf_failed",
            details={"reason": problem},
        )
    return None


@csrf_exempt
def uploads_collection(request: HttpRequest) -> HttpResponse:
    """OPTIONS (capabilities), POST (creation, creation-with-upload), GET (recent uploads as JSON)."""
    method = _method(request)
    try:
        if method == "OPTIONS":
            return _options()
        if method == "GET":
            return _list(request)
        if method != "POST":
            response = _error(request, status=405, message=f"{method} is not allowed here.")
            response["Allow"] = "OPTIONS, GET, POST"
            return response
        _check_version(request)
        if (refused := _unsafe_guard(request)) is not None:
            return refused
        return _create(request)
    except UploadError as exc:
        return _error(request, exc)


def _create(request: HttpRequest) -> HttpResponse:
    if request.META.get("HTTP_UPLOAD_DEFER_LENGTH"):
        raise UploadError("Upload-Defer-Length is not supported: send Upload-Length.", header="Upload-Defer-Length")
    size = _int_header(request, "HTTP_UPLOAD_LENGTH", "Upload-Length")
    services.check_size(size)  # before anything else, and before any body byte is read
    metadata = services.parse_metadata(request.META.get("HTTP_UPLOAD_METADATA", ""))
    body_length = int(request.META.get("CONTENT_LENGTH") or 0)
    if body_length and not _is_offset_stream(request):
        raise _UnsupportedMediaType()
    if body_length > size:
        raise UploadTooLarge("The request carries more bytes than Upload-Length declares.")
    checksum = _checksum(request) if body_length else None
    upload = services.upload_create(size=size, metadata=metadata, actor=request.user)
    if body_length:  # creation-with-upload: the first chunk rides along with the POST
        try:
            upload = services.upload_append(
                upload_id=upload.pk,
                offset=0,
                stream=request,  # type: ignore[arg-type]
                length=body_length,
                checksum=checksum,
                actor=request.user,
            )
        except UploadError as exc:
            # The upload exists even though its first chunk was refused: say where it is.
            response = _error(request, exc)
            response["Location"] = upload_url(request, upload)
            return response
    response = JsonResponse(upload_json(request, upload), status=201)
    response["Location"] = upload_url(request, upload)
    return _tus(_upload_headers(response, upload))


def _list(request: HttpRequest) -> HttpResponse:
    uploads = Upload.objects.all()
    if status := request.GET.get("status"):
        uploads = uploads.filter(status=status)
    if purpose := request.GET.get("purpose"):
        uploads = uploads.filter(purpose=purpose)
    try:
        limit = max(1, min(LIST_MAX, int(request.GET.get("limit", "50"))))
        offset = max(0, int(request.GET.get("offset", "0")))
        if offset > 2**63 - 1 - LIST_MAX:  # past PostgreSQL's bigint: OFFSET would overflow (issue 15)
            raise ValueError("offset")
    except ValueError:
        raise UploadError("limit and offset must be integers.") from None
    page = list(uploads.order_by("-created_at")[offset : offset + limit])
    return _tus(
        JsonResponse(
            {"count": uploads.count(), "results": [upload_json(request, upload) for upload in page]},
        )
    )


@csrf_exempt
def upload_resource(request: HttpRequest, upload_id: uuid.UUID) -> HttpResponse:
    """HEAD (offset), PATCH (append), DELETE (terminate), GET (JSON status), OPTIONS."""
    method = _method(request)
    try:
        if method == "OPTIONS":
            return _options()
        if method == "GET":
            return _tus(JsonResponse(upload_json(request, services.get_upload_any(upload_id))))
        if method not in {"HEAD", "PATCH", "DELETE"}:
            response = _error(request, status=405, message=f"{method} is not allowed here.")
            response["Allow"] = "OPTIONS, GET, HEAD, PATCH, DELETE"
            return response
        _check_version(request)
        if method == "HEAD":
            return _head(request, upload_id)
        if (refused := _unsafe_guard(request)) is not None:
            return refused
        if method == "DELETE":
            services.upload_terminate(upload_id=upload_id, actor=request.user)
            return _tus(HttpResponse(status=204))
        return _patch(request, upload_id)
    except UploadError as exc:
        if method == "HEAD":  # no body on HEAD; the status and headers say it all
            response = _tus(HttpResponse(status=exc.status))
            return response
        return _error(request, exc)


def _head(request: HttpRequest, upload_id: uuid.UUID) -> HttpResponse:
    upload = services.get_upload(upload_id)
    response = HttpResponse(status=200)
    response["Upload-Length"] = str(upload.size)
    if upload.metadata:
        response["Upload-Metadata"] = services.encode_metadata(upload.metadata)
    return _tus(_upload_headers(response, upload))


def _patch(request: HttpRequest, upload_id: uuid.UUID) -> HttpResponse:
    # Every refusal below happens before the first byte of the body is read.
    if not _is_offset_stream(request):
        raise _UnsupportedMediaType()
    offset = _int_header(request, "HTTP_UPLOAD_OFFSET", "Upload-Offset")
    length = _content_length(request)
    if length > services.max_upload_bytes():
        limit = services.max_upload_bytes()
        raise UploadTooLarge(
            f"This request carries {services.human_size(length)}; "
            f"the largest file you can upload is {services.human_size(limit)}.",
            size=length,
            max_size=limit,
        )
    checksum = _checksum(request)
    upload = services.upload_append(
        upload_id=upload_id,
        offset=offset,
        stream=request,  # type: ignore[arg-type]  # HttpRequest.read streams from the socket
        length=length,
        checksum=checksum,
        actor=request.user,
    )
    return _tus(_upload_headers(HttpResponse(status=204), upload))
