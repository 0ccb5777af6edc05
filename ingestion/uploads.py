"""Facebook (Meta Ads Manager) uploads: checks shared by the marketer page and the org admin."""

from __future__ import annotations

import datetime as dt
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile

from ingestion.models import IngestionRun, RunStatus, Source, Trigger
from ingestion.services import file_sha256, ingest_file

if TYPE_CHECKING:
    from tenants.models import Organization, User

ALLOWED_SUFFIXES = (".csv", ".xlsx")
REDS_SUFFIXES = (".csv", ".psv", ".tsv", ".txt", ".gz")
UPLOAD_SOURCES = (Source.FACEBOOK, Source.SURFSIDE, Source.VIBE, Source.REDS)


class UploadRejected(Exception):
    pass


@dataclass
class UploadOutcome:
    run: IngestionRun | None
    duplicate_of: IngestionRun | None = None  # the earlier run that loaded the same content


def max_bytes() -> int:
    return settings.P360_INGEST_MAX_UPLOAD_MB * 1024 * 1024


def check_upload(upload: UploadedFile, source: str = Source.FACEBOOK) -> None:
    name = upload.name or ""
    allowed = REDS_SUFFIXES if source == Source.REDS else ALLOWED_SUFFIXES
    if not name.lower().endswith(allowed):
        raise UploadRejected(f"{name or 'the file'}: only {', '.join(allowed)} files are accepted")
    if upload.size is not None and upload.size > max_bytes():
        raise UploadRejected(
            f"{name} is {upload.size / 1e6:,.1f} MB; the limit is {settings.P360_INGEST_MAX_UPLOAD_MB} MB"
        )
    if upload.size == 0:
        raise UploadRejected(f"{name} is empty")


def handle_upload(
    *,
    org: Organization,
    upload: UploadedFile,
    actor: User,
    source: str = Source.FACEBOOK,
    run_date: dt.date | None = None,
    load_again: bool = False,
) -> UploadOutcome:
    """Save the upload, refuse an identical file already loaded unless confirmed, then load it.
    A REDS file uploaded in one org's admin loads that org's rows only (others are quarantined)."""
    if source not in UPLOAD_SOURCES:
        raise UploadRejected(f"{source!r} files cannot be uploaded here")
    check_upload(upload, source)
    suffix = Path(upload.name or "upload.csv").suffix.lower()
    with tempfile.NamedTemporaryFile(suffix=suffix) as tmp:
        for chunk in upload.chunks():
            tmp.write(chunk)
        tmp.flush()
        path = Path(tmp.name)
        digest = file_sha256(path)
        earlier = (
            IngestionRun.objects.filter(org=org, source=source, content_hash=digest, status=RunStatus.SUCCEEDED)
            .order_by("-created_at")
            .first()
        )
        if earlier is not None and not load_again:
            return UploadOutcome(run=None, duplicate_of=earlier)
        run = ingest_file(
            source=source,
            org=org,
            path=path,
            actor=actor,
            trigger=Trigger.UPLOAD,
            file_name=upload.name,
            run_date=run_date,
        )
    return UploadOutcome(run=run, duplicate_of=earlier)


def handle_facebook_upload(
    *, org: Organization, upload: UploadedFile, actor: User, load_again: bool = False
) -> UploadOutcome:
    return handle_upload(org=org, upload=upload, actor=actor, source=Source.FACEBOOK, load_again=load_again)
