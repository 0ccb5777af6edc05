"""Ingestion's retention step (issue 16, "logs": 90 days): old runs (not queued or running), their quarantined
rows, their ingestion jobs and their stored files. Registered in ingestion/registrations.py; the core's engine
(`p360.core.jobs.retention.run_kind`) runs it inside the kind's transaction and writes the audit row."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from django.core.files.storage import default_storage
from django.db.models import QuerySet

from ingestion.models import IngestionRun, QuarantinedRow, RunStatus
from p360.core.jobs.models import Job

if TYPE_CHECKING:
    from tenants.models import Organization


def _old_runs(org: Organization | None, cutoff: dt.datetime) -> QuerySet[IngestionRun]:
    return IngestionRun.objects.filter(org=org, created_at__lt=cutoff).exclude(
        status__in=[RunStatus.QUEUED, RunStatus.RUNNING]
    )


def logs_step(org: Organization | None, *, cutoff: dt.datetime, dry_run: bool) -> dict[str, Any]:
    """Runs of `org` (None: runs of no org, REDS and Bombora) created before `cutoff`, with what hangs off them."""
    found = list(_old_runs(org, cutoff).values_list("pk", "job_id", "file_path"))  # one query, not three
    run_ids = [pk for pk, _, _ in found]
    job_ids = [job for _, job, _ in found if job]
    paths = {path for _, _, path in found if path}
    # A re-run of a stored file points at the same file: keep a file a younger run still names.
    shared = set(
        IngestionRun.objects.filter(file_path__in=paths).exclude(pk__in=run_ids).values_list("file_path", flat=True)
    )
    files = sorted(paths - shared)
    counts = {
        "ingestion_ingestionrun": len(run_ids),
        "ingestion_quarantinedrow": QuarantinedRow.objects.filter(run_id__in=run_ids).count(),
        "jobs_job": Job.objects.filter(pk__in=job_ids, kind__startswith="ingestion.").count(),
        "stored_files": len(files),
    }
    if dry_run or not run_ids:
        return {"rows": counts}
    # Files first (deleting a missing file is a no-op): a crash after this rolls the rows back and the next pass
    # deletes them, never leaving an orphaned file nobody lists.
    for name in files:
        default_storage.delete(name)
    quarantined = QuarantinedRow.objects.filter(run_id__in=run_ids).delete()[0]
    jobs = Job.objects.filter(pk__in=job_ids, kind__startswith="ingestion.").delete()[0]
    deleted_runs = IngestionRun.objects.filter(pk__in=run_ids).delete()[1].get("ingestion.IngestionRun", 0)
    return {
        "rows": {
            "ingestion_ingestionrun": deleted_runs,
            "ingestion_quarantinedrow": quarantined,
            "jobs_job": jobs,
            "stored_files": len(files),
        }
    }
