"""Scheduled ingestion (django-q2 cron schedules, see `p360.core.jobs.schedules`).

Each task runs in the public schema, finds the organisations a source is enabled for, and starts
one run (a job on the cluster) per organisation and day, so one org's failure never blocks another.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from pathlib import Path

from django.conf import settings
from django.utils import timezone
from django_tenants.utils import schema_context

from campaigns.selectors import client_settings
from ingestion.models import IngestionRun, RunStatus, Source, Trigger
from ingestion.services import create_run, file_sha256, start_run
from tenants.models import Organization

logger = logging.getLogger(__name__)
REDS_SUFFIXES = (".csv", ".psv", ".tsv", ".txt", ".gz")
REDS_SETTLE_SECONDS = 60  # a file modified more recently may still be arriving


def _enabled_orgs(flag: str) -> list:

    orgs = []
    for org in Organization.objects.active():
        with schema_context(org.schema_name):
            if getattr(client_settings(), flag):
                orgs.append(org)
    return orgs


def _start(source: str, org: object, day: dt.date) -> int:
    run = create_run(source=source, org=org, run_date=day, trigger=Trigger.SCHEDULE)  # type: ignore[arg-type]
    start_run(run)
    return run.pk


def surfside_daily(day: str | None = None) -> list[int]:
    """Yesterday's Surfside file for every org with Surfside enabled (05:00 UTC by default)."""
    target = dt.date.fromisoformat(day) if day else timezone.now().date() - dt.timedelta(days=1)
    return [_start(Source.SURFSIDE, org, target) for org in _enabled_orgs("surfside_enabled")]


def vibe_daily(day: str | None = None) -> list[int]:
    """Yesterday's Vibe report, and the day before again: Vibe figures settle hours after delivery."""
    target = dt.date.fromisoformat(day) if day else timezone.now().date() - dt.timedelta(days=1)
    run_ids = []
    for org in _enabled_orgs("vibe_enabled"):
        for one_day in (target, target - dt.timedelta(days=1)):
            run_ids.append(_start(Source.VIBE, org, one_day))
    return run_ids


def reds_hourly(inbox: str | None = None) -> list[int]:
    """Load new REDS files from the inbox folder (each file once: its content hash is remembered)."""
    folder = Path(inbox or settings.P360_REDS_INBOX)
    if not folder.is_dir():
        logger.info("REDS inbox %s does not exist; nothing to load", folder)
        return []
    run_ids = []
    now = time.time()
    for path in sorted(folder.iterdir()):
        if not path.is_file() or not path.name.lower().endswith(REDS_SUFFIXES):
            continue
        if now - path.stat().st_mtime < REDS_SETTLE_SECONDS:
            continue
        digest = file_sha256(path)
        if IngestionRun.objects.filter(
            source=Source.REDS,
            content_hash=digest,
            status__in=[RunStatus.SUCCEEDED, RunStatus.RUNNING, RunStatus.QUEUED],
        ).exists():
            continue
        run = create_run(source=Source.REDS, org=None, trigger=Trigger.SCHEDULE, file_path=path)
        start_run(run)
        run_ids.append(run.pk)
    return run_ids


def bombora_pickup() -> list[int]:
    """Issue 5: load new Bombora files from P360_BOMBORA_BUCKET (nothing when it is not set)."""
    from ingestion.sources.bombora_s3 import pickup

    return pickup()


# (name, function, setting holding the cron; times in UTC, configurable by environment). Registered as schedules
# by ingestion/registrations.py; the cron is read when the schedules are ensured, not at import.
CRON_SCHEDULES = [
    ("p360: Surfside daily pull", "ingestion.tasks.surfside_daily", "P360_SURFSIDE_CRON"),
    ("p360: Vibe daily pull", "ingestion.tasks.vibe_daily", "P360_VIBE_CRON"),
    ("p360: REDS hourly files", "ingestion.tasks.reds_hourly", "P360_REDS_CRON"),
    ("p360: Bombora pickup from S3", "ingestion.tasks.bombora_pickup", "P360_BOMBORA_CRON"),
]


def cron_schedules() -> list[tuple[str, str, str]]:
    """(name, function, cron) of the ingestion schedules; times in UTC, configurable by environment."""
    return [(name, func, getattr(settings, setting)) for name, func, setting in CRON_SCHEDULES]
