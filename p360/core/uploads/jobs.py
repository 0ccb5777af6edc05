"""Job kind `uploads.expire` and the hourly schedule that starts it for each org with work to do."""

from __future__ import annotations

from typing import Any

from django_tenants.utils import schema_context

from p360.core.jobs.services import JobContext, job_handler, job_start
from p360.core.tenancy import org_model
from p360.core.uploads.services import expire_stale_uploads, has_expiry_work


@job_handler("uploads.expire", title="Expire unfinished uploads")
def expire_uploads(ctx: JobContext) -> dict[str, Any]:
    result = expire_stale_uploads(progress=ctx.progress)
    ctx.log(f"expired {result['expired']} unfinished uploads; removed {result['orphan_parts_removed']} orphan parts")
    return result


def start_expiry_jobs() -> int:
    """Scheduled hourly (public schema): start `uploads.expire` for every active org that has stale
    uploads or old part files; idle orgs get no job row. Returns how many jobs were started."""
    started = 0
    for org in org_model().objects.active():
        with schema_context(org.schema_name):
            busy = has_expiry_work()
        if busy:
            job_start(kind="uploads.expire", org=org, max_attempts=2)
            started += 1
    return started
