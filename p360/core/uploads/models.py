"""Resumable (tus) uploads of one organisation (its schema)."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class UploadStatus(models.TextChoices):
    UPLOADING = "uploading", "Uploading"
    COMPLETE = "complete", "Complete"
    EXPIRED = "expired", "Expired"
    ABORTED = "aborted", "Aborted"


class Upload(models.Model):
    """One file sent with the tus protocol: staged as a part file, then moved into org storage.

    `offset` is the truth about the staged part: bytes past it (from a request that died half-way
    through) are cut off before the next append.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    filename = models.CharField(max_length=255, blank=True)
    size = models.BigIntegerField(help_text="Upload-Length: the whole file, in bytes.")
    offset = models.BigIntegerField(default=0, help_text="Bytes received and stored so far.")
    metadata = models.JSONField(default=dict, blank=True, help_text="Decoded tus Upload-Metadata.")
    purpose = models.CharField(max_length=64, blank=True, db_index=True, help_text='For example "audience_import".')
    sha256 = models.CharField(max_length=64, blank=True, db_index=True, help_text="Hex SHA-256 of the complete file.")
    status = models.CharField(max_length=16, choices=UploadStatus.choices, default=UploadStatus.UPLOADING)
    # The user table is in the public schema; a plain FK works through the search path.
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by_email = models.CharField(max_length=254, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Unfinished uploads are expired after this.")
    storage_name = models.CharField(max_length=500, blank=True, help_text="Name in the org's storage once complete.")

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["-created_at"], name="upload_created"),
            models.Index(fields=["status", "expires_at"], name="upload_status_expiry"),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(size__gte=0), name="upload_size_not_negative"),
            models.CheckConstraint(
                condition=models.Q(offset__gte=0, offset__lte=models.F("size")), name="upload_offset_within_size"
            ),
        ]

    def __str__(self) -> str:
        return self.filename or str(self.id)

    @property
    def percent(self) -> float:
        if self.size == 0:
            return 100.0 if self.status == UploadStatus.COMPLETE else 0.0
        return min(100.0, 100.0 * self.offset / self.size)

    @property
    def is_complete(self) -> bool:
        return self.status == UploadStatus.COMPLETE
