"""Marketer page: upload a file (the drop zone) and the org's upload history."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from p360.core.uploads.models import Upload, UploadStatus
from p360.core.uploads.selectors import upload_history

PAGE_SIZE = 25


def uploads_page(request: HttpRequest) -> HttpResponse:
    search = request.GET.get("q", "").strip()[:200]
    status = request.GET.get("status", "")
    uploads = upload_history(search=search, status=status)
    page = Paginator(uploads, PAGE_SIZE).get_page(request.GET.get("page"))
    completed = None
    if completed_id := request.GET.get("completed"):
        try:
            completed = Upload.objects.filter(pk=completed_id, status=UploadStatus.COMPLETE).first()
        except ValidationError:  # a malformed id in the URL is ignored
            completed = None
    query = request.GET.copy()
    query.pop("page", None)
    query.pop("completed", None)
    return render(
        request,
        "uploads/uploads_page.html",
        {
            "page": page,
            "search": search,
            "status": status,
            "statuses": UploadStatus.choices,
            "filtered": bool(search or status),
            "completed": completed,
            "query": query.urlencode(),
            "total": Upload.objects.count(),
        },
    )
