"""The import pipeline: file -> checked -> text rows -> normalised records -> deduplicated -> a new version.

Data flows one way through four stages, each in its own module:
  files.py (is it safe, what encoding and delimiter)  ->  reader.py (rows with line numbers, bad lines)
  ->  normalize.py (typed canonical fields, UID2 hashes, field errors)  ->  records.py (COPY into a version).
This module orchestrates them, stages normalised rows on local disk (Parquet) so memory stays bounded,
decides duplicates in polars, and writes the new version in ONE transaction: a crash at any point
leaves the audience exactly as it was, and the job simply runs again.

Counting rule (asserted for every import): rows_read == rows_loaded + rows_quarantined + duplicates.
Blank lines are not rows; they are counted separately (`blank_lines`).
"""

from __future__ import annotations

import hashlib
import io
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import psutil
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import Max
from django.utils import timezone

from audiences import records
from audiences.fields import infer_custom_types, propose_mapping, unique_headers
from audiences.loader import ParallelLoader, SerialLoader, loader_for
from audiences.models import (
    Audience,
    AudienceImport,
    AudienceKind,
    AudienceStatus,
    AudienceVersion,
    DedupeRule,
    ImportMode,
    ImportStatus,
    VersionStatus,
)
from audiences.normalize_batch import normalize_batch
from p360.core.audit.services import record
from p360.core.exports import neutralise_expr
from p360.core.faults import fault_point
from p360.core.intake.files import FileRejected, inspect_file, read_xlsx_strings, to_utf8
from p360.core.intake.reader import QUARANTINE_SCHEMA, ROW, DelimitedReader, RestartCarefully, read_header
from p360.core.tenancy import org_storage_name
from p360.core.uploads.services import get_completed_upload
from p360.core.uploads.storage import local_copy
from tenants.selectors import current_org

if TYPE_CHECKING:
    from p360.core.jobs.services import JobContext

KEY = "__key"
HASH_SEED = 360
PREVIEW_ROWS = 20
XLSX_CHUNK = 100_000


class ImportFailed(Exception):
    """The import cannot proceed; the message is for the person who started it."""


class ImportRejected(ImportFailed):
    """The file itself is refused (unsafe, unreadable, not a table): nothing will make it load."""


# --- where files are ---------------------------------------------------------------------------------
# org_storage_name: the org's prefix in the storage, shared with reporting (p360/core/tenancy.py)


def work_dir() -> Path:
    base = Path(settings.DATA_DIR) / "tmp"
    base.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="import-", dir=base))


@contextmanager
def source_file(imp: AudienceImport) -> Iterator[Path]:
    """A local path for the import's file, whatever backend holds it."""
    if imp.upload_id:
        with local_copy(get_completed_upload(imp.upload_id)) as path:
            yield Path(path)
        return
    if imp.storage_name.startswith("file:"):
        path = Path(imp.storage_name.removeprefix("file:"))
        if not path.exists():
            raise ImportFailed(f"the source file {path} no longer exists")
        yield path
        return
    if not imp.storage_name:
        raise ImportFailed("the import has no file")
    tmp = work_dir()
    try:
        local = tmp / "source"
        with default_storage.open(imp.storage_name, "rb") as src, local.open("wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        yield local
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --- inspection (also used by the mapping page) -------------------------------------------------------
@dataclass
class Inspection:
    kind: str
    encoding: str
    delimiter: str
    size: int
    sha256: str
    headers: list[str]
    preview: pl.DataFrame
    proposed: dict[str, str | None]
    custom_types: dict[str, str]


def inspect(imp: AudienceImport) -> Inspection:
    """Check the file and read its header and first rows, without loading anything."""
    tmp = work_dir()
    try:
        with source_file(imp) as path:
            try:
                info = inspect_file(path, filename=imp.source_name, max_bytes=settings.P360_IMPORT_MAX_BYTES)
            except FileRejected as exc:
                raise ImportFailed(exc.message) from exc
            headers, preview = _preview(path, info, tmp)
        proposed = propose_mapping(headers)
        custom_columns = [h for h in headers if proposed.get(h) is None]
        custom_types = infer_custom_types(preview, custom_columns) if custom_columns else {}
        return Inspection(
            kind=info.kind,
            encoding=info.encoding,
            delimiter=info.delimiter or "",
            size=info.size,
            sha256=info.sha256,
            headers=headers,
            preview=preview,
            proposed=proposed,
            custom_types=custom_types,
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _preview(path: Path, info: Any, tmp: Path) -> tuple[list[str], pl.DataFrame]:
    if info.kind == "xlsx":
        frame = _safe_xlsx(path)
        headers = unique_headers([c for c in frame.columns if c != "__line"])
        return headers, frame.head(PREVIEW_ROWS).drop("__line").rename(
            dict(zip(frame.columns[:-1], headers, strict=False))
        )
    text = to_utf8(path, info, tmp)
    headers = unique_headers(read_header(text, info.delimiter or ","))
    reader = DelimitedReader(text, delimiter=info.delimiter or ",", headers=headers, chunk_size=PREVIEW_ROWS)
    reader.scan.fast = False  # the careful reader stops early; no full scan for a preview
    first = next(iter(reader.batches()), None)
    preview = (
        first.drop(ROW).head(PREVIEW_ROWS)
        if first is not None
        else pl.DataFrame(schema=dict.fromkeys(headers, pl.String))
    )
    return headers, preview


def _safe_xlsx(path: Path) -> pl.DataFrame:
    try:
        return read_xlsx_strings(path)
    except FileRejected as exc:
        raise ImportRejected(exc.message) from exc


# --- the run -------------------------------------------------------------------------------------------
@dataclass
class Staged:
    parts: list[Path] = field(default_factory=list)
    keys: list[pl.DataFrame] = field(default_factory=list)
    quarantine: list[pl.DataFrame] = field(default_factory=list)
    rows_read: int = 0
    field_filled: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    memory: dict[str, int] = field(default_factory=dict)  # MB of RSS seen at the end of each phase
    # What went into the new version from this file: rows and non-null values per column.
    written_rows: int = 0
    written_filled: dict[str, int] = field(default_factory=dict)
    has_base: bool = False

    def count_written(self, frame: pl.DataFrame) -> None:
        self.written_rows += frame.height
        for column, nulls in zip(frame.columns, frame.null_count().row(0), strict=True):
            self.written_filled[column] = self.written_filled.get(column, 0) + frame.height - int(nulls)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time a phase (shown in the report, so slow imports can be explained)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = round(self.timings.get(name, 0.0) + time.perf_counter() - start, 3)
            rss = psutil.Process().memory_info().rss // (1 << 20)
            self.memory[name] = max(self.memory.get(name, 0), rss)

    def reset(self) -> None:
        for part in self.parts:
            part.unlink(missing_ok=True)
        self.parts, self.keys, self.quarantine, self.rows_read, self.field_filled = [], [], [], 0, {}
        self.timings = {}


def default_dedupe_key(mapping: dict[str, str]) -> str:
    fields = set(mapping.values())
    return "email_normalized" if "email" in fields else "domain"


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
            staged, blank_lines = _stage(imp, path, info, tmp, ctx)
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
    _prune_versions(imp.audience)
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


def _batches(
    imp: AudienceImport, path: Path, info: Any, tmp: Path
) -> tuple[Iterator[pl.DataFrame], DelimitedReader | None, int]:
    if info.kind == "xlsx":
        frame = _safe_xlsx(path)
        raw = [c for c in frame.columns if c != "__line"]
        headers = unique_headers(raw)
        frame = frame.rename({**dict(zip(raw, headers, strict=True)), "__line": ROW}).with_columns(
            pl.col(ROW).cast(pl.Int64)
        )
        frame = frame.select(ROW, *headers)
        return (frame.slice(i, XLSX_CHUNK) for i in range(0, frame.height, XLSX_CHUNK)), None, frame.height
    text = to_utf8(path, info, tmp)
    headers = unique_headers(read_header(text, info.delimiter or ","))
    reader = DelimitedReader(text, delimiter=info.delimiter or ",", headers=headers)
    scan = reader.scan_lines()
    return reader.batches(), reader, scan.lines


def _stage(imp: AudienceImport, path: Path, info: Any, tmp: Path, ctx: JobContext | None) -> tuple[Staged, int]:
    try:
        return _stage_once(imp, path, info, tmp, ctx)
    except RestartCarefully:
        if ctx is not None:
            ctx.log("the fast reader gave up part-way; reading the file again carefully")
        return _stage_once(imp, path, info, tmp, ctx, careful=True)


def _stage_once(
    imp: AudienceImport, path: Path, info: Any, tmp: Path, ctx: JobContext | None, careful: bool = False
) -> tuple[Staged, int]:
    staged = Staged()
    with staged.phase("check_and_scan"):
        batches, reader, total = _batches(imp, path, info, tmp)
    if reader is not None and careful:
        reader.scan.fast = False
        batches = reader.batches()
    mapping = {k: v for k, v in imp.mapping.items() if v}
    unknown = [h for h in [*mapping, *imp.custom_types] if reader is not None and h not in reader.headers]
    if unknown:
        raise ImportFailed(f"the mapping names columns the file does not have: {', '.join(sorted(unknown))}")
    key = imp.dedupe_key or default_dedupe_key(mapping)
    done = 0
    iterator = iter(batches)
    for number in range(1 << 40):
        with staged.phase("read"):
            batch = next(iterator, None)
        if batch is None:
            break
        staged.rows_read += batch.height
        with staged.phase("normalise"):
            batch = _quarantine_empty_rows(batch, staged)
            result = normalize_batch(
                batch, mapping, custom_types=imp.custom_types, default_country=imp.default_country or "US"
            )
        if result.errors.height:
            staged.quarantine.append(_first_error_per_row(result.errors))
        good = result.records.rename({ROW: "line"}).with_columns(_key_expr(key).alias(KEY))
        for column in good.columns:
            if column not in {"line", KEY}:
                staged.field_filled[column] = staged.field_filled.get(column, 0) + int(good[column].is_not_null().sum())
        part = tmp / f"part-{number:05d}.parquet"
        with staged.phase("stage"):
            good.write_parquet(part, compression="lz4")
        staged.parts.append(part)
        # Only a 64-bit hash of each key stays in memory (20 bytes a row); the few rows whose hash
        # repeats are compared by their real keys later, read back from the staged part.
        hashed = pl.when(pl.col(KEY).is_not_null()).then(pl.col(KEY).hash(seed=HASH_SEED))
        staged.keys.append(good.select("line", pl.lit(number, dtype=pl.Int32).alias("part"), hashed.alias("h")))
        done = int(batch[ROW].cast(pl.Int64).max() or done) if batch.height else done  # type: ignore[arg-type]
        if ctx is not None:
            ctx.progress(min(done, total), total, rows_read=staged.rows_read)
    if reader is not None:
        staged.rows_read += reader.scan.quarantine.height
        staged.quarantine.append(reader.scan.quarantine)
        return staged, len(reader.scan.blank)
    return staged, 0


def _quarantine_empty_rows(batch: pl.DataFrame, staged: Staged) -> pl.DataFrame:
    values = [c for c in batch.columns if c != ROW]
    if not values:
        return batch
    empty = pl.all_horizontal([pl.col(c).fill_null("").str.strip_chars() == "" for c in values])
    bad = batch.filter(empty)
    if bad.height:
        staged.quarantine.append(
            bad.select(
                pl.col(ROW),
                pl.lit("").alias("column"),
                pl.lit("").alias("field"),
                pl.lit("").alias("value"),
                pl.lit("row has no values").alias("reason"),
            )
        )
    return batch.filter(~empty)


def _first_error_per_row(errors: pl.DataFrame) -> pl.DataFrame:
    """One quarantine row per source row; its other failing fields are named in the reason."""
    return (
        errors.sort(ROW, maintain_order=True)
        .group_by(ROW, maintain_order=True)
        .agg(
            pl.col("column").first(),
            pl.col("field").first(),
            pl.col("value").first().cast(pl.String),
            pl.col("reason").first(),
            pl.col("column").alias("all_columns"),
        )
        .with_columns(
            reason=pl.when(pl.col("all_columns").list.len() > 1)
            .then(pl.format("{} (also bad: {})", pl.col("reason"), pl.col("all_columns").list.slice(1).list.join(", ")))
            .otherwise(pl.col("reason"))
        )
        .select(*QUARANTINE_SCHEMA)
        .cast(QUARANTINE_SCHEMA)  # type: ignore[arg-type]
    )


def _key_expr(key: str) -> pl.Expr:
    if key.startswith("custom."):
        name = key.removeprefix("custom.")
        return pl.col("custom").str.json_path_match(f"$.{name}").str.strip_chars().str.to_lowercase()
    return pl.col(key).cast(pl.String).str.to_lowercase() if key else pl.lit(None, dtype=pl.String)


# --- dedupe and write -------------------------------------------------------------------------------
@dataclass
class Plan:
    keep_lines: pl.DataFrame  # (line, part) of this file's rows loaded as new records
    merged: pl.DataFrame | None  # merged records (merge rule) that replace their groups
    replace_keys: list[str]  # keys whose existing records this import replaces
    duplicates: int


def _existing_keys(audience: Audience | None, key: str) -> pl.DataFrame:
    if audience is None or audience.current_version_id is None:
        return pl.DataFrame(schema={KEY: pl.String})
    sql = (
        f"COPY (SELECT DISTINCT {records.key_sql(key, 's')} FROM {records.partition_name(audience.current_version_id)} s "
        f"WHERE {records.key_sql(key, 's')} IS NOT NULL) TO STDOUT"
    )
    buffer = io.BytesIO()
    with connection.cursor() as cursor, cursor.copy(sql) as copy:  # type: ignore[attr-defined]
        for chunk in copy:
            buffer.write(chunk)
    values = buffer.getvalue().decode().splitlines()
    return pl.DataFrame({KEY: [v.replace("\\\\", "\\") for v in values]}, schema={KEY: pl.String})


def _plan(imp: AudienceImport, staged: Staged, existing: pl.DataFrame, key: str, base_id: int | None) -> Plan:
    """Which rows become records. Exact: hashes only narrow the search; suspects are compared by key."""
    keys = (
        pl.concat(staged.keys)
        if staged.keys
        else pl.DataFrame(schema={"line": pl.Int64, "part": pl.Int32, "h": pl.UInt64})
    )
    total = keys.height
    existing_hashes = existing.select(pl.col(KEY).hash(seed=HASH_SEED).alias("h"))
    hashed = keys.filter(pl.col("h").is_not_null())
    suspect = pl.col("h").is_duplicated() | pl.col("h").is_in(existing_hashes["h"].implode())
    suspects = hashed.filter(suspect)
    # Rows without a key, and rows whose key hash is unique and unknown: always new records.
    always = pl.concat([keys.filter(pl.col("h").is_null()), hashed.filter(~suspect)]).select("line", "part")
    keyed = _exact_keys(staged, suspects)
    del keys, hashed
    rule = imp.dedupe_rule
    if rule == DedupeRule.LAST:
        winners = keyed.filter(pl.col(KEY).is_last_distinct())
        replace = winners.join(existing, on=KEY, how="semi")[KEY].to_list()
        keep = pl.concat([always, winners.select("line", "part")])
        return Plan(keep_lines=keep, merged=None, replace_keys=replace, duplicates=total - keep.height)
    fresh = keyed.join(existing, on=KEY, how="anti")
    if rule == DedupeRule.MERGE:
        return _plan_merge(staged, total, keyed, always, fresh, existing, key, base_id)
    winners = fresh.filter(pl.col(KEY).is_first_distinct())
    keep = pl.concat([always, winners.select("line", "part")])
    return Plan(keep_lines=keep, merged=None, replace_keys=[], duplicates=total - keep.height)


def _exact_keys(staged: Staged, suspects: pl.DataFrame) -> pl.DataFrame:
    """(line, part, key) of the suspect rows, in line order, read back from their staged parts."""
    frames = []
    for (part,), wanted in suspects.partition_by("part", as_dict=True).items():
        frame = pl.read_parquet(staged.parts[int(part)], columns=["line", KEY])
        frames.append(
            frame.join(wanted.select("line", "part"), on="line", how="semi").with_columns(
                pl.lit(part, dtype=pl.Int32).alias("part")
            )
        )
    if not frames:
        return pl.DataFrame(schema={"line": pl.Int64, KEY: pl.String, "part": pl.Int32})
    return pl.concat(frames).sort("line").select("line", KEY, "part")


def _plan_merge(
    staged: Staged,
    total: int,
    keyed: pl.DataFrame,
    always: pl.DataFrame,
    fresh: pl.DataFrame,
    existing: pl.DataFrame,
    key: str,
    base_id: int | None,
) -> Plan:
    """Groups of rows sharing a key become one record: the first row, its empty fields filled from later rows.

    Rows whose key already exists merge into the existing record (which comes first). Only the rows of
    groups with more than one member (or with an existing record) are read back, so memory follows the
    number of duplicates, not the size of the file.
    """
    crowded = keyed.group_by(KEY).len().filter(pl.col("len") > 1).select(KEY)
    with_existing = keyed.join(existing, on=KEY, how="semi").select(KEY).unique()
    merge_keys = pl.concat([crowded, with_existing]).unique()
    singles = fresh.join(merge_keys, on=KEY, how="anti").select("line", "part")
    parts = [pl.read_parquet(p).join(merge_keys, on=KEY, how="semi") for p in staged.parts]
    rows = pl.concat(parts, how="diagonal_relaxed").with_columns(pl.col("line").alias("__order")) if parts else None
    merged = None
    if rows is not None and rows.height:
        if base_id is not None and with_existing.height:
            old = records.read_version_keys(base_id, key, with_existing[KEY].to_list())
            old = old.with_columns(_key_expr(key).alias(KEY), pl.lit(-1, dtype=pl.Int64).alias("__order"))
            rows = pl.concat([old, rows], how="diagonal_relaxed")
        values = [c for c in rows.columns if c not in {KEY, "__order", "line"}]
        merged = (
            rows.sort("__order")
            .group_by(KEY, maintain_order=True)
            .agg([pl.col(c).drop_nulls().first() for c in values] + [pl.col("line").first()])
        )
    keep = pl.concat([always, singles])
    loaded = keep.height + (merged.height - with_existing.height if merged is not None else 0)
    return Plan(keep_lines=keep, merged=merged, replace_keys=with_existing[KEY].to_list(), duplicates=total - loaded)


def _write_version(imp: AudienceImport, staged: Staged, blank_lines: int, ctx: JobContext | None) -> dict[str, Any]:
    mapping = {k: v for k, v in imp.mapping.items() if v}
    key = imp.dedupe_key or default_dedupe_key(mapping)
    schema = str(connection.schema_name)  # type: ignore[attr-defined]
    quarantine = pl.concat(staged.quarantine).sort(ROW) if staged.quarantine else pl.DataFrame(schema=QUARANTINE_SCHEMA)
    with staged.phase("quarantine_file"):
        quarantine_name = _save_quarantine(imp, quarantine)
    with _audience_lock(schema, imp.audience_name):  # one writer per audience: the plan stays true
        _drop_leftovers(schema, imp)
        audience = Audience.objects.filter(name=imp.audience_name).first()
        base = audience.current_version if audience is not None and imp.mode == ImportMode.APPEND else None
        with staged.phase("dedupe"):
            existing = _existing_keys(audience if base else None, key)
            plan = _plan(imp, staged, existing, key, base.pk if base else None)
        version_id = _reserve_version_id()
        loader = loader_for(schema, version_id)
        try:
            with nullcontext() if loader.parallel else transaction.atomic():
                if loader.parallel:
                    _create_detached(schema, version_id, imp)
                with loader:
                    loaded = _load_rows(loader, plan, staged, base, key, imp, version_id)
                with transaction.atomic():
                    _finish_version(
                        imp,
                        staged,
                        plan,
                        quarantine,
                        quarantine_name,
                        blank_lines,
                        key,
                        loaded,
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


def _load_rows(
    loader: SerialLoader | ParallelLoader,
    plan: Plan,
    staged: Staged,
    base: AudienceVersion | None,
    key: str,
    imp: AudienceImport,
    version_id: int,
) -> int:
    """The new version's rows: the kept base records, then this file's kept rows, then merged groups."""
    schema = loader.schema
    first_row = 0
    staged.has_base = base is not None
    if base is not None:
        replace = plan.replace_keys

        def copy_base(cursor: Any) -> None:
            records.copy_version(cursor, schema, base.pk, version_id, key=key, skip_keys=replace)

        loader.run(copy_base)
        first_row = records.next_row(schema, base.pk)
    keep = {int(p[0]): frame for p, frame in plan.keep_lines.partition_by("part", as_dict=True).items()}
    loaded = 0
    for index, part in enumerate(staged.parts):
        wanted = keep.get(index)
        if wanted is None:
            continue
        with staged.phase("load_prepare"):
            frame = records.conform(pl.read_parquet(part).join(wanted.select("line"), on="line", how="semi"))
        with staged.phase("load_copy"):
            loader.copy_frame(frame, first_row)
        staged.count_written(frame)
        first_row += frame.height
        loaded += frame.height
        fault_point("audiences.import.copy")
    if plan.merged is not None and plan.merged.height:
        merged = records.conform(plan.merged)
        loader.copy_frame(merged, first_row)
        staged.count_written(merged)
        loaded += merged.height - len(plan.replace_keys)
    return loaded


def _finish_version(
    imp: AudienceImport,
    staged: Staged,
    plan: Plan,
    quarantine: pl.DataFrame,
    quarantine_name: str,
    blank_lines: int,
    key: str,
    loaded: int,
    version_id: int,
    attach: bool,
) -> None:
    """One short transaction: the version row, its partition attached, counts, report, pointer, audit."""
    audience = _lock_audience(imp)
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
        quality = _quality(version.pk, staged, quarantine, loaded)  # one scan: counts and completeness
        version.record_count = quality["records_in_version"]
        version.save(update_fields=["record_count"])
    imp.rows_read = staged.rows_read
    imp.rows_quarantined = quarantine.height
    imp.duplicates = plan.duplicates
    imp.rows_loaded = staged.rows_read - imp.rows_quarantined - imp.duplicates
    imp.blank_lines = blank_lines
    imp.quality = {
        **quality,
        "dedupe_key": key,
        "replaced_existing": len(plan.replace_keys),
        "timings": staged.timings,
        "rss_mb": staged.memory,
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
    record(
        action="audience_import.succeeded",
        org=current_org(),
        entity=imp,
        actor_email=imp.created_by_email,
        after=summary(imp),
    )


def _reserve_version_id() -> int:
    """The id the new version will have: its rows are written (under that id) before its row exists."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT nextval(pg_get_serial_sequence('audiences_audienceversion', 'id'))")
        return int(cursor.fetchone()[0])


def _create_detached(schema: str, version_id: int, imp: AudienceImport) -> None:
    """Detached tables carry their import's id, so a re-run after a crash drops exactly its own leftovers."""
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {records.qualified(schema, version_id)}")
        records.create_detached(cursor, schema, version_id)
        cursor.execute(f"COMMENT ON TABLE {records.qualified(schema, version_id)} IS %s", [f"p360-import:{imp.pk}"])


def _drop_leftovers(schema: str, imp: AudienceImport) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind = 'r' AND NOT c.relispartition "
            "AND obj_description(c.oid, 'pg_class') = %s",
            [schema, f"p360-import:{imp.pk}"],
        )
        for (name,) in cursor.fetchall():
            cursor.execute(f'DROP TABLE IF EXISTS "{schema}"."{name}"')


@contextmanager
def _audience_lock(schema: str, name: str) -> Iterator[None]:
    key = int.from_bytes(hashlib.sha256(f"audience:{schema}:{name}".encode()).digest()[:8], "big", signed=True)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", [key])
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [key])


def _lock_audience(imp: AudienceImport) -> Audience:
    audience = Audience.objects.select_for_update().filter(name=imp.audience_name).first()
    if audience is None:
        audience = Audience.objects.create(
            name=imp.audience_name, kind=AudienceKind.IMPORTED, created_by_id=imp.created_by_id
        )
        record(action="audience.created", org=current_org(), entity=audience, actor_email=imp.created_by_email)
    return audience


def _save_quarantine(imp: AudienceImport, quarantine: pl.DataFrame) -> str:
    """The rows that were not loaded, as CSV (formula-looking values neutralised for spreadsheets)."""
    if quarantine.height == 0:
        return ""
    out = quarantine.rename({ROW: "line"}).with_columns(
        [neutralise_expr(pl.col(c)).alias(c) for c in ("column", "field", "value", "reason")]
    )
    buffer = io.BytesIO()
    out.write_csv(buffer)
    name = org_storage_name(f"imports/{imp.pk}/quarantine.csv")
    if default_storage.exists(name):
        default_storage.delete(name)  # a re-run replaces the previous attempt's report
    return default_storage.save(name, ContentFile(buffer.getvalue()))


def _quality(version_id: int, staged: Staged, quarantine: pl.DataFrame, loaded: int) -> dict[str, Any]:
    columns = records.DATA_COLUMNS
    if staged.has_base:  # kept records from the previous version count too: ask the table (one scan)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*), "
                + ", ".join(f"count({c})" for c in columns)
                + f" FROM {records.partition_name(version_id)}"
            )
            counts = cursor.fetchone()
    else:  # the version holds exactly what this import wrote: counted on the way in
        counts = (staged.written_rows, *(staged.written_filled.get(c, 0) for c in columns))
    total = int(counts[0])
    completeness = {c: round(int(n) / total, 4) if total else 0.0 for c, n in zip(columns, counts[1:], strict=True)}
    reasons = (
        quarantine.group_by("reason").len().sort("len", descending=True)
        if quarantine.height
        else pl.DataFrame(schema={"reason": pl.String, "len": pl.UInt32})
    )
    invalid_by_field = (
        quarantine.filter(pl.col("field") != "").group_by("field").len() if quarantine.height else pl.DataFrame()
    )
    invalid = (
        dict(zip(invalid_by_field["field"].to_list(), invalid_by_field["len"].to_list(), strict=True))
        if invalid_by_field.height
        else {}
    )
    validity = {}
    for column, filled in staged.field_filled.items():
        bad = int(invalid.get(column, 0))
        validity[column] = round(filled / (filled + bad), 4) if filled + bad else None
    return {
        "records_in_version": total,
        "completeness": {c: v for c, v in completeness.items() if v},
        "validity": validity,
        "quarantine_reasons": dict(zip(reasons["reason"].to_list(), reasons["len"].to_list(), strict=True)),
        "uid2_ready_share": completeness.get("email_sha256", 0.0),
        "loaded_this_import": loaded,
    }


def summary(imp: AudienceImport) -> dict[str, Any]:
    """The contract's keys (import_audience --json), plus a few useful extras."""
    return {
        "import_id": imp.pk,
        "status": imp.status,
        "rows_read": imp.rows_read,
        "rows_loaded": imp.rows_loaded,
        "rows_quarantined": imp.rows_quarantined,
        "duplicates": imp.duplicates,
        "audience_id": imp.audience_id,
        "version": imp.version.number if imp.version is not None else None,
        "quarantine_file": imp.quarantine_file or None,
        "blank_lines": imp.blank_lines,
        "file_sha256": imp.file_sha256,
    }


# --- versions ------------------------------------------------------------------------------------------
def _prune_versions(audience: Audience | None) -> None:
    """Drop the records of versions beyond the audience's retention (never the current one)."""
    if audience is None:
        return
    keep = max(1, audience.retention_versions)
    old = audience.versions.filter(status=VersionStatus.READY).order_by("-number")[keep:]
    for version in old:
        if version.pk == audience.current_version_id:
            continue
        with transaction.atomic():
            records.drop_partition(version.pk)
            AudienceVersion.objects.filter(pk=version.pk).update(status=VersionStatus.PRUNED)


def content_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
