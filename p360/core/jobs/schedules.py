"""The recurring tasks every installation runs (created idempotently after migrations).

The core's own schedules are listed here; each app registers its own with `p360.core.registry.register_schedule`
from its AppConfig.ready() (audiences: built-audience refresh; ingestion: source pulls; reporting: summaries).
"""

from __future__ import annotations

from django_q.models import Schedule

from p360.core import registry

SCHEDULES = [
    # (name, func, minutes)
    ("p360: worker heartbeat", "p360.core.jobs.services.record_heartbeat", 1),
    ("p360: reap stale jobs", "p360.core.jobs.services.reap_stale_jobs", 5),
    # issue 4: expire unfinished uploads and delete their parts (starts an `uploads.expire` job per org)
    ("p360: expire stale uploads", "p360.core.uploads.jobs.start_expiry_jobs", 60),
]


def ensure_schedules() -> int:
    """Create or update (by name) every schedule: the core's and each app's registered ones."""
    created = 0
    for name, func, minutes in SCHEDULES:
        _, was_created = Schedule.objects.update_or_create(
            name=name, defaults={"func": func, "schedule_type": Schedule.MINUTES, "minutes": minutes, "repeats": -1}
        )
        created += was_created
    for spec in registry.schedules():
        if spec.cron is not None:
            defaults = {"func": spec.func, "schedule_type": Schedule.CRON, "cron": spec.cron(), "repeats": -1}
        else:
            defaults = {"func": spec.func, "schedule_type": Schedule.MINUTES, "minutes": spec.minutes, "repeats": -1}
        _, was_created = Schedule.objects.update_or_create(name=spec.name, defaults=defaults)
        created += was_created
    return created
