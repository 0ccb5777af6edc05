"""Reads about uploads (the current org's schema)."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from p360.core.uploads.models import Upload, UploadStatus


def upload_history(*, search: str = "", status: str = "", purpose: str = "") -> QuerySet[Upload]:
    uploads = Upload.objects.select_related("created_by").order_by("-created_at")
    if search:
        uploads = uploads.filter(
            Q(filename__icontains=search) | Q(created_by_email__icontains=search) | Q(sha256__iexact=search)
        )
    if status in UploadStatus.values:
        uploads = uploads.filter(status=status)
    if purpose:
        uploads = uploads.filter(purpose=purpose)
    return uploads


def completed_with_sha256(sha256: str) -> QuerySet[Upload]:
    """Complete uploads of the current org with exactly this content (to recognise a file sent twice)."""
    return Upload.objects.filter(status=UploadStatus.COMPLETE, sha256=sha256.lower()).order_by("completed_at")
