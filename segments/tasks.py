"""django-q2 tasks of the embedded runtime (scheduled in p360/jobs/schedules.py).

The timer and send workers are meant to run as tight loops (`segments_timers`, `segments_deliver`);
these scheduled tasks are the safety net that keeps exits and sends flowing when no loop runs
(the scheduler ticks about every 30 s). Every pass is idempotent, so overlapping runs are harmless.
"""

from __future__ import annotations

from django_tenants.utils import schema_context

from segments.commands import orgs_from


def run_timers_all_orgs() -> int:
    from segments.evaluator import run_timers

    total = 0
    for org in orgs_from(None):
        with schema_context(org.schema_name):
            total += len(run_timers().transitions)
    return total


def deliver_all_orgs() -> int:
    from segments.triggers import deliver_due

    total = 0
    for org in orgs_from(None):
        with schema_context(org.schema_name):
            total += sum(deliver_due().values())
    return total


def retention_all_orgs() -> int:
    from segments.services import run_retention

    total = 0
    for org in orgs_from(None):
        with schema_context(org.schema_name):
            total += len(run_retention())
    return total
