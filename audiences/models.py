"""Audiences of one organisation (its schema). Import and builder issues extend these."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex
from django.db import models


class AudienceKind(models.TextChoices):
    IMPORTED = "imported", "Imported file"
    BUILT = "built", "Built with the builder"
    SEED = "seed", "ICP seed"


class AudienceStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    READY = "ready", "Ready"
    ARCHIVED = "archived", "Archived"


class Audience(models.Model):
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=16, choices=AudienceKind.choices, default=AudienceKind.IMPORTED)
    status = models.CharField(max_length=16, choices=AudienceStatus.choices, default=AudienceStatus.DRAFT)
    record_count = models.BigIntegerField(default=0)
    current_version = models.ForeignKey(
        "AudienceVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    retention_versions = models.PositiveSmallIntegerField(
        default=5, help_text="How many versions keep their records; older ones are pruned after each import."
    )
    # The user table is in the public schema; a plain FK works through the search path.
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Built audiences (issue 5): the current tree, its definition number, and the last materialisation.
    tree = models.JSONField(null=True, blank=True)
    definition_number = models.PositiveIntegerField(default=0)
    materialized_at = models.DateTimeField(null=True, blank=True)
    refresh_error = models.TextField(blank=True)
    # Issue 18 (lineage): the audiences this one's tree references, kept by save() from `tree`; GIN-indexed so
    # "derived from X" is one indexed query, `parent_ids @> [X]` (audiences/lineage.py).
    parent_ids = models.JSONField(default=list, blank=True, editable=False)
    # Issue 13: the event segments this one's tree names (`segment` conditions), kept by save() like `parent_ids`;
    # "which built audiences follow segment S" is `segment_ids @> [S]` (segments/audience_refresh.py).
    segment_ids = models.JSONField(default=list, blank=True, editable=False)

    class Meta:
        ordering = ["-updated_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["name"], name="audience_name_unique")]
        indexes = [
            GinIndex(fields=["parent_ids"], name="audience_parent_ids_gin", opclasses=["jsonb_path_ops"]),
            GinIndex(fields=["segment_ids"], name="audience_segment_ids_gin", opclasses=["jsonb_path_ops"]),
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args: Any, **kwargs: Any) -> None:
        from audiences.lineage import parent_ids, segment_ids

        self.parent_ids = parent_ids(self.tree)
        self.segment_ids = segment_ids(self.tree)
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and "tree" in update_fields:
            missing = [f for f in ("parent_ids", "segment_ids") if f not in update_fields]
            kwargs["update_fields"] = [*update_fields, *missing]
        super().save(*args, **kwargs)


class ImportMode(models.TextChoices):
    APPEND = "append", "Append to the current records"
    REPLACE = "replace", "Replace the current records"


class DedupeRule(models.TextChoices):
    FIRST = "first", "Keep the first row"
    LAST = "last", "Keep the last row"
    MERGE = "merge", "Merge (fill empty fields from later rows)"


class ImportStatus(models.TextChoices):
    MAPPING = "mapping", "Waiting for the column mapping"
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    REJECTED = "rejected", "Rejected"


class VersionStatus(models.TextChoices):
    READY = "ready", "Ready"
    PRUNED = "pruned", "Pruned (records deleted by retention)"


class AudienceVersion(models.Model):
    """One immutable set of records. Each import makes a new version; the audience points at one.

    The records of a version live in their own partition of `audiences_record` (see records.py), so a
    version is created in one transaction with its rows and pruned by dropping a table.
    """

    audience = models.ForeignKey(Audience, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=VersionStatus.choices, default=VersionStatus.READY)
    record_count = models.BigIntegerField(default=0)
    note = models.CharField(max_length=300, blank=True)
    source_import = models.ForeignKey(
        "AudienceImport", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    restored_from = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_by_email = models.CharField(max_length=254, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["audience", "-number"]
        constraints = [models.UniqueConstraint(fields=["audience", "number"], name="audience_version_number_unique")]

    def __str__(self) -> str:
        return f"{self.audience.name} v{self.number}"


class AudienceImport(models.Model):
    """One file loaded (or being loaded) into an audience: options, progress, counts and quality report."""

    audience = models.ForeignKey(Audience, null=True, blank=True, on_delete=models.SET_NULL, related_name="imports")
    audience_name = models.CharField(max_length=200, help_text="Name of the audience to create or load into.")
    status = models.CharField(max_length=16, choices=ImportStatus.choices, default=ImportStatus.MAPPING, db_index=True)
    # The file: an upload (tus) or a path in the org's storage (command, API with a stored file).
    upload_id = models.UUIDField(null=True, blank=True)
    storage_name = models.CharField(max_length=500, blank=True)
    source_name = models.CharField(max_length=255)
    file_size = models.BigIntegerField(default=0)
    file_sha256 = models.CharField(max_length=64, blank=True, db_index=True)
    file_kind = models.CharField(max_length=8, blank=True)
    encoding = models.CharField(max_length=16, blank=True)
    delimiter = models.CharField(max_length=4, blank=True)
    headers = models.JSONField(default=list, blank=True)
    preview = models.JSONField(default=dict, blank=True, help_text="header -> the first rows' values")
    # What the user chose.
    mapping = models.JSONField(default=dict, blank=True, help_text="source header -> canonical field")
    custom_types = models.JSONField(default=dict, blank=True, help_text="source header -> custom field type")
    mode = models.CharField(max_length=8, choices=ImportMode.choices, default=ImportMode.APPEND)
    dedupe_key = models.CharField(max_length=120, blank=True)
    dedupe_rule = models.CharField(max_length=8, choices=DedupeRule.choices, default=DedupeRule.FIRST)
    default_country = models.CharField(max_length=2, default="US")
    # What happened.
    job_id = models.BigIntegerField(null=True, blank=True)
    version = models.ForeignKey(AudienceVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    rows_read = models.BigIntegerField(default=0)
    rows_loaded = models.BigIntegerField(default=0)
    rows_quarantined = models.BigIntegerField(default=0)
    duplicates = models.BigIntegerField(default=0)
    blank_lines = models.BigIntegerField(default=0)
    quality = models.JSONField(default=dict, blank=True)
    quarantine_file = models.CharField(max_length=500, blank=True)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by_email = models.CharField(max_length=254, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["audience", "-created_at"], name="import_audience_recent")]

    def __str__(self) -> str:
        return f"{self.source_name} -> {self.audience_name}"

    @property
    def is_finished(self) -> bool:
        return self.status in {ImportStatus.SUCCEEDED, ImportStatus.FAILED, ImportStatus.REJECTED}

    @property
    def reconciles(self) -> bool:
        return self.rows_read == self.rows_loaded + self.rows_quarantined + self.duplicates


class MappingTemplate(models.Model):
    """A saved column mapping an org reuses for files of the same shape."""

    name = models.CharField(max_length=120)
    mapping = models.JSONField(default=dict, help_text="normalised header -> canonical field")
    created_by_email = models.CharField(max_length=254, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["name"], name="mapping_template_name_unique")]

    def __str__(self) -> str:
        return self.name


# --- issue 5: built (saved) audiences: definitions, count history, templates ----------------------------------
class AudienceDefinition(models.Model):
    """One version of a built audience's tree: who changed it, when, and what changed."""

    audience = models.ForeignKey(Audience, on_delete=models.CASCADE, related_name="definitions")
    number = models.PositiveIntegerField()
    tree = models.JSONField()
    note = models.CharField(max_length=300, blank=True)
    changes = models.TextField(blank=True, help_text="A human summary of what changed from the previous version.")
    created_by_email = models.CharField(max_length=254, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["audience", "-number"]
        constraints = [models.UniqueConstraint(fields=["audience", "number"], name="audience_definition_number_unique")]

    def __str__(self) -> str:
        return f"{self.audience.name} definition {self.number}"


class AudienceCount(models.Model):
    """The materialised member count of a built audience at one time (on save and every refresh)."""

    audience = models.ForeignKey(Audience, on_delete=models.CASCADE, related_name="count_history")
    at = models.DateTimeField(auto_now_add=True, db_index=True)
    count = models.BigIntegerField()
    reason = models.CharField(max_length=40, blank=True)

    class Meta:
        ordering = ["audience", "at", "id"]

    def __str__(self) -> str:
        return f"{self.audience.name}: {self.count} at {self.at:%Y-%m-%d %H:%M}"


class AudienceTemplate(models.Model):
    """A reusable tree; built-in templates carry placeholders (`"value": null, "placeholder": true`)."""

    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    tree = models.JSONField()
    builtin = models.BooleanField(default=False)
    created_by_email = models.CharField(max_length=254, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-builtin", "name"]
        constraints = [models.UniqueConstraint(fields=["name"], name="audience_template_name_unique")]

    def __str__(self) -> str:
        return self.name


class BuiltAudience(Audience):
    """Proxy for the org admin's "Built audiences" page (kind = built)."""

    class Meta:
        proxy = True
        verbose_name = "built audience"
        verbose_name_plural = "built audiences"


class SegmentChange(models.Model):
    """Issue 13: an event segment whose membership changed and whose following built audiences (`segment_ids`) are
    stale until `due_at`, when the debounced refresh re-materialises them (segments/audience_refresh.py).

    One row per segment, whatever the number of transitions: the evaluator inserts it in the transaction that
    writes the transitions (only for segments a built audience follows), the refresh deletes it when it takes it.
    A plain id, not a foreign key: a deleted segment's row must survive, so its audiences record the error.
    """

    segment_id = models.BigIntegerField(primary_key=True)
    due_at = models.DateTimeField()
    marked_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"segment {self.segment_id} changed (refresh due {self.due_at:%Y-%m-%d %H:%M:%S})"
