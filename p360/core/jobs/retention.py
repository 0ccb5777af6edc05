"""Retention (issue 16, document 004 sections 5.5 and 8): what is kept how long, per organisation.

The core owns the engine (cut-offs, Parquet archives, one transaction and audit row per org and kind, the
`retention` command, jobs and schedules) and the audit log's step; each app registers the step for its own tables
(`registry.register_retention_step`, from its registrations module): campaigns (daily metrics) and reporting
(rollups) for "metrics", ingestion (runs, quarantine, stored files, their jobs) and audiences (import quarantine
files) for "logs".

- Daily metrics (`campaigns_dailymetric`) and the rollups built from them (`reporting_dailyrollup`): 13 months.
  Older rows are archived to the organisation's storage as Parquet (one file per table and day, the org's slug in
  the key), and only then deleted, in one transaction per organisation. A crash before the commit leaves every
  row in place; the next run rewrites the same day files (merged by row id, never doubled).
- Ingestion logs: runs, their quarantined rows, their stored files and their jobs: 90 days.
- The audit log: 2 years, archived like the metrics, then deleted through the one path the database allows
  (see p360/core/audit/migrations/0003_audit_retention_purge.py): the app role still cannot DELETE a younger row.

Summaries are kept forever (document 004 5.5). Every surface (the `retention` command, the schedules) calls
`apply_retention`; a dry run only counts.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import zlib
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import polars as pl
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import Storage, default_storage
from django.db import connection, models, transaction
from django.db.models.functions import TruncDate
from django.utils import timezone
from django_tenants.utils import get_public_schema_name, schema_context

from p360.core import registry
from p360.core.audit.models import AuditEvent
from p360.core.audit.services import record
from p360.core.faults import raise_point
from p360.core.jobs.services import JobContext, JobError, job_handler, job_run_inline
from p360.core.tenancy import org_model
from p360.core.uploads.storage import org_storage

if TYPE_CHECKING:
    from tenants.models import Organization

logger = logging.getLogger(__name__)
KINDS = ("metrics", "logs", "audit")
GLOBAL = "(global)"


# --- Cut-offs ------------------------------------------------------------------------------------------------------


def months_before(day: dt.date, months: int) -> dt.date:
    """The same day of the month `months` earlier (the month's last day when it has fewer days)."""
    index = day.year * 12 + (day.month - 1) - months
    year, month = divmod(index, 12)
    month += 1
    for candidate in (day.day, 30, 29, 28):
        try:
            return dt.date(year, month, min(day.day, candidate))
        except ValueError:
            continue
    raise ValueError(day)  # unreachable: every month has a 28th


def cutoffs(today: dt.date | None = None) -> dict[str, Any]:
    """Rows strictly older than these go: metric dates before `metrics`, runs and audit rows created before
    `logs` / `audit` (midnight UTC)."""
    today = today or timezone.now().date()
    audit_months = max(24, settings.P360_RETENTION_AUDIT_MONTHS)  # the database refuses fewer (trust item 32)

    def midnight(day: dt.date) -> dt.datetime:
        return dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)

    return {
        "metrics": months_before(today, settings.P360_RETENTION_METRICS_MONTHS),
        "logs": midnight(today - dt.timedelta(days=settings.P360_RETENTION_LOG_DAYS)),
        "audit": midnight(months_before(today, audit_months)),
    }


# --- Parquet archives ---------------------------------------------------------------------------------------------


def _polars_type(field: models.Field) -> pl.DataType:
    if isinstance(field, models.DecimalField):
        return pl.Decimal(field.max_digits, field.decimal_places)
    if isinstance(field, models.DateTimeField):
        return pl.Datetime("us", "UTC")
    if isinstance(field, models.DateField):
        return pl.Date()
    if isinstance(field, models.BooleanField):
        return pl.Boolean()
    if isinstance(field, models.IntegerField | models.AutoField | models.ForeignKey):
        return pl.Int64()
    return pl.String()


def _frame(model: type[models.Model], rows: list[tuple[Any, ...]]) -> pl.DataFrame:
    """Rows as a typed frame: decimals keep their exact digits, JSON is kept as its text."""
    fields = model._meta.concrete_fields
    schema = {f.attname: _polars_type(f) for f in fields}
    columns: dict[str, list[Any]] = {f.attname: [] for f in fields}
    for row in rows:
        for field, value in zip(fields, row, strict=True):
            if isinstance(field, models.JSONField) and value is not None:
                value = json.dumps(value, sort_keys=True, default=str)
            elif isinstance(value, Decimal | dt.date | dt.datetime | int | bool | float) or value is None:
                pass
            else:
                value = str(value)
            columns[field.attname].append(value)
    return pl.DataFrame(columns, schema=schema)


def archive_key(scope: str, table: str, day: dt.date) -> str:
    return f"archive/{scope}/{table}/{day:%Y}/{table}-{scope}-{day:%Y-%m-%d}.parquet"


def read_archive(storage: Storage, key: str) -> pl.DataFrame:
    with storage.open(key, "rb") as handle:
        return pl.read_parquet(io.BytesIO(handle.read()))


def _write_archive(storage: Storage, key: str, frame: pl.DataFrame) -> None:
    """Write (or merge into) one day's archive file. Merged by row id, so a run repeated after a crash, or late
    rows of an archived day, never double a row."""
    # A merge never deletes archived rows before their new copy is stored: the merged file is first saved as
    # `<key>.merging`, and a run that died between deleting the old file and saving the new one finds it there.
    merging = f"{key}.merging"
    earlier = [read_archive(storage, name) for name in (key, merging) if storage.exists(name)]
    if earlier:
        frame = pl.concat([*earlier, frame], how="vertical_relaxed").unique("id", keep="last")
    buffer = io.BytesIO()
    frame.sort("id").write_parquet(buffer, compression="zstd")
    if earlier:
        if storage.exists(merging):
            storage.delete(merging)
        storage.save(merging, ContentFile(buffer.getvalue()))
        if storage.exists(key):
            storage.delete(key)
    saved = storage.save(key, ContentFile(buffer.getvalue()))
    if earlier:
        storage.delete(merging)
    if saved != key:  # another writer took the name between delete and save: never leave two halves
        storage.delete(saved)
        raise RuntimeError(f"archive {key} was written concurrently; retention stopped for this organisation")


def _archive_by_day(
    storage: Storage, scope: str, model: type[models.Model], queryset: models.QuerySet, day_of: str
) -> list[str]:
    """Archive the queryset's rows one day at a time (bounded memory); returns the keys written."""
    table = model._meta.db_table
    attnames = [f.attname for f in model._meta.concrete_fields]
    if day_of == "date":
        days = sorted(queryset.values_list("date", flat=True).distinct())
    else:
        day_expr = TruncDate(day_of, tzinfo=dt.UTC)
        days = sorted(queryset.annotate(day=day_expr).values_list("day", flat=True).distinct())
    keys = []
    for day in days:
        if day_of == "date":
            day_rows = queryset.filter(date=day)
        else:
            start = dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)
            day_rows = queryset.filter(**{f"{day_of}__gte": start, f"{day_of}__lt": start + dt.timedelta(days=1)})
        rows = list(day_rows.order_by("pk").values_list(*attnames))
        key = archive_key(scope, table, day)
        _write_archive(storage, key, _frame(model, rows))
        keys.append(key)
    return keys


def _org_lock(scope: str) -> None:
    """One retention pass at a time per organisation (held until the transaction ends)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [zlib.crc32(f"p360:retention:{scope}".encode())])


def org_archive_storage(org: Organization) -> Storage:
    return org_storage(org.schema_name)


def archive_then_delete(
    org: Organization, model: type[models.Model], queryset: models.QuerySet, *, dry_run: bool, day_of: str = "date"
) -> dict[str, Any]:
    """A retention step's usual body: count the rows, or archive them (Parquet, one file per day, the org's
    storage) and then delete them. Runs inside the kind's transaction (`run_kind`): a crash keeps every row."""
    table = model._meta.db_table
    count = queryset.count()
    if dry_run or not count:
        return {"rows": {table: count}, "archived_files": 0}
    keys = _archive_by_day(org_archive_storage(org), org.slug, model, queryset, day_of)
    raise_point(f"retention:{table}_before_delete")
    return {"rows": {table: queryset.delete()[0]}, "archived_files": len(keys)}


# --- Audit log (the core's own step): 2 years, archived, through the database's one purge path -------------------


def _old_audit(org: Organization | None, cutoff: dt.datetime) -> models.QuerySet:
    return AuditEvent.objects.filter(org_id=org.pk if org else None, created_at__lt=cutoff)


def audit_step(org: Organization | None, *, cutoff: dt.datetime, dry_run: bool) -> dict[str, Any]:
    count = _old_audit(org, cutoff).count()
    if dry_run or not count:
        return {"rows": {"audit_auditevent": count}, "archived_files": 0}
    storage = org_archive_storage(org) if org is not None else default_storage
    scope = org.slug if org is not None else "global"
    keys = _archive_by_day(storage, scope, AuditEvent, _old_audit(org, cutoff), "created_at")
    with connection.cursor() as cursor:
        # The trigger lets this transaction delete rows older than 2 years, and nothing younger.
        cursor.execute("SET LOCAL p360.audit_retention = 'on'")
        if org is None:
            cursor.execute("DELETE FROM audit_auditevent WHERE org_id IS NULL AND created_at < %s", [cutoff])
        else:
            cursor.execute("DELETE FROM audit_auditevent WHERE org_id = %s AND created_at < %s", [org.pk, cutoff])
        deleted = cursor.rowcount
        cursor.execute("SET LOCAL p360.audit_retention = 'off'")
    return {"rows": {"audit_auditevent": deleted}, "archived_files": len(keys)}


registry.register_retention_step(
    kind="audit", key="audit", order=10, run=audit_step, entity_type="audit.auditevent", orgless=True
)


# --- One kind for one org: every app's registered step, in one transaction --------------------------------------

# What the audit row of a pass that changed something says (one row per org and kind).
ACTIONS = {
    "metrics": "retention.metrics_archived",
    "logs": "retention.logs_deleted",
    "audit": "retention.audit_archived",
}


def run_kind(kind: str, org: Organization | None, *, dry_run: bool, cutoff: Any) -> dict[str, Any]:
    """Run every registered step of `kind` for `org` (None: data of no organisation) in the org's schema.

    Not a dry run: one transaction holding the org's retention lock, so a crash anywhere (a step, the audit row,
    the commit) leaves every row of every step in place and the next pass redoes the whole kind."""
    steps = [s for s in registry.retention_steps(kind) if org is not None or s.orgless]
    result: dict[str, Any] = {"cutoff": cutoff.isoformat(), "rows": {}}
    archived: int | None = None
    with schema_context(org.schema_name if org else get_public_schema_name()), transaction.atomic():
        if not dry_run:
            _org_lock(org.schema_name if org else GLOBAL)
        for step in steps:
            part = step.run(org, cutoff=cutoff, dry_run=dry_run)
            result["rows"].update(part["rows"])
            if "archived_files" in part:
                archived = (archived or 0) + part["archived_files"]
        if archived is not None:
            result["archived_files"] = archived
        if not dry_run and any(result["rows"].values()):
            record(
                action=ACTIONS.get(kind, f"retention.{kind}"),
                org=org,
                entity_type=steps[0].entity_type,
                after={"cutoff": cutoff, "deleted": result["rows"], "files": archived or 0},
                actor_email="retention",
            )
            raise_point(f"retention:{kind}_before_commit")
    return result


# --- One entry point ------------------------------------------------------------------------------------------------


def apply_retention(
    *,
    orgs: Iterable[Organization],
    include_global: bool,
    kinds: Iterable[str] = KINDS,
    dry_run: bool,
    today: dt.date | None = None,
) -> dict[str, Any]:
    """Apply (or, with dry_run, only count) retention for each org, and for data of no org when asked.

    Each org is handled on its own (its own schema, storage and transaction): one org's failure does not stop
    the others, and is reported in its entry."""
    limits = cutoffs(today)
    kinds = [k for k in KINDS if k in set(kinds)]
    report: dict[str, Any] = {
        "dry_run": dry_run,
        "cutoffs": {k: limits[k].isoformat() for k in kinds},
        "orgs": {},
    }
    scopes: list[tuple[str, Organization | None]] = [(org.slug, org) for org in orgs]
    if include_global:
        scopes.append((GLOBAL, None))
    for name, org in scopes:
        entry: dict[str, Any] = {}
        for kind in kinds:
            if org is None and not any(step.orgless for step in registry.retention_steps(kind)):
                continue  # e.g. daily metrics always belong to an organisation
            try:
                entry[kind] = run_kind(kind, org, dry_run=dry_run, cutoff=limits[kind])
            except Exception as exc:
                logger.exception("retention %s failed for %s", kind, name)
                entry[kind] = {"error": f"{type(exc).__name__}: {exc}"}
        report["orgs"][name] = entry
    report["failed"] = sorted(
        f"{name}:{kind}" for name, entry in report["orgs"].items() for kind, res in entry.items() if "error" in res
    )
    return report


# --- Jobs and schedules ---------------------------------------------------------------------------------------------


@job_handler("retention.org", title="Retention (one organisation)")
def retention_org_job(ctx: JobContext, kinds: list[str]) -> dict[str, Any]:
    org = org_model().objects.get(pk=ctx.job.org_id)
    report = apply_retention(orgs=[org], include_global=False, kinds=kinds, dry_run=False)
    ctx.log(json.dumps(report["orgs"], default=str)[:2000])
    if report["failed"]:
        raise JobError(f"retention failed: {', '.join(report['failed'])}")
    return report


@job_handler("retention.global", title="Retention (data of no organisation)", per_org=False)
def retention_global_job(ctx: JobContext, kinds: list[str]) -> dict[str, Any]:
    report = apply_retention(orgs=[], include_global=True, kinds=kinds, dry_run=False)
    ctx.log(json.dumps(report["orgs"], default=str)[:2000])
    if report["failed"]:
        raise JobError(f"retention failed: {', '.join(report['failed'])}")
    return report


def scheduled_retention(kind: str) -> list[int]:
    """Scheduled task (public schema): one `retention.org` job per active org, then one for data of no org.
    Each job is recorded (status, counts, log) in the jobs admin."""
    if kind not in KINDS:
        raise ValueError(f"unknown retention kind {kind!r}")
    job_ids = [
        job_run_inline(kind="retention.org", org=org, params={"kinds": [kind]}).pk
        for org in org_model().objects.active()
    ]
    if any(step.orgless for step in registry.retention_steps(kind)):  # data of no org (REDS runs, audit rows)
        job_ids.append(job_run_inline(kind="retention.global", org=None, params={"kinds": [kind]}).pk)
    return job_ids


def scheduled_metrics() -> list[int]:
    return scheduled_retention("metrics")


def scheduled_logs() -> list[int]:
    return scheduled_retention("logs")


def scheduled_audit() -> list[int]:
    return scheduled_retention("audit")


def _cron(setting: str) -> Callable[[], str]:
    return lambda: str(getattr(settings, setting))


# UTC, configurable by environment (cron read late: settings may change after import)
for _name, _kind, _setting in (
    ("p360: retention of daily metrics (13 months, archived)", "metrics", "P360_RETENTION_METRICS_CRON"),
    ("p360: retention of ingestion logs (90 days)", "logs", "P360_RETENTION_LOGS_CRON"),
    ("p360: retention of the audit log (2 years, archived)", "audit", "P360_RETENTION_AUDIT_CRON"),
):
    registry.register_schedule(
        name=_name,
        func=f"p360.core.jobs.retention.scheduled_{_kind}",
        cron=_cron(_setting),
    )
