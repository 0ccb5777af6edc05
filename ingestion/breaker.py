"""Circuit breaker per source (per organisation for per-org sources): document 004 A.4 "Circuit breaker after
5 failures", issue 15.

- Every failed run that the source was asked to deliver (scheduled, command, re-run; not an upload of a file a
  person chose, nor the demo) adds one to its breaker's count; any success sets it back to 0.
- At `P360_BREAKER_THRESHOLD` (5) failures in a row the breaker opens: the scheduled pickup of that source and
  org pauses (`is_paused`), the ops address gets an email, an audit row is written and the admin dashboard and
  breaker list show it.
- A successful manual run (anything but the schedule) closes it again; so does a staff "reset".
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from ingestion.models import BreakerState, IngestionRun, RunStatus, Source, SourceBreaker, Trigger
from p360.core.audit.services import record

if TYPE_CHECKING:
    from tenants.models import Organization, User

logger = logging.getLogger(__name__)

# Failures of these triggers count: the source itself was asked to deliver. A person's upload of a bad file says
# nothing about the source's health, so it neither opens nor (when it fails) holds the breaker.
COUNTED_TRIGGERS = frozenset({Trigger.SCHEDULE, Trigger.COMMAND, Trigger.RETRY})
PER_ORG_PULL_SOURCES = frozenset({Source.SURFSIDE, Source.VIBE})


class BreakerError(Exception):
    """A breaker action cannot be done (shown to the staff user as is)."""


def threshold() -> int:
    return max(1, int(getattr(settings, "P360_BREAKER_THRESHOLD", 5)))


def ops_recipients() -> list[str]:
    return sorted(set(settings.P360_OPS_ALERT_EMAILS or settings.P360_INGEST_ALERT_EMAILS))


def is_paused(source: str, org: Organization | None) -> bool:
    """Whether the scheduled pickup of `source` (for `org`; None for global sources) is paused."""
    return SourceBreaker.objects.filter(source=source, org=org, state=BreakerState.OPEN).exists()


def open_breakers() -> QuerySet[SourceBreaker]:
    return SourceBreaker.objects.filter(state=BreakerState.OPEN).select_related("org")


def note_failure(run: IngestionRun, reason: str) -> SourceBreaker | None:
    """Count a failed run; open the breaker (and alert) when it reaches the threshold."""
    if run.trigger not in COUNTED_TRIGGERS:
        return None
    with transaction.atomic():
        breaker, _ = SourceBreaker.objects.select_for_update().get_or_create(source=run.source, org=run.org)
        breaker.consecutive_failures += 1
        breaker.last_error = reason[:2000]
        breaker.last_failed_run = run
        opened = breaker.state == BreakerState.CLOSED and breaker.consecutive_failures >= threshold()
        if opened:
            breaker.state, breaker.opened_at = BreakerState.OPEN, timezone.now()
        breaker.save()
        if opened:
            record(
                action="ingestion.breaker_opened",
                org=run.org,
                entity=breaker,
                after={"source": run.source, "failures": breaker.consecutive_failures, "last_run": run.pk},
            )
    if opened:
        logger.error("circuit breaker opened for %s", breaker)
        send_breaker_alert(breaker)
    return breaker


def note_success(run: IngestionRun) -> None:
    """A succeeded run: a manual one closes an open breaker; any one resets the failure count."""
    breaker = SourceBreaker.objects.filter(source=run.source, org=run.org).first()
    if breaker is None:
        return
    if breaker.is_open:
        if run.trigger != Trigger.SCHEDULE:
            close_breaker(
                breaker=breaker, actor=None, reason=f"run #{run.pk} succeeded", actor_email=run.created_by_email
            )
        return
    if breaker.consecutive_failures:
        SourceBreaker.objects.filter(pk=breaker.pk).update(consecutive_failures=0)


def close_breaker(*, breaker: SourceBreaker, actor: User | None, reason: str, actor_email: str = "") -> SourceBreaker:
    with transaction.atomic():
        locked = SourceBreaker.objects.select_for_update().get(pk=breaker.pk)
        was = locked.state
        locked.state, locked.consecutive_failures, locked.closed_at = BreakerState.CLOSED, 0, timezone.now()
        locked.save()
        record(
            action="ingestion.breaker_closed",
            actor=actor,
            actor_email=actor_email,
            org=locked.org,
            entity=locked,
            before={"state": was},
            after={"state": locked.state, "reason": reason},
        )
    return locked


def run_now(*, breaker: SourceBreaker, actor: User | None) -> IngestionRun:
    """Staff's "run now": repeat the latest run of this source and org (pulled again from the source when it was
    a pull), or pull yesterday for a per-org pull source that never ran. Queued on the task cluster; when it
    succeeds the breaker closes."""
    from ingestion.services import create_run, rerun, start_run

    active = IngestionRun.objects.filter(
        source=breaker.source, org=breaker.org, status__in=[RunStatus.QUEUED, RunStatus.RUNNING]
    )
    if active.exists():
        raise BreakerError(f"a {breaker.get_source_display()} run is already queued or running")
    last = IngestionRun.objects.filter(source=breaker.source, org=breaker.org).order_by("-created_at", "-id").first()
    if last is not None:
        run = rerun(run=last, actor=actor)
    elif breaker.source in PER_ORG_PULL_SOURCES and breaker.org is not None:
        yesterday = timezone.now().date() - dt.timedelta(days=1)
        created = create_run(
            source=breaker.source, org=breaker.org, trigger=Trigger.RETRY, actor=actor, run_date=yesterday
        )
        run = start_run(created, actor=actor)
    else:
        raise BreakerError("there is no earlier run of this source to repeat")
    record(action="ingestion.breaker_run_now", actor=actor, org=breaker.org, entity=breaker, after={"run": run.pk})
    return run


def send_breaker_alert(breaker: SourceBreaker) -> int:
    """Email the ops address that a source is paused (never raises: an alert must not mask the failure)."""
    recipients = ops_recipients()
    if not recipients:
        logger.warning("circuit breaker %s opened and no ops alert address is configured", breaker.pk)
        return 0
    scope = breaker.org.name if breaker.org_id else "all organisations"  # type: ignore[union-attr]
    subject = (
        f"[P360] {breaker.get_source_display()} paused for {scope}: {breaker.consecutive_failures} failures in a row"
    )
    body = (
        f"The circuit breaker of {breaker.get_source_display()} ({scope}) opened at {timezone.now():%Y-%m-%d %H:%M} UTC "
        f"after {breaker.consecutive_failures} failed runs in a row. Its scheduled pickup is paused.\n\n"
        f"Last error: {breaker.last_error or '-'}\n"
        f"Last failed run: #{breaker.last_failed_run_id or '-'}\n\n"
        'Fix the cause, then use "Run now" (or "Reset") on the source circuit breakers page of the admin; '
        "a successful manual run closes the breaker and the schedule resumes.\n"
    )
    try:
        return send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, recipients, fail_silently=False)
    except Exception:
        logger.exception("could not send the circuit breaker alert for %s", breaker.pk)
        return 0
