"""django-q2 tasks of the embedded runtime (scheduled from segments/registrations.py).

The timer and send workers are meant to run as tight loops (`segments_timers`, `segments_deliver`);
these scheduled tasks are the safety net that keeps exits and sends flowing when no loop runs
(the scheduler ticks about every 30 s). Every pass is idempotent, so overlapping runs are harmless.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django_tenants.utils import schema_context

from segments.commands import orgs_from

logger = logging.getLogger(__name__)


def _each_org(work: Callable[[], int]) -> int:
    """Run `work` in every active org's schema. One org's error is logged with its org and does not stop the
    others; the task then fails naming the orgs that failed, so the cluster records it."""
    total, failed = 0, []
    for org in orgs_from(None):
        try:
            with schema_context(org.schema_name):
                total += work()
        except Exception:
            logger.exception("segments task failed for org %s", org.slug)
            failed.append(org.slug)
    if failed:
        raise RuntimeError(f"segments task failed for {', '.join(failed)}; the other organisations ran")
    return total


def run_timers_all_orgs() -> int:
    """Queued event batches, then due timers (the safety net behind the `segments_timers` loop)."""
    from segments.evaluator import evaluate_pending, run_timers

    return _each_org(lambda: len(evaluate_pending().transitions) + len(run_timers().transitions))


def deliver_all_orgs() -> int:
    from segments.triggers import deliver_due

    return _each_org(lambda: sum(deliver_due().values()))


def retention_all_orgs() -> int:
    from segments.services import run_retention

    return _each_org(lambda: len(run_retention()))
