"""Import step 4, write: the new version's rows (through a loader), its reserved id, locks, leftovers and retention.

`load_rows` returns what it wrote (`Written`); the loader only copies what it is given (no call-backs).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field

import polars as pl
from django.db import connection, transaction

from audiences import records
from audiences.import_dedupe import Plan, SeenKeys
from audiences.import_stage import KEY, Staged, read_part
from audiences.loader import ParallelLoader, SerialLoader
from audiences.models import Audience, AudienceImport, AudienceKind, AudienceVersion, VersionStatus
from p360.core.audit.services import record
from p360.core.faults import fault_point
from tenants.selectors import current_org


@dataclass
class Written:
    """What went into the new version: rows and non-null values per column from this file, and the total loaded."""

    loaded: int = 0
    has_base: bool = False
    rows: int = 0
    filled: dict[str, int] = field(default_factory=dict)

    def count(self, frame: pl.DataFrame) -> None:
        self.rows += frame.height
        for column, nulls in zip(frame.columns, frame.null_count().row(0), strict=True):
            self.filled[column] = self.filled.get(column, 0) + frame.height - int(nulls)


def load_rows(
    loader: SerialLoader | ParallelLoader, plan: Plan, staged: Staged, base: AudienceVersion | None, key: str
) -> Written:
    """The new version's rows: the kept base records, then this file's kept rows, then merged groups."""
    written = Written(has_base=base is not None)
    first_row = 0
    if base is not None:
        loader.copy_version(base.pk, key=key, skip_keys=plan.replace_keys)
        first_row = records.next_row(loader.schema, base.pk)
    keep = {int(p[0]): frame for p, frame in plan.keep_lines.partition_by("part", as_dict=True).items()}
    for index, part in enumerate(staged.parts):
        wanted = keep.get(index)
        if wanted is None:
            continue
        with staged.phase("load_prepare"):
            frame = records.conform(read_part(part).join(wanted.select("line"), on="line", how="semi"))
        with staged.phase("load_copy"):
            loader.copy_frame(frame, first_row)
        written.count(frame)
        first_row += frame.height
        written.loaded += frame.height
        fault_point("audiences.import.copy")
    if plan.merged is not None and plan.merged.height:
        merged = records.conform(plan.merged)
        loader.copy_frame(merged, first_row)
        written.count(merged)
        written.loaded += merged.height - len(plan.replace_keys)
    return written


def stream_first(
    loader: SerialLoader | ParallelLoader,
    batches: Iterator[pl.DataFrame],
    seen: SeenKeys,
    staged: Staged,
    base: AudienceVersion | None,
    key: str,
) -> tuple[Written, int]:
    """The `first` rule, streamed: each normalised batch's new-key rows go to COPY while the next batch is read.

    No staged file and no second pass: whether a row is kept depends only on the rows before it (and the
    existing records), so its row ordinal is known at once. Returns what was written and the duplicates.
    Each batch is deduplicated and handed to the loader on a helper thread while this thread normalises the next
    one (polars and numpy release the GIL): at most one batch waits there, and batches are taken in file order.
    """
    stream = _FirstStream(loader, seen, staged, Written(has_base=base is not None))
    if base is not None:
        loader.copy_version(base.pk, key=key, skip_keys=[])
        stream.first_row = records.next_row(loader.schema, base.pk)
    if not loader.parallel:  # the caller's connection and transaction: Django's connections are per thread
        for good in batches:
            stream.take(good)
            fault_point("audiences.import.copy")
        return stream.written, stream.duplicates
    with ThreadPoolExecutor(1, thread_name_prefix="import-dedupe") as pool:
        pending: Future[None] | None = None
        try:
            for good in batches:
                if pending is not None:
                    pending.result()  # the previous batch is taken (its errors surface here)
                    fault_point("audiences.import.copy")  # on this thread: a fault acts on the import's connection
                pending = pool.submit(stream.take, good)
                del good
            if pending is not None:
                pending.result()
                fault_point("audiences.import.copy")
        except BaseException:
            if pending is not None:
                pending.cancel()
                wait([pending])  # never leave the helper writing while the caller drops the table
            raise
    return stream.written, stream.duplicates


@dataclass
class _FirstStream:
    """The streamed `first` rule's state, advanced one batch at a time in file order (on the helper thread)."""

    loader: SerialLoader | ParallelLoader
    seen: SeenKeys
    staged: Staged
    written: Written
    first_row: int = 0
    duplicates: int = 0

    def take(self, good: pl.DataFrame) -> None:
        with self.staged.phase("dedupe"):
            keep = self.seen.first_new(good[KEY])
            frame = good.filter(keep)
        self.duplicates += good.height - frame.height
        with self.staged.phase("load_prepare"):
            frame = records.conform(frame)
        with self.staged.phase("load_copy"):  # waits only when the COPY connections are behind
            self.loader.copy_frame(frame, self.first_row)
        self.written.count(frame)
        self.first_row += frame.height
        self.written.loaded += frame.height


def reserve_version_id() -> int:
    """The id the new version will have: its rows are written (under that id) before its row exists."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT nextval(pg_get_serial_sequence('audiences_audienceversion', 'id'))")
        return int(cursor.fetchone()[0])


def create_detached(schema: str, version_id: int, imp: AudienceImport) -> None:
    """Detached tables carry their import's id, so a re-run after a crash drops exactly its own leftovers."""
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {records.qualified(schema, version_id)}")
        records.create_detached(cursor, schema, version_id)
        cursor.execute(f"COMMENT ON TABLE {records.qualified(schema, version_id)} IS %s", [f"p360-import:{imp.pk}"])


def drop_leftovers(schema: str, imp: AudienceImport) -> None:
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
def audience_lock(schema: str, name: str) -> Iterator[None]:
    key = int.from_bytes(hashlib.sha256(f"audience:{schema}:{name}".encode()).digest()[:8], "big", signed=True)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", [key])
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [key])


def lock_audience(imp: AudienceImport) -> Audience:
    audience = Audience.objects.select_for_update().filter(name=imp.audience_name).first()
    if audience is None:
        audience = Audience.objects.create(
            name=imp.audience_name, kind=AudienceKind.IMPORTED, created_by_id=imp.created_by_id
        )
        record(action="audience.created", org=current_org(), entity=audience, actor_email=imp.created_by_email)
    return audience


def prune_versions(audience: Audience | None) -> None:
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
