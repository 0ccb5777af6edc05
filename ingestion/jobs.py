"""Job kinds of the ingestion app (registered when the app loads)."""

from __future__ import annotations

from typing import Any

from p360.core.jobs.services import JobContext, job_handler


@job_handler("ingestion.run", title="Ingestion run")
def ingestion_run(ctx: JobContext, run_id: int) -> dict[str, Any]:
    from ingestion.services import execute_run

    return execute_run(ctx, run_id)


@job_handler("ingestion.run_global", title="Ingestion run (REDS, routed to organisations)", per_org=False)
def ingestion_run_global(ctx: JobContext, run_id: int) -> dict[str, Any]:
    from ingestion.services import execute_run

    return execute_run(ctx, run_id)
