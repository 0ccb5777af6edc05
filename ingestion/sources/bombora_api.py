"""Scheduled Bombora pickup through Bombora's API (bombora/api.py), beside the S3 pickup (bombora_s3.py).

Every hour (P360_BOMBORA_CRON) the pickup lists the files the API offers and starts one run per file not taken
yet: a file is known by its id and MD5, so a file re-published with new content loads again (its week is
replaced) and one listed again does not. Files load in name order (the names carry the week), so weeks arrive in
order. A failed file is not retried every hour (it would fail the same way): re-run it from the admin.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from bombora.api import BomboraApiError, client_from_settings, configured
from ingestion.models import IngestionRun, RunStatus, Source, Trigger

if TYPE_CHECKING:
    from p360.core.jobs.services import JobContext

logger = logging.getLogger(__name__)
SUFFIXES = (".csv", ".csv.gz", ".gz", ".txt", ".txt.gz")


def _already_taken(file_id: str, md5: str) -> bool:
    return IngestionRun.objects.filter(
        source=Source.BOMBORA,
        params__bombora_api_file=file_id,
        params__etag=md5,
        status__in=[RunStatus.SUCCEEDED, RunStatus.RUNNING, RunStatus.QUEUED, RunStatus.FAILED],
    ).exists()


def pickup(*, inline: bool = False) -> list[int]:
    """Start a run for every new file the API offers; returns the run ids (nothing when no API is configured).

    Raises BomboraApiError when the listing itself fails (the schedule records the failure and tries next hour)."""
    from ingestion.services import create_run, start_run

    if not configured():
        logger.info("P360_BOMBORA_API_URL is not set: no Bombora API pickup")
        return []
    with client_from_settings() as api:
        files = api.files()
    run_ids = []
    for remote in files:
        if not remote.name.lower().endswith(SUFFIXES) or _already_taken(remote.id, remote.md5):
            continue
        run = create_run(
            source=Source.BOMBORA,
            org=None,
            trigger=Trigger.SCHEDULE,
            file_name=remote.name,
            params={
                "bombora_api_file": remote.id,
                "bombora_key": f"api:{remote.id}",
                "etag": remote.md5,
                "bytes": remote.size,
                "published_at": remote.modified,
            },
        )
        IngestionRun.objects.filter(pk=run.pk).update(file_name=remote.name)
        run.file_name = remote.name
        start_run(run, inline=inline)
        run_ids.append(run.pk)
    return run_ids


def fetch_into_run(run: IngestionRun, ctx: JobContext | None) -> None:
    """Download the run's file from the API and keep it as the run's stored file."""
    from ingestion.services import SourceError, _store_file

    file_id = str(run.params["bombora_api_file"])
    if not configured():
        raise SourceError("Bombora API pickup is not configured: set P360_BOMBORA_API_URL and P360_BOMBORA_API_KEY")
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / (Path(run.file_name).name or f"bombora-{file_id}.csv.gz")
        try:
            with client_from_settings() as api:
                size = api.download(file_id, target)
        except BomboraApiError as exc:
            raise SourceError(str(exc)) from exc
        _store_file(run, target, target.name)
        run.save(update_fields=["file_path", "file_name", "file_size", "content_hash", "params"])
    if ctx:
        ctx.log(f"fetched Bombora API file {file_id} ({size:,} bytes)")
