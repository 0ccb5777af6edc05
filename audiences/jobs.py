"""Job kinds of the audiences app (found by p360.jobs.services.job_kinds)."""

from __future__ import annotations

from typing import Any

from audiences.models import AudienceImport
from audiences.pipeline import ImportFailed, run_import
from p360.jobs.services import JobContext, JobError, job_handler


@job_handler("audiences.import", title="Audience import")
def audience_import(ctx: JobContext, import_id: int) -> dict[str, Any]:
    AudienceImport.objects.filter(pk=import_id).update(job_id=ctx.job.pk)
    try:
        return run_import(import_id, ctx)
    except ImportFailed as exc:
        raise JobError(str(exc)) from exc
