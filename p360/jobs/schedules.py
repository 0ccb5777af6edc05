"""The recurring tasks every installation runs (created idempotently after migrations)."""

from __future__ import annotations

from django_q.models import Schedule

SCHEDULES = [
    # (name, func, minutes)
    ("p360: worker heartbeat", "p360.jobs.services.record_heartbeat", 1),
    ("p360: reap stale jobs", "p360.jobs.services.reap_stale_jobs", 5),
    # issue 4: expire unfinished uploads and delete their parts (starts an `uploads.expire` job per org)
    ("p360: expire stale uploads", "p360.uploads.jobs.start_expiry_jobs", 60),
    # issue 5: re-materialise every org's built audiences daily (they also refresh after each import)
    ("p360: refresh built audiences", "audiences.jobs.start_refresh_jobs", 24 * 60),
    # issue 13: segment window timers and trigger sends (safety net for the tight-loop workers), retention
    ("p360: segment timers", "segments.tasks.run_timers_all_orgs", 1),
    ("p360: segment sends", "segments.tasks.deliver_all_orgs", 1),
    ("p360: segment event retention", "segments.tasks.retention_all_orgs", 24 * 60),
]


def ensure_schedules() -> int:
    created = 0
    for name, func, minutes in SCHEDULES:
        _, was_created = Schedule.objects.update_or_create(
            name=name, defaults={"func": func, "schedule_type": Schedule.MINUTES, "minutes": minutes, "repeats": -1}
        )
        created += was_created
    # --- ingestion (issue 6): cron schedules (Surfside 05:00, Vibe 06:00, REDS hourly; UTC, configurable) ---
    from ingestion.tasks import cron_schedules

    for name, func, cron in cron_schedules():
        _, was_created = Schedule.objects.update_or_create(
            name=name, defaults={"func": func, "schedule_type": Schedule.CRON, "cron": cron, "repeats": -1}
        )
        created += was_created
    # --- reporting (issue 7): summaries at 07:00 UTC (previous week on Mondays, previous month on the 1st) ---
    from django.conf import settings

    _, was_created = Schedule.objects.update_or_create(
        name="p360: summary aggregation",
        defaults={
            "func": "reporting.tasks.daily_aggregate",
            "schedule_type": Schedule.CRON,
            "cron": settings.P360_AGGREGATE_CRON,
            "repeats": -1,
        },
    )
    created += was_created
    return created
