"""Ingestion runs: create, start (as a job with progress), execute, fail with an alert, re-run.

Every surface (the `ingest` command, the Facebook upload page, the admin's retry/re-run actions,
the schedules) calls `create_run` + `start_run`; `execute_run` is the job handler's body.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone
from django_tenants.utils import schema_context

from campaigns.selectors import client_settings
from ingestion import etl
from ingestion.models import IngestionRun, QuarantinedRow, RunStatus, Source, Trigger
from p360.core.audit.services import record
from p360.core.fault_inject import fault_point
from p360.core.intake.tables import FileRejected
from p360.core.jobs.services import JobContext, JobError, job_start, run_job

if TYPE_CHECKING:
    from tenants.models import Organization, User

logger = logging.getLogger(__name__)

METRIC_SOURCES = (Source.SURFSIDE, Source.VIBE, Source.FACEBOOK)
JOB_KIND = "ingestion.run"
JOB_KIND_GLOBAL = "ingestion.run_global"


class IngestionError(Exception):
    """A run cannot start (bad arguments); nothing was written."""


class SourceError(Exception):
    """The source could not deliver (missing file, refused credentials, API failure): the run fails."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _store_file(run: IngestionRun, path: Path, name: str) -> None:
    """Keep a copy in the default storage (the org in the key) so the run can be retried later."""
    scope = run.org.slug if run.org_id else "global"  # type: ignore[union-attr]
    safe_name = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)[-150:] or "file"
    with path.open("rb") as handle:
        stored = default_storage.save(f"ingestion/{scope}/{run.source}/{run.pk}/{safe_name}", File(handle))
    run.file_path = stored
    run.file_name = name
    run.file_size = path.stat().st_size
    run.content_hash = file_sha256(path)


@contextmanager
def stored_file(run: IngestionRun) -> Iterator[Path]:
    """A local path to the run's stored file (downloaded to a temporary file for remote storage)."""
    try:
        yield Path(default_storage.path(run.file_path))
        return
    except NotImplementedError:
        pass
    suffix = Path(run.file_name).suffix
    with tempfile.NamedTemporaryFile(suffix=suffix) as tmp, default_storage.open(run.file_path, "rb") as src:
        shutil.copyfileobj(src, tmp)
        tmp.flush()
        yield Path(tmp.name)


def create_run(
    *,
    source: str,
    org: Organization | None,
    trigger: str = Trigger.COMMAND,
    actor: User | None = None,
    run_date: dt.date | None = None,
    file_path: Path | None = None,
    file_name: str | None = None,
    params: dict[str, Any] | None = None,
    rerun_of: IngestionRun | None = None,
) -> IngestionRun:
    if source not in Source.values:
        raise IngestionError(f"unknown source {source!r}")
    if source == Source.BOMBORA and org is not None:
        raise IngestionError("Bombora data is global (shared by every organisation): do not name an --org")
    if source not in (Source.REDS, Source.BOMBORA) and org is None:
        raise IngestionError(f"{source} data belongs to one organisation: name it with --org SLUG")
    if file_path is not None and not file_path.is_file():
        raise IngestionError(f"no such file: {file_path}")
    run = IngestionRun.objects.create(
        source=source,
        org=org,
        trigger=trigger,
        run_date=run_date,
        params=params or {},
        rerun_of=rerun_of,
        created_by_email=getattr(actor, "email", "") or ("cli" if trigger == Trigger.COMMAND else trigger),
    )
    if file_path is not None:
        _store_file(run, file_path, file_name or file_path.name)
        run.save(update_fields=["file_path", "file_name", "file_size", "content_hash"])
    record(
        action="ingestion.run_created",
        actor=actor,
        org=org,
        entity=run,
        after={"source": source, "file": run.file_name, "date": run_date, "trigger": trigger},
    )
    return run


def start_run(run: IngestionRun, *, actor: User | None = None, inline: bool = False) -> IngestionRun:
    """Run it as a job: now in this process (commands, uploads) or on the task cluster."""
    kind = JOB_KIND if run.org_id else JOB_KIND_GLOBAL
    # the one job starter: kind check, `job.started` audit row; enqueued on commit unless run inline here
    job = job_start(kind=kind, org=run.org, actor=actor, params={"run_id": run.pk}, max_attempts=3, enqueue=not inline)
    IngestionRun.objects.filter(pk=run.pk).update(job_id=job.pk)
    if inline:
        run_job(job.pk)
    run.refresh_from_db()
    return run


def ingest_file(
    *,
    source: str,
    org: Organization | None,
    path: Path,
    run_date: dt.date | None = None,
    actor: User | None = None,
    trigger: str = Trigger.COMMAND,
    file_name: str | None = None,
) -> IngestionRun:
    run = create_run(
        source=source, org=org, trigger=trigger, actor=actor, run_date=run_date, file_path=path, file_name=file_name
    )
    return start_run(run, actor=actor, inline=True)


def rerun(
    *, run: IngestionRun, actor: User | None, inline: bool = False, org: Organization | None = None
) -> IngestionRun:
    """A new run for the same source, org and day: pulled again from S3 / Vibe when the original
    was a pull (the file may have been re-delivered, figures settle), else the same stored file.

    `org` (an org admin's re-run of a multi-organisation REDS run) re-runs only that organisation's
    slice: the new run belongs to the org and never reads, loads nor quarantines another org's rows."""
    if org is not None and run.org_id is not None and run.org_id != org.pk:
        raise IngestionError(f"run #{run.pk} is not {org.slug}'s")
    pulled = bool(run.params.get("s3_key") or run.params.get("report_id")) or not run.file_path
    params = {k: v for k, v in run.params.items() if k not in ("s3_key", "report_id", "retry_wait_s", "bytes")}
    if org is not None and run.org_id is None:
        params["slice_of"] = run.pk
    new = IngestionRun.objects.create(
        source=run.source,
        org=org or run.org,
        trigger=Trigger.RETRY,
        run_date=run.run_date,
        params=params,
        rerun_of=run,
        file_name="" if pulled else run.file_name,
        file_path="" if pulled else run.file_path,
        file_size=None if pulled else run.file_size,
        content_hash="" if pulled else run.content_hash,
        created_by_email=getattr(actor, "email", "") or "system",
    )
    record(action="ingestion.rerun", actor=actor, org=new.org, entity=new, after={"rerun_of": run.pk})
    return start_run(new, actor=actor, inline=inline)


# --- Execution (job handler body) ----------------------------------------------------------------


def _finish(run: IngestionRun, status: str, **fields: Any) -> None:
    for key, value in fields.items():
        setattr(run, key, value)
    run.status = status
    run.finished_at = timezone.now()
    run.save()


def alert_recipients(run: IngestionRun) -> list[str]:
    recipients = list(settings.P360_INGEST_ALERT_EMAILS)
    if run.org_id:
        with schema_context(run.org.schema_name):  # type: ignore[union-attr]
            extra = client_settings().alert_emails
        recipients += [a.strip() for a in extra.replace(";", ",").split(",") if a.strip()]
    return sorted(set(recipients))


def send_alert(run: IngestionRun, reason: str) -> int:
    """Email the configured admins that a run failed (never raises: an alert must not mask the error)."""
    recipients = alert_recipients(run)
    if not recipients:
        logger.warning("ingestion run %s failed and no alert recipients are configured", run.pk)
        return 0
    scope = run.org.name if run.org_id else "all organisations"  # type: ignore[union-attr]
    subject = f"[P360] {run.get_source_display()} ingestion failed for {scope}" + (
        f" ({run.run_date})" if run.run_date else ""
    )
    body = (
        f"Ingestion run #{run.pk} ({run.get_source_display()}, {scope}) failed at "
        f"{timezone.now():%Y-%m-%d %H:%M} UTC.\n\nReason: {reason}\n\n"
        f"File: {run.file_name or run.params.get('expected') or '-'}\nRows read: {run.rows_read}, "
        f"quarantined: {run.rows_quarantined}\n\nOpen the ingestion runs page in the admin to retry it.\n"
    )
    try:
        return send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, recipients, fail_silently=False)
    except Exception:
        logger.exception("could not send the alert for ingestion run %s", run.pk)
        return 0


def fail_run(
    run: IngestionRun,
    reason: str,
    bad: list[tuple[int, str, str]] | None = None,
    owners: dict[int, str] | None = None,
) -> None:
    quarantined = run.rows_quarantined
    if bad:
        with transaction.atomic():
            quarantined = etl.write_quarantine(run.pk, bad, owners)
    _finish(run, RunStatus.FAILED, error=reason[:10_000], rows_quarantined=quarantined)
    record(action="ingestion.run_failed", org=run.org, entity=run, after={"error": reason[:500]})
    send_alert(run, reason)


def execute_run(ctx: JobContext | None, run_id: int) -> dict[str, Any]:
    run = IngestionRun.objects.select_related("org").get(pk=run_id)
    if run.status == RunStatus.SUCCEEDED:
        return run.summary()  # delivered twice: the first delivery already loaded it
    run.status, run.started_at, run.error = RunStatus.RUNNING, timezone.now(), ""
    run.save(update_fields=["status", "started_at", "error"])
    bad: list[tuple[int, str, str]] = []
    try:
        if run.source == Source.REDS:
            from ingestion import reds

            reds.execute(run, ctx)
        elif run.source == Source.BOMBORA:
            from ingestion.sources import bombora  # the sources import this module: resolved at call time

            bombora.execute(run, ctx)
        elif run.source in METRIC_SOURCES:
            bad = _execute_metrics(run, ctx)
        else:
            raise SourceError(f"the {run.source} source is not available yet")
    except (FileRejected, SourceError) as exc:
        fail_run(run, str(exc), getattr(exc, "bad", None) or bad, getattr(exc, "owners", None))
        raise JobError(str(exc)) from exc
    except Exception as exc:
        logger.exception("ingestion run %s crashed", run.pk)
        fail_run(run, f"{type(exc).__name__}: {exc}", bad)
        raise
    run.refresh_from_db()
    return run.summary()


def _obtain_file(run: IngestionRun, ctx: JobContext | None) -> None:
    """Fetch the run's file from its source when it has none yet (S3 for Surfside, the API for Vibe)."""
    if run.file_path:
        return
    assert run.org is not None and run.run_date is not None
    with tempfile.TemporaryDirectory() as tmp:
        if run.source == Source.SURFSIDE:
            from ingestion.sources import surfside

            path, name = surfside.fetch(run, Path(tmp))
        elif run.source == Source.VIBE:
            from ingestion.sources import vibe

            path, name = vibe.fetch(run, Path(tmp), ctx)
        else:
            raise SourceError(f"{run.get_source_display()} runs need a file")
        _store_file(run, path, name)
        run.save(update_fields=["file_path", "file_name", "file_size", "content_hash", "params"])
    if ctx:
        ctx.log(f"fetched {run.file_name} ({run.file_size:,} bytes)")


def _execute_metrics(run: IngestionRun, ctx: JobContext | None) -> list[tuple[int, str, str]]:
    _obtain_file(run, ctx)
    with stored_file(run) as path:
        parsed = etl.parse_metrics_file(run.source, path, run.file_name)
    if ctx:
        ctx.progress(1, 4, rows_read=parsed.rows_read)
        for note in parsed.notes:
            ctx.log(note)
    run.rows_read = parsed.rows_read
    if parsed.rows_read == 0:
        raise FileRejected(f"{run.file_name} has a header but no data rows")
    etl.restrict_to_date(parsed, run.run_date)
    rates = etl.quarantine_missing_cpm(parsed)
    merged, duplicates, overflow = etl.merge_duplicate_keys(parsed.valid, rates)
    if overflow:  # sums or derived figures that do not fit their column: quarantined, never wrapped
        parsed.bad = sorted(parsed.bad + overflow)
    if merged.is_empty():
        reasons = sorted({reason for _, reason, _ in parsed.bad})
        exc = FileRejected(
            f"no row of {run.file_name} could be loaded ({len(parsed.bad):,} quarantined): " + "; ".join(reasons[:3])
        )
        exc.bad = parsed.bad  # type: ignore[attr-defined]
        raise exc

    currency = client_settings().currency
    dates = sorted(merged["date"].unique().to_list())
    with transaction.atomic():
        etl.lock_source(run.source)
        etl.stage_rows(run.pk, merged, run.source, currency, rates)
        if ctx:
            ctx.progress(2, 4)
        fault_point("ingest:after_stage")
        written, replaced = etl.load_staged(run_id=run.pk, source=run.source, currency=currency, dates=dates)
        fault_point("ingest:after_load")
        quarantined = etl.write_quarantine(run.pk, parsed.bad)
        _finish(
            run,
            RunStatus.SUCCEEDED,
            rows_read=parsed.rows_read,
            rows_loaded=merged.height,
            rows_quarantined=quarantined,
            duplicates=duplicates,
            metrics_written=written,
            metrics_replaced=replaced,
            dates=[d.isoformat() for d in dates],
        )
    if ctx:
        ctx.progress(4, 4, rows_loaded=merged.height, rows_quarantined=quarantined)
        ctx.log(f"loaded {written:,} daily metric rows for {len(dates)} day(s); replaced {replaced:,}")
    record(action="ingestion.run_succeeded", org=run.org, entity=run, after=run.summary())
    return []


def quarantine_rows(run: IngestionRun, limit: int = 500) -> list[QuarantinedRow]:
    return list(run.quarantined.all()[:limit])
