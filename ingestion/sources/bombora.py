"""A Bombora ingestion run: fetch the file (upload or S3 pickup), load it with bombora.loader, finish the run.

The loading itself (parsing, staging, the partition swap) is Bombora's (bombora/loader.py and the modules it
names); the run, its quarantine and its audit row are ingestion's.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction

from bombora.layout import week_from_name
from bombora.loader import Loader
from bombora.models import BomboraWeek
from bombora.staging import (
    MAX_QUARANTINE_STORED,
    drop_orphan_staging,
    drop_staging,
    hold_run_lock,
    release_run_lock,
    staging_name,
)
from bombora.store import week_of
from bombora.swap import check_not_too_old, swap_in
from ingestion import etl
from ingestion.models import IngestionRun, RunStatus
from ingestion.services import SourceError, _finish, stored_file
from ingestion.sources import bombora_s3 as s3
from p360.core.audit.services import record
from p360.core.intake.tables import FileRejected

if TYPE_CHECKING:
    from p360.core.jobs.services import JobContext


def execute(run: IngestionRun, ctx: JobContext | None) -> None:
    """The job body of a Bombora ingestion run (global: the public schema)."""
    _obtain(run, ctx)
    week = week_of(run.run_date) if run.run_date else week_from_name(run.file_name)
    if week is not None:
        check_not_too_old(week)
    hold_run_lock(run.pk)
    try:
        _load_and_swap(run, ctx, week)
    finally:
        release_run_lock(run.pk)


def _load_and_swap(run: IngestionRun, ctx: JobContext | None, week: dt.date | None) -> None:
    drop_orphan_staging(keep_run=run.pk)
    new_week = False
    with stored_file(run) as path:
        loader = Loader(run=run, path=path, name=run.file_name, week=week, ctx=ctx, block_bytes=_block_bytes())
        try:
            stats = loader.load()
        except FileRejected as exc:
            run.rows_read = loader.stats.rows_read
            run.rows_quarantined = loader.stats.quarantined
            if not getattr(exc, "bad", None):
                exc.bad = loader.stats.bad  # type: ignore[attr-defined]
            raise
    week = loader.week
    assert week is not None
    if ctx:
        ctx.log(
            f"staged {stats.loaded:,} scores for the week of {week:%Y-%m-%d}"
            + ("" if stats.sorted_by_domain else " (file not sorted by domain: duplicates merged in SQL)")
        )
    try:
        with transaction.atomic():
            new_week = not BomboraWeek.objects.filter(week=week).exists()
            pruned = swap_in(run, week, stats, loader.topic_counts)
            quarantined = etl.write_quarantine(run.pk, stats.bad)
            _finish(
                run,
                RunStatus.SUCCEEDED,
                run_date=week,
                rows_read=stats.rows_read,
                rows_loaded=stats.loaded,
                rows_quarantined=max(quarantined, stats.quarantined),
                duplicates=stats.duplicates,
                dates=[week.isoformat()],
                params={**run.params, "week": week.isoformat(), "pruned": [p.isoformat() for p in pruned]},
                error=(
                    f"{stats.quarantined - MAX_QUARANTINE_STORED:,} more quarantined rows were counted, not kept"
                    if stats.quarantined > MAX_QUARANTINE_STORED
                    else ""
                ),
            )
    except BaseException:
        drop_staging(staging_name(run.pk))
        raise
    if ctx:
        ctx.progress(1, 1, rows_loaded=stats.loaded, rows_quarantined=stats.quarantined)
        if pruned:
            ctx.log("pruned weeks beyond the history limit: " + ", ".join(p.isoformat() for p in pruned))
    record(
        action="ingestion.bombora_week_loaded",
        entity=run,
        after={**run.summary(), "week": week.isoformat(), "new_week": new_week, "pruned": [str(p) for p in pruned]},
    )


def _block_bytes() -> int:
    return max(1, int(getattr(settings, "P360_BOMBORA_CHUNK_MB", 16))) << 20


def _obtain(run: IngestionRun, ctx: JobContext | None) -> None:
    if run.file_path:
        return

    if run.params.get("bombora_api_file"):  # issue 18: picked up through Bombora's API
        from ingestion.sources import bombora_api

        bombora_api.fetch_into_run(run, ctx)
        return
    if not (run.params.get("s3_key") or run.params.get("bombora_key")):
        raise SourceError("a Bombora run needs a file (or an S3 key from the scheduled pickup)")
    s3.fetch_into_run(run, ctx)
