"""The import pipeline: file -> checked -> text rows -> normalised records -> deduplicated -> a new version.

This module orchestrates; each step is a module that returns a value and never calls back up:
  import_source.py (where the file is, is it safe, its rows in batches)
  -> import_stage.py (normalise, quarantine bad rows, stage good rows as Parquet: `Staged`)
  -> import_dedupe.py (which rows become records: `Plan`)
  -> import_write.py (the rows into the new version through a loader: `Written`)
  -> import_report.py (quarantine file, quality, summary).
The `first` rule (the default) does not stage: whether a row is kept depends only on the rows before it, so
each batch is normalised, deduplicated against the keys taken so far (`SeenKeys`) and handed to the COPY
connections at once, and PostgreSQL parses batch N while batch N+1 is normalised. `SeenKeys` holds 64-bit
hashes only (the taken keys are spilled to disk); before the commit the rows dropped on a hash are checked
against those exact keys, and a collision (two keys, one hash) drops the streamed table and re-imports through
the staged path, so the result never depends on the hash. `last` and `merge` need the whole file before any row
can be placed and keep the staged path.
The new version is written in ONE transaction: a crash at any point leaves the audience exactly as it
was, and the job simply runs again.

Counting rule (asserted for every import): rows_read == rows_loaded + rows_quarantined + duplicates.
Blank lines are not rows; they are counted separately (`blank_lines`).
"""

from __future__ import annotations

import shutil
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import Max
from django.utils import timezone

from audiences import records
from audiences.import_dedupe import KeyHashCollision, Plan, SeenKeys, existing_keys, plan_dedupe
from audiences.import_report import quality, save_quarantine, summary
from audiences.import_source import (
    ImportFailed,
    ImportRejected,
    Inspection,
    content_sha256,
    inspect,
    source_file,
    work_dir,
)
from audiences.import_stage import Staged, default_dedupe_key, normalised, stage
from audiences.import_write import (
    Written,
    audience_lock,
    create_detached,
    drop_leftovers,
    load_rows,
    lock_audience,
    prune_versions,
    reserve_version_id,
    stream_first,
)
from audiences.loader import ParallelLoader, SerialLoader, loader_for
from audiences.models import (
    Audience,
    AudienceImport,
    AudienceStatus,
    AudienceVersion,
    DedupeRule,
    ImportMode,
    ImportStatus,
)
from p360.core import registry
from p360.core.audit.services import record
from p360.core.intake.files import FileRejected, inspect_file
from p360.core.intake.reader import QUARANTINE_SCHEMA, ROW, RestartCarefully
from tenants.selectors import current_org

if TYPE_CHECKING:
    from p360.core.jobs.services import JobContext

# The pipeline's public names (callers import them from here; the steps are its internals).
__all__ = [
    "ImportFailed",
    "ImportRejected",
    "Inspection",
    "content_sha256",
    "default_dedupe_key",
    "inspect",
    "run_import",
    "source_file",
    "summary",
]


def run_import(import_id: int, ctx: JobContext | None = None) -> dict[str, Any]:
    imp = AudienceImport.objects.get(pk=import_id)
    if imp.status == ImportStatus.SUCCEEDED:
        return summary(imp)  # a task delivered twice: the first delivery already did the work
    AudienceImport.objects.filter(pk=imp.pk).update(status=ImportStatus.RUNNING, started_at=timezone.now(), error="")
    tmp = work_dir()
    try:
        with source_file(imp) as path:
            try:
                info = inspect_file(path, filename=imp.source_name, max_bytes=settings.P360_IMPORT_MAX_BYTES)
            except FileRejected as exc:
                _fail(imp, exc.message, status=ImportStatus.REJECTED)
                raise ImportFailed(exc.message) from exc
            imp.file_kind, imp.encoding, imp.delimiter = info.kind, info.encoding, info.delimiter or ""
            imp.file_size, imp.file_sha256 = info.size, info.sha256
            _refuse_identical_file(imp)
            if imp.dedupe_rule == DedupeRule.FIRST:  # decided row by row: streamed, no staged file
                result = _stream_version(imp, path, info, tmp, ctx)
            else:  # `last` and `merge` need the whole file before any row is placed: staged first
                staged, blank_lines = stage(imp, path, info, tmp, ctx)
                result = _write_version(imp, staged, blank_lines, ctx)
    except ImportFailed as exc:
        if imp.status != ImportStatus.REJECTED:
            _fail(
                imp, str(exc), status=ImportStatus.REJECTED if isinstance(exc, ImportRejected) else ImportStatus.FAILED
            )
        raise
    except (OperationalError, InterfaceError) as exc:
        message = "the database connection was lost during the import; nothing was saved. Run it again."
        _fail(imp, message)
        raise ImportFailed(message) from exc
    except BaseException as exc:  # a polars panic is not an Exception; never leave the import "running"
        _fail(imp, f"{type(exc).__name__}: {exc}")
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    prune_versions(imp.audience)
    return result


def _fail(imp: AudienceImport, message: str, *, status: str = ImportStatus.FAILED) -> None:
    imp.status, imp.error, imp.finished_at = status, message[:5000], timezone.now()
    AudienceImport.objects.filter(pk=imp.pk).update(status=status, error=imp.error, finished_at=imp.finished_at)
    record(action=f"audience_import.{status}", org=current_org(), entity=imp, after={"error": imp.error})


def _refuse_identical_file(imp: AudienceImport) -> None:
    same = (
        AudienceImport.objects.filter(
            status=ImportStatus.SUCCEEDED, file_sha256=imp.file_sha256, audience_name=imp.audience_name
        )
        .exclude(pk=imp.pk)
        .first()
    )
    if same is not None and imp.mode == ImportMode.APPEND:
        raise ImportFailed(
            f"this exact file (SHA-256 {imp.file_sha256[:12]}…) was already loaded into "
            f"'{imp.audience_name}' on {same.finished_at:%Y-%m-%d %H:%M} UTC (import #{same.pk}); "
            "nothing was loaded twice. Use 'replace' to load it again from scratch."
        )


def _write_version(imp: AudienceImport, staged: Staged, blank_lines: int, ctx: JobContext | None) -> dict[str, Any]:
    mapping = {k: v for k, v in imp.mapping.items() if v}
    key = imp.dedupe_key or default_dedupe_key(mapping)
    schema = str(connection.schema_name)  # type: ignore[attr-defined]
    quarantine = pl.concat(staged.quarantine).sort(ROW) if staged.quarantine else pl.DataFrame(schema=QUARANTINE_SCHEMA)
    with staged.phase("quarantine_file"):
        quarantine_name = save_quarantine(imp, quarantine)
    with audience_lock(schema, imp.audience_name):  # one writer per audience: the plan stays true
        drop_leftovers(schema, imp)
        audience = Audience.objects.filter(name=imp.audience_name).first()
        base = audience.current_version if audience is not None and imp.mode == ImportMode.APPEND else None
        with staged.phase("dedupe"):
            existing = existing_keys(audience if base else None, key)
            plan = plan_dedupe(imp, staged, existing, key, base.pk if base else None)
        version_id = reserve_version_id()
        loader = loader_for(schema, version_id)
        try:
            with nullcontext() if loader.parallel else transaction.atomic():
                if loader.parallel:
                    create_detached(schema, version_id, imp)
                with loader:
                    written = load_rows(loader, plan, staged, base, key)
                _count_copy_workers(staged, loader)
                loader.analyzed()  # the statistics, gathered while the lines above ran
                with transaction.atomic():
                    _finish_version(
                        imp,
                        staged,
                        plan,
                        written,
                        quarantine,
                        quarantine_name,
                        blank_lines,
                        key,
                        version_id,
                        loader.parallel,
                    )
        except BaseException:
            if loader.parallel:
                records.drop_partition(version_id, schema)
            raise
    if ctx is not None:
        ctx.progress(ctx.job.progress_total or 0, ctx.job.progress_total, rows_loaded=imp.rows_loaded)
    return summary(imp)


def _stream_version(imp: AudienceImport, path: Path, info: Any, tmp: Path, ctx: JobContext | None) -> dict[str, Any]:
    """The `first` rule: read, normalise, dedupe and COPY batch by batch (COPY runs on other connections, and
    PostgreSQL parses on its own core, while the next batch is normalised). Same single commit as the staged
    path: the new version's rows go to a detached table (or the caller's transaction) until `_finish_version`."""
    try:
        try:
            return _stream_once(imp, path, info, tmp, ctx, careful=False)
        except RestartCarefully:
            if ctx is not None:
                ctx.log("the fast reader gave up part-way; reading the file again carefully")
            return _stream_once(imp, path, info, tmp, ctx, careful=True)
    except KeyHashCollision:
        # Nothing was kept (the streamed rows were dropped with their table); the staged path compares the
        # rows whose hashes repeat by their exact keys.
        if ctx is not None:
            ctx.log("two dedupe keys share a hash; importing again through the staged path")
        staged, blank_lines = stage(imp, path, info, tmp, ctx)
        return _write_version(imp, staged, blank_lines, ctx)


def _stream_once(
    imp: AudienceImport, path: Path, info: Any, tmp: Path, ctx: JobContext | None, *, careful: bool
) -> dict[str, Any]:
    mapping = {k: v for k, v in imp.mapping.items() if v}
    key = imp.dedupe_key or default_dedupe_key(mapping)
    schema = str(connection.schema_name)  # type: ignore[attr-defined]
    staged = Staged()
    with audience_lock(schema, imp.audience_name):  # one writer per audience: the dedupe stays true
        drop_leftovers(schema, imp)
        audience = Audience.objects.filter(name=imp.audience_name).first()
        base = audience.current_version if audience is not None and imp.mode == ImportMode.APPEND else None
        with staged.phase("dedupe"):
            seen = SeenKeys(existing_keys(audience if base else None, key), tmp / f"keys-{int(careful)}")
        version_id = reserve_version_id()
        loader = loader_for(schema, version_id)
        try:
            with nullcontext() if loader.parallel else transaction.atomic():
                if loader.parallel:
                    create_detached(schema, version_id, imp)
                with loader:
                    batches = normalised(imp, path, info, tmp, ctx, staged, careful=careful)
                    written, duplicates = stream_first(loader, batches, seen, staged, base, key)
                _count_copy_workers(staged, loader)
                with staged.phase("dedupe"):
                    seen.verify()  # before anything is committed: a hash collision restarts on the staged path
                del seen
                quarantine = (
                    pl.concat(staged.quarantine).sort(ROW)
                    if staged.quarantine
                    else pl.DataFrame(schema=QUARANTINE_SCHEMA)
                )
                with staged.phase("quarantine_file"):
                    quarantine_name = save_quarantine(imp, quarantine)
                plan = Plan(keep_lines=pl.DataFrame(), merged=None, replace_keys=[], duplicates=duplicates)
                loader.analyzed()  # the statistics, gathered while the lines above ran
                with transaction.atomic():
                    _finish_version(
                        imp,
                        staged,
                        plan,
                        written,
                        quarantine,
                        quarantine_name,
                        staged.blank_lines,
                        key,
                        version_id,
                        loader.parallel,
                    )
        except BaseException:
            if loader.parallel:
                _drop_detached(version_id, schema)
            raise
    if ctx is not None:
        ctx.progress(ctx.job.progress_total or 0, ctx.job.progress_total, rows_loaded=imp.rows_loaded)
    return summary(imp)


def _count_copy_workers(staged: Staged, loader: SerialLoader | ParallelLoader) -> None:
    """The COPY workers' own CPU, apart from the phases (which count the whole process while they run)."""
    if loader.parallel:
        staged.cpu["copy_workers"] = round(loader.cpu_seconds, 3)


def _drop_detached(version_id: int, schema: str) -> None:
    """Drop a failed import's detached table, on a new session when the failure was the lost session itself.

    (Outside a transaction Django does not reconnect by itself: a lost session stays closed until closed.)
    """
    try:
        records.drop_partition(version_id, schema)
    except (OperationalError, InterfaceError):
        connection.close()
        records.drop_partition(version_id, schema)


def _finish_version(
    imp: AudienceImport,
    staged: Staged,
    plan: Plan,
    written: Written,
    quarantine: pl.DataFrame,
    quarantine_name: str,
    blank_lines: int,
    key: str,
    version_id: int,
    attach: bool,
) -> None:
    """One short transaction: the version row, its partition attached, counts, report, pointer, audit."""
    audience = lock_audience(imp)
    number = (audience.versions.aggregate(n=Max("number"))["n"] or 0) + 1
    version = AudienceVersion.objects.create(
        pk=version_id,
        audience=audience,
        number=number,
        source_import=imp,
        created_by_email=imp.created_by_email,
        note=f"{imp.get_mode_display()}: {imp.source_name}",
    )
    if attach:
        with connection.cursor() as cursor:
            records.attach(cursor, str(connection.schema_name), version_id)  # type: ignore[attr-defined]
    with staged.phase("quality"):
        figures = quality(version.pk, staged, written, quarantine)  # one scan: counts and completeness
        version.record_count = figures["records_in_version"]
        version.save(update_fields=["record_count"])
    staged.note_peak("between")
    imp.rows_read = staged.rows_read
    imp.rows_quarantined = quarantine.height
    imp.duplicates = plan.duplicates
    imp.rows_loaded = staged.rows_read - imp.rows_quarantined - imp.duplicates
    imp.blank_lines = blank_lines
    imp.quality = {
        **figures,
        "dedupe_key": key,
        "replaced_existing": len(plan.replace_keys),
        "timings": staged.timings,
        "cpu_seconds": staged.cpu,
        "rss_mb": staged.memory,
        "peak_rss_mb": staged.peak_memory,
    }
    imp.quarantine_file = quarantine_name
    imp.version = version
    imp.audience = audience
    imp.status = ImportStatus.SUCCEEDED
    imp.finished_at = timezone.now()
    imp.save()
    audience.current_version = version
    audience.record_count = version.record_count
    audience.status = AudienceStatus.READY
    audience.save(update_fields=["current_version", "record_count", "status", "updated_at"])
    registry.call_hooks("audience_records_changed", audience_id=audience.pk)
    record(
        action="audience_import.succeeded",
        org=current_org(),
        entity=imp,
        actor_email=imp.created_by_email,
        after=summary(imp),
    )
