"""Ingestion runs, quarantined rows and Vibe report requests (public schema, each carrying its org).

Runs live in the public schema because one REDS file feeds several organisations (rows are routed
by TTD advertiser id) and because the admin's runs page filters across organisations, like jobs.
The data itself (staged rows, REDS events, daily metrics) lives in each organisation's schema.
"""

from __future__ import annotations

from typing import Any

from django.db import models


class Source(models.TextChoices):
    SURFSIDE = "surfside", "Surfside"
    VIBE = "vibe", "Vibe"
    FACEBOOK = "facebook", "Facebook"
    REDS = "reds", "TTD REDS"
    BOMBORA = "bombora", "Bombora"


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class Trigger(models.TextChoices):
    COMMAND = "command", "Command"
    SCHEDULE = "schedule", "Schedule"
    UPLOAD = "upload", "Upload"
    RETRY = "retry", "Retry / re-run"
    DEMO = "demo", "Demo"


class IngestionRun(models.Model):
    source = models.CharField(max_length=16, choices=Source.choices, db_index=True)
    org = models.ForeignKey(
        "tenants.Organization",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="ingestion_runs",
        help_text="Empty for REDS files, whose rows are routed to organisations by advertiser id.",
    )
    run_date = models.DateField(null=True, blank=True, db_index=True, help_text="The day the run is for, if one.")
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.COMMAND)
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED, db_index=True)
    file_name = models.CharField(max_length=500, blank=True)
    file_path = models.CharField(max_length=500, blank=True, help_text="Stored copy (default storage) for re-runs.")
    file_size = models.BigIntegerField(null=True, blank=True)
    content_hash = models.CharField(max_length=64, blank=True, db_index=True)
    params = models.JSONField(default=dict, blank=True)
    rows_read = models.BigIntegerField(default=0)
    rows_loaded = models.BigIntegerField(default=0)
    rows_quarantined = models.BigIntegerField(default=0)
    duplicates = models.BigIntegerField(default=0, help_text="Rows merged into another row with the same key.")
    metrics_written = models.BigIntegerField(default=0)
    metrics_replaced = models.BigIntegerField(default=0)
    dates = models.JSONField(default=list, blank=True, help_text="Days whose data this run replaced.")
    routed = models.JSONField(default=dict, blank=True, help_text="REDS: rows loaded per organisation slug.")
    org_slices = models.JSONField(
        default=dict,
        blank=True,
        help_text="REDS: per organisation slug, its own counts, days and error text (what its org admin shows).",
    )
    error = models.TextField(blank=True)
    job_id = models.BigIntegerField(null=True, blank=True)
    rerun_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reruns")
    created_by_email = models.CharField(max_length=254, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "ingestion run"
        indexes = [models.Index(fields=["org", "source", "-created_at"], name="run_org_source_time")]

    def __str__(self) -> str:
        return f"{self.get_source_display()} run #{self.pk}"

    @property
    def duration_seconds(self) -> float | None:
        if not self.started_at or not self.finished_at:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    def summary(self) -> dict[str, Any]:
        """The contract's JSON keys (`ingest --json`) plus a few useful extras."""
        return {
            "run_id": self.pk,
            "status": self.status,
            "rows_read": self.rows_read,
            "rows_loaded": self.rows_loaded,
            "rows_quarantined": self.rows_quarantined,
            "duplicates": self.duplicates,
            "metrics_written": self.metrics_written,
            "metrics_replaced": self.metrics_replaced,
            "dates": self.dates,
            "routed": self.routed,
            "source": self.source,
            "org": self.org.slug if self.org_id else None,  # type: ignore[union-attr]
            "error": self.error,
        }


class QuarantinedRow(models.Model):
    run = models.ForeignKey(IngestionRun, on_delete=models.CASCADE, related_name="quarantined")
    line_no = models.BigIntegerField(help_text="Line in the file (the header is line 1).")
    reason = models.TextField()
    raw = models.TextField(blank=True)
    org_slug = models.CharField(
        max_length=63,
        blank=True,
        default="",
        help_text="REDS: the organisation whose advertiser id the row carries (empty: no organisation's).",
    )

    class Meta:
        ordering = ["run", "line_no"]
        indexes = [models.Index(fields=["run", "line_no"], name="quarantine_run_line")]

    def __str__(self) -> str:
        return f"line {self.line_no}: {self.reason}"


class VibeReportRequest(models.Model):
    """Every report creation sent to Vibe: the shared rate-limit ledger (15 per hour per API key)."""

    key_hash = models.CharField(max_length=64, db_index=True, help_text="SHA-256 of the API key (never the key).")
    org = models.ForeignKey("tenants.Organization", null=True, on_delete=models.SET_NULL, related_name="+")
    run = models.ForeignKey(IngestionRun, null=True, on_delete=models.SET_NULL, related_name="vibe_requests")
    report_id = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=32, default="created")
    report_date = models.DateField(null=True)
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Vibe report {self.report_id or '?'}"
