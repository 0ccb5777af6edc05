"""Job kinds of the reports (autodiscovered by p360.core.jobs): the PDF report for large ranges."""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path
from typing import Any

from django.core.files import File
from django.core.files.storage import default_storage
from django.db import connection

from p360.core.jobs.services import JobContext, job_handler
from p360.core.tenancy import org_storage_name
from reporting.selectors import Filters
from tenants.models import Organization

PDF_JOB = "reporting.pdf_export"


@job_handler(PDF_JOB, title="PDF report")
def pdf_export(
    ctx: JobContext,
    *,
    start: str,
    end: str,
    sources: list[str] | None = None,
    campaign_ids: list[int] | None = None,
    program_ids: list[int] | None = None,
    scope: str = "",
) -> dict[str, Any]:
    """Build the PDF in a temporary file, then store it under the org's prefix (a re-run replaces it)."""

    org = Organization.objects.get(schema_name=connection.schema_name)  # type: ignore[attr-defined]
    first, last = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
    filters = Filters(
        sources=tuple(sources or ()), campaign_ids=tuple(campaign_ids or ()), program_ids=tuple(program_ids or ())
    )
    name = org_storage_name(f"reports/{ctx.job.pk}/report-{start}-to-{end}.pdf")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "report.pdf"
        with path.open("wb") as handle:
            # reportlab (~0.4 s to import) loads when a PDF is made, not with the job registry
            from reporting.pdf import build_pdf

            info = build_pdf(
                handle, org_name=org.name, start=first, end=last, filters=filters, scope=scope, progress=ctx.progress
            )
        if default_storage.exists(name):
            default_storage.delete(name)
        with path.open("rb") as handle:
            stored = default_storage.save(name, File(handle, name=path.name))
        size = path.stat().st_size
    ctx.log(f"PDF report: {info['pages']} pages, {info['rows']:,} table rows, {size:,} bytes")
    return {"file": stored, "size": size, **info}
