"""Jobs: create, claim, run, report progress, finish; a reaper for jobs whose worker died.

A job's effect must be safe when the task that runs it is delivered twice (django-q2 delivers at
least once): `run_job` claims the row with SELECT ... FOR UPDATE SKIP LOCKED, and a handler that
writes data commits in chunks it can recognise on a re-run.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django_q.tasks import async_task
from django_tenants.utils import schema_context

from p360.core import context
from p360.core.audit.services import record
from p360.core.jobs.models import Job, JobStatus, WorkerHeartbeat

if TYPE_CHECKING:
    from tenants.models import Organization, User

logger = logging.getLogger(__name__)
MAX_LOG_LINES = 500


class JobError(Exception):
    """A job failed for a reason the user should read (shown as the job's error)."""


@dataclass
class JobContext:
    """What a handler gets: its job, and ways to report progress and log lines."""

    job: Job

    def progress(self, done: int, total: int | None = None, **counts: int) -> None:
        """Persist progress now (outside any transaction the handler holds open, it commits at once)."""
        updates: dict[str, Any] = {"progress_done": done, "heartbeat_at": timezone.now()}
        if total is not None:
            updates["progress_total"] = total
            self.job.progress_total = total
        if counts:
            self.job.counts = {**self.job.counts, **counts}
            updates["counts"] = self.job.counts
        self.job.progress_done = done
        Job.objects.filter(pk=self.job.pk).update(**updates)

    def log(self, message: str, level: str = "info") -> None:
        line = {"at": timezone.now().isoformat(), "level": level, "message": message}
        self.job.log = [*self.job.log, line][-MAX_LOG_LINES:]
        Job.objects.filter(pk=self.job.pk).update(log=self.job.log, heartbeat_at=timezone.now())
        getattr(logger, level if level in {"info", "warning", "error"} else "info")("job %s: %s", self.job.pk, message)


Handler = Callable[..., dict[str, Any] | None]


@dataclass(frozen=True)
class JobKind:
    name: str
    title: str
    handler: Handler
    per_org: bool


_REGISTRY: dict[str, JobKind] = {}


def job_handler(name: str, *, title: str, per_org: bool = True) -> Callable[[Handler], Handler]:
    """Register a handler `fn(ctx: JobContext, **params) -> result dict` for a job kind."""

    def register(fn: Handler) -> Handler:
        _REGISTRY[name] = JobKind(name=name, title=title, handler=fn, per_org=per_org)
        return fn

    return register


def job_kinds() -> dict[str, JobKind]:
    from django.utils.module_loading import autodiscover_modules

    from p360.core.jobs import handlers  # noqa: F401  (registers the built-in kinds)

    autodiscover_modules("jobs")  # each app's jobs.py registers its kinds

    return dict(_REGISTRY)


def job_start(
    *,
    kind: str,
    org: Organization | None,
    actor: User | None = None,
    params: dict[str, Any] | None = None,
    max_attempts: int = 3,
    enqueue: bool = True,
) -> Job:
    """Create a queued job and hand it to the task cluster once the transaction commits.

    `enqueue=False`: the caller runs it in this process (`run_job(job.pk)`), e.g. a command's inline run."""
    spec = job_kinds().get(kind)
    if spec is None:
        raise JobError(f"unknown job kind {kind!r}")
    if spec.per_org and org is None:
        raise JobError(f"job kind {kind!r} runs for one organisation; none given")
    job = Job.objects.create(
        kind=kind,
        org=org,
        params=params or {},
        created_by=actor if actor is not None and actor.is_authenticated else None,
        max_attempts=max_attempts,
    )
    record(action="job.started", actor=actor, org=org, entity=job, after={"kind": kind, "params": params or {}})
    if not enqueue:
        return job
    transaction.on_commit(
        lambda: async_task("p360.core.jobs.services.run_job", job.pk, task_name=f"job:{job.pk}:{kind}")
    )
    return job


def job_run_inline(
    *, kind: str, org: Organization | None, actor: User | None = None, params: dict[str, Any] | None = None
) -> Job:
    """Run a job in this process (management commands), with the same claim, record and outcome.

    If this process dies, the row stays `running` with a stale heartbeat and the reaper hands it to
    the task cluster, exactly as for a worker that died.
    """
    spec = job_kinds().get(kind)
    if spec is None:
        raise JobError(f"unknown job kind {kind!r}")
    job = Job.objects.create(
        kind=kind,
        org=org,
        params=params or {},
        created_by=actor if actor is not None and actor.is_authenticated else None,
    )
    record(action="job.started", actor=actor, org=org, entity=job, after={"kind": kind, "params": params or {}})
    run_job(job.pk)
    job.refresh_from_db()
    return job


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _claim(job_id: int) -> Job | None:
    """Take the job for this worker, or None when it is finished or another worker holds it."""
    stale_before = timezone.now() - timedelta(seconds=settings.P360_JOB_STALE_SECONDS)
    with transaction.atomic():
        job = (
            Job.objects.select_for_update(skip_locked=True)
            .filter(pk=job_id)
            .filter(Q(status=JobStatus.QUEUED) | Q(status=JobStatus.RUNNING, heartbeat_at__lt=stale_before))
            .first()
        )
        if job is None:
            return None
        job.attempts = F("attempts") + 1
        job.status = JobStatus.RUNNING
        job.claimed_by = _worker_name()
        job.heartbeat_at = job.started_at = timezone.now()
        job.save(update_fields=["attempts", "status", "claimed_by", "heartbeat_at", "started_at"])
        job.refresh_from_db()
        if job.attempts > job.max_attempts:
            _finish(job, JobStatus.FAILED, error=f"gave up after {job.max_attempts} attempts (worker lost each time)")
            return None
        return job


def _finish(job: Job, status: str, *, error: str = "", result: dict[str, Any] | None = None) -> None:
    job.status = status
    job.error = error[:10_000]
    job.result = result or {}
    job.finished_at = timezone.now()
    job.save(update_fields=["status", "error", "result", "finished_at"])
    record(
        action=f"job.{status}",
        actor=job.created_by,
        org=job.org,
        entity=job,
        after={"kind": job.kind, "error": job.error, "counts": job.counts},
    )


def run_job(job_id: int) -> str:
    """Task entry point: claim the job, run its handler (inside its org's schema), record the outcome."""
    job = _claim(job_id)
    if job is None:
        return "skipped"
    spec = job_kinds()[job.kind]
    ctx = JobContext(job=job)
    org_slug = job.org.slug if job.org else "-"
    try:
        with context.bound(org=org_slug):
            if job.org is not None:
                if not job.org.is_active:
                    raise JobError(f"organisation {job.org.slug} is inactive")
                with schema_context(job.org.schema_name):
                    result = spec.handler(ctx, **job.params)
            else:
                result = spec.handler(ctx, **job.params)
    except Exception as exc:
        if isinstance(exc, JobError):  # an expected refusal: its message says it all
            logger.warning("job %s (%s) failed: %s", job.pk, job.kind, exc)
        else:
            logger.exception("job %s (%s) failed", job.pk, job.kind)
        message = str(exc) if isinstance(exc, JobError) else f"{type(exc).__name__}: {exc}"
        _finish(job, JobStatus.FAILED, error=message)
        return JobStatus.FAILED
    _finish(job, JobStatus.SUCCEEDED, result=result or {})
    return JobStatus.SUCCEEDED


def job_cancel(*, job: Job, actor: User | None) -> Job:
    """Cancel a queued job (a running one finishes its current chunk; handlers check `is_cancelled`)."""
    if job.is_finished:
        raise JobError("the job has already finished")
    Job.objects.filter(pk=job.pk).update(status=JobStatus.CANCELLED, finished_at=timezone.now())
    job.refresh_from_db()
    record(action="job.cancelled", actor=actor, org=job.org, entity=job)
    return job


def reap_stale_jobs() -> int:
    """Hand back running jobs whose worker stopped sending heartbeats; returns how many."""
    stale_before = timezone.now() - timedelta(seconds=settings.P360_JOB_STALE_SECONDS)
    stale = list(
        Job.objects.filter(status=JobStatus.RUNNING, heartbeat_at__lt=stale_before).values_list("pk", flat=True)
    )
    for job_id in stale:
        async_task("p360.core.jobs.services.run_job", job_id, task_name=f"job:{job_id}:retry")
    return len(stale)


def record_heartbeat() -> None:
    WorkerHeartbeat.objects.update_or_create(name=socket.gethostname(), defaults={"seen_at": timezone.now()})


def last_heartbeat() -> WorkerHeartbeat | None:
    return WorkerHeartbeat.objects.order_by("-seen_at").first()
