"""Job kinds of the segments app (found by p360.core.jobs.services.job_kinds)."""

from __future__ import annotations

from typing import Any

from p360.core.jobs.services import JobContext, JobError, job_handler


@job_handler("segments.reevaluate", title="Segment re-evaluation")
def reevaluate_job(ctx: JobContext, segment_id: int) -> dict[str, Any]:
    """Fill a new or changed segment with a large audience, chunk by chunk (each chunk commits; a re-run
    re-evaluates idempotently: a transition is written only where membership differs from the rule)."""
    from segments.models import Segment
    from segments.services import reevaluate_segment

    segment = Segment.objects.filter(pk=segment_id).first()
    if segment is None:
        raise JobError(f"unknown segment {segment_id}")
    outcome = reevaluate_segment(segment, progress=ctx.progress)
    ctx.log(f"segment {segment.name}: {outcome.pairs:,} users evaluated, {outcome.entries:,} entered")
    return {"users": outcome.pairs, "entered": outcome.entries, "exited": outcome.exits}


@job_handler("segments.refresh_audiences", title="Refresh audiences following event segments")
def refresh_audiences_job(ctx: JobContext, due_by: str | None = None) -> dict[str, Any]:
    """Re-materialise the built audiences following the segments whose membership changed (debounced; started by
    the sweep in segments/audience_refresh.py with the time it saw them due: `due_by`, ISO 8601)."""
    from datetime import datetime

    from segments.audience_refresh import refresh_due

    result = refresh_due(now=datetime.fromisoformat(due_by) if due_by else None)
    ctx.log(
        f"segments {result['segments']}: {len(result['refreshed'])} audience(s) refreshed, "
        f"{len(result['failed'])} could not be refreshed"
    )
    return result
