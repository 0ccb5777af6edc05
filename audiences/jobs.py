"""Job kinds of the audiences app (found by p360.core.jobs.services.job_kinds)."""

from __future__ import annotations

from typing import Any

from audiences.models import AudienceImport
from audiences.pipeline import ImportFailed, run_import
from p360.core.jobs.services import JobContext, JobError, job_handler, job_start
from tenants.models import Organization
from tenants.selectors import current_org


@job_handler("audiences.import", title="Audience import")
def audience_import(ctx: JobContext, import_id: int) -> dict[str, Any]:
    AudienceImport.objects.filter(pk=import_id).update(job_id=ctx.job.pk)
    try:
        result = run_import(import_id, ctx)
    except ImportFailed as exc:
        raise JobError(str(exc)) from exc
    _refresh_built_after_import()  # issue 5: saved audiences follow the new records
    return result


# --- issue 5: refreshing built audiences (after imports and on a schedule) ---------------------------------------
@job_handler("audiences.refresh_built", title="Refresh built audiences")
def refresh_built(ctx: JobContext, reason: str = "scheduled") -> dict[str, Any]:
    from audiences.saved import refresh_all_built

    result = refresh_all_built(reason=reason)
    ctx.log(f"refreshed {result['refreshed']} built audience(s); {result['failed']} could not be refreshed")
    return result


def _refresh_built_after_import() -> None:
    from django.db import transaction

    from audiences.models import Audience, AudienceKind

    if Audience.objects.filter(kind=AudienceKind.BUILT).exists():
        org = current_org()
        transaction.on_commit(
            lambda: job_start(kind="audiences.refresh_built", org=org, params={"reason": "import"}, max_attempts=2)
        )


def start_refresh_jobs() -> int:
    """Scheduled (public schema): start `audiences.refresh_built` for every active org with built audiences."""
    from django_tenants.utils import schema_context

    from audiences.models import Audience, AudienceKind

    started = 0
    for org in Organization.objects.active():
        with schema_context(org.schema_name):
            has_built = Audience.objects.filter(kind=AudienceKind.BUILT).exists()
        if has_built:
            job_start(kind="audiences.refresh_built", org=org, params={"reason": "scheduled"}, max_attempts=2)
            started += 1
    return started
