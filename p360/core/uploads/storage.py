"""Where upload bytes live: a staged part file while uploading, then the organisation's storage.

* Staging: `P360_DATA_DIR/uploads/<schema>/<uuid>.part` on local disk (tus appends at offsets,
  which object stores cannot do).
* Complete files: `org_storage()`, a django-storages backend whose every key starts with the
  org's schema: local `P360_DATA_DIR/media/orgs/<schema>/` by default, or S3 (any S3 API) under
  `orgs/<schema>/` when `P360_S3_BUCKET` is set. One org's storage cannot name another's files.
* `local_copy(upload)`: a local path to a complete upload's bytes on any backend, for readers
  (the importer) that need a real file.
"""

from __future__ import annotations

import os
import posixpath
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.files import File
from django.core.files.storage import FileSystemStorage, Storage
from django.db import connection
from django_tenants.utils import get_public_schema_name

from p360.core.tenancy import org_storage_prefix

if TYPE_CHECKING:
    from p360.core.uploads.models import Upload


class NotInOrgSchema(RuntimeError):
    """Upload storage was asked for outside an organisation's schema."""


def current_schema(schema: str | None = None) -> str:
    """The org schema to file things under; refuses the public schema (uploads are per org)."""
    name = schema or connection.schema_name  # type: ignore[attr-defined]
    if not name or name == get_public_schema_name():
        raise NotInOrgSchema("upload storage is per organisation; the connection is in the public schema")
    return name


def staging_dir(schema: str | None = None) -> Path:
    return Path(settings.DATA_DIR) / "uploads" / current_schema(schema)


def part_path(upload: Upload, schema: str | None = None) -> Path:
    return staging_dir(schema) / f"{upload.pk}.part"


def using_s3() -> bool:
    return bool(getattr(settings, "P360_S3_BUCKET", ""))


def org_storage(schema: str | None = None) -> Storage:
    """The storage of one organisation (the current schema's by default)."""
    schema = current_schema(schema)
    if using_s3():
        from storages.backends.s3 import S3Storage

        return S3Storage(
            bucket_name=settings.P360_S3_BUCKET,
            endpoint_url=getattr(settings, "P360_S3_ENDPOINT_URL", "") or None,
            region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
            location=org_storage_prefix(schema),
            addressing_style="path",
            signature_version="s3v4",  # without it a custom endpoint gets SigV2 presigned URLs
            file_overwrite=False,
            default_acl=None,
            querystring_expire=300,
        )
    return FileSystemStorage(location=str(Path(settings.MEDIA_ROOT) / org_storage_prefix(schema)), base_url=None)


class _StagedFile(File):
    """A File whose bytes are already on local disk: FileSystemStorage moves it (a rename on the same
    filesystem) instead of copying a gigabyte; S3Storage streams it up in parts."""

    def temporary_file_path(self) -> str:
        return str(self.name)


def store_part(part: Path, name: str, schema: str | None = None) -> str:
    """Move a finished part file into the org's storage under `name`; returns the stored name."""
    storage = org_storage(schema)
    with part.open("rb") as handle:
        staged = _StagedFile(handle, name=str(part))
        stored = storage.save(name, staged)
    part.unlink(missing_ok=True)  # FileSystemStorage already moved it; S3 copied it
    return stored


def delete_stored(name: str, schema: str | None = None) -> None:
    if name:
        org_storage(schema).delete(name)


@contextmanager
def local_copy(upload: Upload) -> Iterator[Path]:
    """A local path holding a complete upload's bytes, on any storage backend.

    Local storage: the stored file itself (do not modify it). S3: the object is downloaded (in
    parallel ranged parts, never into memory) to a temporary file that is removed on exit.
    """
    from p360.core.uploads.models import UploadStatus

    if upload.status != UploadStatus.COMPLETE or not upload.storage_name:
        raise FileNotFoundError(f"upload {upload.pk} is not complete")
    storage = org_storage()
    if isinstance(storage, FileSystemStorage):
        path = Path(storage.path(upload.storage_name))
        if not path.exists():
            raise FileNotFoundError(f"the file of upload {upload.pk} is missing from storage")
        yield path
        return
    key = posixpath.join(storage.location, upload.storage_name)  # type: ignore[attr-defined]
    tmp_dir = Path(settings.DATA_DIR) / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    suffix = Path(upload.storage_name).suffix
    fd, tmp_name = tempfile.mkstemp(prefix=f"upload-{upload.pk}-", suffix=suffix, dir=tmp_dir)
    os.close(fd)
    try:
        storage.bucket.download_file(key, tmp_name)  # type: ignore[attr-defined]
        yield Path(tmp_name)
    finally:
        Path(tmp_name).unlink(missing_ok=True)
