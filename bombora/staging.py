"""Staging a Bombora load: topic ids, the load's counters, the staging tables `{TABLE}_load_<run>` (and `_d`, the
per-domain summary) with the run's advisory lock that keeps them alive, and the COPY of validated rows into them."""

from __future__ import annotations

import datetime as dt
import io
import logging
import queue
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
from django.db import connection

from bombora.models import BomboraTopic
from bombora.store import QUALIFIED, SURGE_THRESHOLD, TABLE

logger = logging.getLogger(__name__)

STAGING_PREFIX = f"{TABLE}_load_"
CATEGORY_MAX = 300  # a topic's category as stored (the file's text, trimmed)
MAX_QUARANTINE_STORED = 100_000  # every bad row is counted; the first ones are kept with line and reason


class Topics:
    """Topic name (case-insensitive) -> id; new topics are created as they appear (committed: ids feed the COPY)."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {n.lower(): i for n, i in BomboraTopic.objects.values_list("name", "id")}
        self.seen: set[int] = set()

    def resolve(self, names: pl.DataFrame) -> pl.DataFrame:
        """names (topic, category) -> frame (topic as written, topic_id); case variants map to one topic."""
        # A block has a few thousand distinct spellings at most: work on those, never on every row.
        spelled = names.unique(subset="topic", keep="first", maintain_order=True)
        spelled = spelled.with_columns(
            pl.col("topic").str.to_lowercase().alias("key"),
            pl.col("category").cast(pl.String).fill_null("").str.strip_chars().str.slice(0, CATEGORY_MAX),
        )
        unique = spelled.unique(subset="key", keep="first", maintain_order=True).select("key", "topic", "category")
        new = [(t, c) for k, t, c in unique.iter_rows() if k not in self.ids]
        if new:
            with connection.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO public.ingestion_bomboratopic (name, category) VALUES (%s, %s) "
                    "ON CONFLICT ((lower(name))) DO NOTHING",
                    new,
                )
            keys = [t.lower() for t, _ in new]
            for name, pk in BomboraTopic.objects.filter(name__in=[t for t, _ in new]).values_list("name", "id"):
                self.ids[name.lower()] = pk
            missing = [k for k in keys if k not in self.ids]
            if missing:  # a case variant created by another load: look it up case-insensitively
                for key in missing:
                    topic = BomboraTopic.objects.filter(name__iexact=key).first()
                    if topic is not None:
                        self.ids[key] = topic.pk
        mapping = pl.DataFrame(
            {"key": list(self.ids), "topic_id": list(self.ids.values())},
            schema={"key": pl.String, "topic_id": pl.Int32},
        )
        resolved = spelled.join(mapping, on="key", how="left").select("topic", "topic_id")
        self.seen.update(int(t) for t in resolved["topic_id"].drop_nulls().to_list())
        return resolved


@dataclass
class LoadStats:
    rows_read: int = 0
    quarantined: int = 0
    duplicates: int = 0
    loaded: int = 0
    domains: int = 0
    surging: int = 0
    sorted_by_domain: bool = True
    last_domain: str | None = None
    bad: list[tuple[int, str, str]] = field(default_factory=list)

    def add_bad(self, bad: list[tuple[int, str, str]]) -> None:
        self.quarantined += len(bad)
        room = MAX_QUARANTINE_STORED - len(self.bad)
        if room > 0:
            self.bad.extend(bad[:room])


def staging_name(run_id: int) -> str:
    return f"{STAGING_PREFIX}{run_id}"


LOCK_CLASS = 53_005  # advisory lock namespace of Bombora loads: (LOCK_CLASS, run id), held while a run loads


def hold_run_lock(run_id: int) -> None:
    """Mark this run's staging tables as alive: a session lock, released on unlock or when the process dies."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s, %s)", [LOCK_CLASS, run_id])


def release_run_lock(run_id: int) -> None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [LOCK_CLASS, run_id])
    except Exception:  # a lost connection released it already
        logger.warning("could not release the Bombora load lock of run %s", run_id, exc_info=True)


def drop_orphan_staging(keep_run: int | None = None) -> None:
    """Staging tables whose run holds no load lock (its worker died) are dropped; live loads are left alone."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE %s",
            [STAGING_PREFIX.replace("_", r"\_") + "%"],
        )
        names = [row[0] for row in cursor.fetchall()]
        for name in names:
            match = re.match(r"[0-9]+", name.removeprefix(STAGING_PREFIX))  # <run>, <run>_d, <run>_m
            run_id = int(match[0]) if match else None
            if run_id == keep_run:
                continue
            if run_id is not None:
                cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [LOCK_CLASS, run_id])
                if not cursor.fetchone()[0]:
                    continue  # another worker is loading it right now
            cursor.execute(f"DROP TABLE IF EXISTS public.{name}")
            if run_id is not None:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [LOCK_CLASS, run_id])


def create_staging(name: str, week: dt.date, like: str = QUALIFIED) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS public.{name}")
        cursor.execute(f"CREATE TABLE public.{name} (LIKE {like} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
        # The partition bound as a CHECK: ATTACH then skips its validation scan.
        cursor.execute(
            f"ALTER TABLE public.{name} ALTER COLUMN week SET DEFAULT DATE '{week.isoformat()}', "
            f"ADD CONSTRAINT {name}_week CHECK (week = DATE '{week.isoformat()}')"
        )
        cursor.execute(f"ALTER TABLE public.{name} SET (autovacuum_enabled = false)")


SCORE_COLUMNS = ("domain", "topic_id", "score")
OPTIONAL_COLUMNS = ("volume", "surging")  # issue 18: only when the file carries them (NULL otherwise)
DOMAIN_COLUMNS = ("domain", "topics", "surging", "max_score")


def csv_bytes(rows: pl.DataFrame, columns: tuple[str, ...] = SCORE_COLUMNS) -> tuple[tuple[str, ...], bytes]:
    """(columns, CSV made by polars) of the rows to COPY; the optional columns only when the file has them."""
    if columns == SCORE_COLUMNS:
        columns = (*columns, *(c for c in OPTIONAL_COLUMNS if c in rows.columns))
    buffer = io.BytesIO()
    rows.select(columns).write_csv(buffer, include_header=False)
    return columns, buffer.getvalue()


def copy_bytes(name: str, columns: tuple[str, ...], data: bytes, freeze: bool = False) -> None:
    """COPY CSV bytes into a staging table on this thread's connection; the week is the table's default.
    `freeze`: the rows go in frozen (the table was truncated in this connection's open transaction)."""
    view = memoryview(data)
    with (
        connection.cursor() as cursor,
        cursor.copy(  # type: ignore[attr-defined]
            f"COPY public.{name} ({', '.join(columns)}) FROM STDIN (FORMAT csv{', FREEZE' if freeze else ''})"
        ) as copy,
    ):
        for start in range(0, len(view), 1 << 20):
            copy.write(view[start : start + (1 << 20)])


def copy_rows(name: str, rows: pl.DataFrame, columns: tuple[str, ...] = SCORE_COLUMNS) -> None:
    """COPY the columns (CSV made by polars); the week is the table's default."""
    if rows.is_empty():
        return
    copy_bytes(name, *csv_bytes(rows, columns))


class Copier:
    """COPY blocks into the staging tables on connections of their own, `workers` at a time, while the caller
    parses the next block: PostgreSQL then uses both cores. Each block commits on its own (autocommit), as the
    single-connection path does. Only outside a transaction: inside one (tests), the staging tables are not
    visible to other connections, and `Copier.inline()` COPYs on the caller's connection instead."""

    def __init__(self, workers: int = 2) -> None:
        self.errors: list[BaseException] = []
        self.inline_only = workers <= 0 or connection.in_atomic_block
        self.box: queue.Queue[tuple[str, tuple[str, ...], bytes, bool] | None] = queue.Queue(maxsize=max(1, workers))
        self.threads = (
            []
            if self.inline_only
            else [threading.Thread(target=self._work, name=f"bombora-copy-{n}", daemon=True) for n in range(workers)]
        )
        for thread in self.threads:
            thread.start()

    def _work(self) -> None:
        frozen: set[str] = set()  # tables truncated in this connection's open transaction, COPYed with FREEZE
        try:
            while (item := self.box.get()) is not None:
                if self.errors:
                    continue  # drain: the load fails anyway
                name, columns, data, freeze = item
                try:
                    if freeze and name not in frozen:
                        with connection.cursor() as cursor:
                            cursor.execute("BEGIN")
                            cursor.execute(f"TRUNCATE public.{name}")
                        frozen.add(name)
                    copy_bytes(name, columns, data, freeze)
                except BaseException as exc:  # noqa: BLE001 - handed to the loader, which re-raises it
                    self.errors.append(exc)
            if frozen and not self.errors:
                try:
                    with connection.cursor() as cursor:
                        cursor.execute("COMMIT")
                except BaseException as exc:  # noqa: BLE001 - handed to the loader, which re-raises it
                    self.errors.append(exc)
        finally:
            connection.close()  # this thread's own connection (an open transaction is rolled back)

    def submit(
        self, name: str, rows: pl.DataFrame, columns: tuple[str, ...] = SCORE_COLUMNS, *, freeze: bool = False
    ) -> None:
        """COPY the rows. `freeze` (one worker only; ignored inline): the table, empty until now, is truncated in
        a transaction of the worker's that the rest of its frozen COPYs join and `finish` commits, and the rows go
        in frozen (COPY FREEZE: hint bits and the visibility map set as they are written). Otherwise the first
        scan of the rows (the index build, then the first reader) sets the hint bits of every page, and with data
        checksums on (PostgreSQL 18's default) writes each page to the WAL once more to do so."""
        if rows.is_empty():
            return
        if self.errors:
            raise self.errors[0]
        if self.inline_only:
            copy_rows(name, rows, columns)
            return
        columns, data = csv_bytes(rows, columns)
        self.box.put((name, columns, data, freeze and len(self.threads) == 1))

    def finish(self) -> None:
        """Wait for every COPY; re-raise the first error."""
        self.close()
        if self.errors:
            raise self.errors[0]

    def close(self) -> None:
        for _ in self.threads:
            self.box.put(None)
        for thread in self.threads:
            thread.join()
        self.threads = []


def domain_runs(domain: pl.Series) -> np.ndarray[Any, Any] | None:
    """Where each run of equal domains starts, when the batch is sorted by domain (a Bombora file's own order);
    None otherwise. The per-domain work of a sorted batch (its summary, its domain codes) then runs on these
    integers instead of hashing every row's domain text again."""
    if not len(domain) or not domain.is_sorted():
        return None
    change = (domain != domain.shift(1)).fill_null(True)
    return np.flatnonzero(change.to_numpy())


def domain_summary(rows: pl.DataFrame, starts: np.ndarray[Any, Any] | None = None) -> pl.DataFrame:
    """One row per domain, in domain order (the `_d` table's heap then follows its domain index). `starts`: the
    rows' domain runs (`domain_runs`), which make it a few numpy reductions."""
    if starts is not None:
        score = rows["score"].to_numpy()
        return pl.DataFrame(
            {
                "domain": rows["domain"].gather(starts),
                "topics": np.diff(starts, append=rows.height).astype(np.uint32),
                "surging": np.add.reduceat((score >= SURGE_THRESHOLD).astype(np.uint32), starts),
                "max_score": np.maximum.reduceat(score, starts),
            }
        )
    return (
        rows.group_by("domain")
        .agg(
            pl.len().alias("topics"),
            (pl.col("score") >= SURGE_THRESHOLD).sum().alias("surging"),
            pl.col("score").max().alias("max_score"),
        )
        .sort("domain")
    )


COPY_ROWS = 1_000_000  # rows per COPY of the held week (~35 MB of CSV)


HELD_START_ROWS = 1 << 20  # first capacity of a held column (then doubled)


class _Grown:
    """One held column in a numpy array of its own, grown by doubling (outside polars' allocator)."""

    def __init__(self, dtype: np.dtype[Any]) -> None:
        self.values: np.ndarray[Any, Any] = np.empty(0, dtype)

    def put(self, start: int, values: np.ndarray[Any, Any]) -> None:
        end = start + len(values)
        if end > len(self.values):
            grown = np.empty(max(end, 2 * len(self.values), HELD_START_ROWS), self.values.dtype)
            grown[:start] = self.values[:start]
            self.values = grown
        self.values[start:end] = values


class WeekRows:
    """A week's rows held until the file is read, then handed out sorted by (topic_id, domain) for one ordered COPY.

    Why: the staging table's heap is then in the order of its (topic_id, domain) index, and PostgreSQL's index
    sort sees presorted keys (one pass instead of a full sort: the index build was ~60 % of the load's PostgreSQL
    CPU with the heap in the file's domain order).

    Compact: each domain text is kept once; a row holds its domain's code (UInt32), numbered in domain order, so
    the sort is on two integers. Codes follow the domain order across batches only while each batch's domains
    come after the previous batch's (a file sorted by domain, as Bombora's are; the loader checks it, and on an
    unsorted file takes the rows back with `chunks(ordered=False)` and merges the week in SQL).

    Held outside polars (issue 17's peak RSS): the columns in numpy arrays grown by doubling (about 10 bytes a
    row), the domain texts copied into one byte array. Held as polars Series, each batch's domains were string
    views that kept the block's whole string buffers alive: 20M rows peaked at 2.2 GB of RSS for ~200 MB of
    held rows (1.0 GB now). A null (the optional columns) is a False in the column's validity array, from the
    column's first null on.
    """

    def __init__(self) -> None:
        self.columns: dict[str, _Grown] = {}  # "code" (the domain's), then the batch's columns but the domain
        self.valid: dict[str, _Grown] = {}
        self.dtypes: dict[str, pl.DataType] = {}
        # The domain texts, UTF-8 back to back (Arrow's large_string layout): copied out of the batch, whose
        # string views would keep the block's buffers alive.
        self.text = _Grown(np.dtype(np.uint8))
        self.ends = _Grown(np.dtype(np.int64))
        self.text_bytes = 0
        self.count = 0  # domains held
        self.rows = 0
        self.codes_sorted = True  # each batch's codes ascending: rows held in domain order

    @property
    def held(self) -> bool:
        return self.rows > 0

    def add(self, rows: pl.DataFrame, starts: np.ndarray[Any, Any] | None = None) -> None:
        """Hold a batch (domain, topic_id, score, optional columns) whose (domain, topic_id) pairs are unique.
        `starts`: the batch's domain runs when it is sorted by domain (`domain_runs`; found here if not given)."""
        if rows.is_empty():
            return
        domain = rows["domain"]
        if starts is None:
            starts = domain_runs(domain)
        if starts is not None:  # the file's own order: codes by a running count of domain changes
            marks = np.zeros(rows.height, np.uint32)
            marks[starts] = 1
            local = pl.Series(np.cumsum(marks, dtype=np.uint32) - 1)
            unique = domain.gather(starts)
        else:
            local = domain.rank("dense").cast(pl.UInt32) - 1
            unique = domain.unique().sort()
            self.codes_sorted = False
        start = self.rows
        code = (local + self.count).cast(pl.UInt32).alias("code")
        for series in (code, *(rows[c] for c in rows.columns if c != "domain")):
            name, nulls = series.name, series.null_count()
            values = (
                series.fill_null(False if series.dtype == pl.Boolean else 0).to_numpy() if nulls else series.to_numpy()
            )
            if name not in self.columns:
                if start:  # the loader's batches all have the same columns
                    raise ValueError(f"held rows: column {name} missing from the earlier batches")
                self.columns[name] = _Grown(values.dtype)
                self.dtypes[name] = series.dtype
            if nulls and name not in self.valid:
                self.valid[name] = _Grown(np.dtype(bool))
                self.valid[name].put(0, np.ones(start, bool))
            if name in self.valid:
                self.valid[name].put(start, series.is_not_null().to_numpy())
            self.columns[name].put(start, values)
        self.rows += rows.height
        self._hold_domains(unique)
        self.count += len(unique)

    def _hold_domains(self, unique: pl.Series) -> None:
        texts = unique.to_arrow(compat_level=pl.CompatLevel.oldest())  # large_string: offsets, data
        if texts.null_count:
            raise ValueError("held rows: a row without a domain")
        offsets = np.frombuffer(texts.buffers()[1], np.int64)[texts.offset : texts.offset + len(texts) + 1]
        data = np.frombuffer(texts.buffers()[2], np.uint8)[offsets[0] : offsets[-1]]
        self.text.put(self.text_bytes, data)
        self.ends.put(self.count, offsets[1:] - offsets[0] + self.text_bytes)
        self.text_bytes += len(data)

    def _domains(self) -> pl.Series:
        offsets = np.concatenate([np.zeros(1, np.int64), self.ends.values[: self.count]])
        texts = pa.LargeStringArray.from_buffers(
            self.count, pa.py_buffer(offsets), pa.py_buffer(self.text.values[: self.text_bytes])
        )
        return pl.Series("domain", texts)

    def _order(self) -> np.ndarray[Any, Any]:
        """Row numbers in (topic_id, domain) order."""
        topic = self.columns["topic_id"].values[: self.rows]
        code = self.columns["code"].values[: self.rows]
        if "topic_id" in self.valid:
            raise ValueError("held rows: a row without a topic id")
        low, high = (int(topic.min()), int(topic.max())) if self.rows else (0, 0)
        if self.codes_sorted and low >= 0 and high < 1 << 16:
            # Rows already in domain order: a stable sort on the topic alone, a radix sort on 16 bits (numpy's
            # stable sort of a uint16 array), gives (topic_id, domain) order: 0.47 CPU-s at 20M rows, against
            # 1.35 for a stable sort of the 64-bit key.
            return np.argsort(topic.astype(np.uint16), kind="stable")
        key = (topic.astype(np.int64) - low).astype(np.uint64) << np.uint64(32) | code.astype(np.uint64)
        return np.argsort(key, kind="stable")

    def _frame(self, rows: np.ndarray[Any, Any] | slice, domains: pl.Series) -> pl.DataFrame:
        code = self.columns["code"].values[rows]
        series = [domains.gather(pl.Series(code, dtype=pl.UInt32)).alias("domain")]
        for name, held in self.columns.items():
            if name == "code":
                continue
            column = pl.Series(name, held.values[rows], dtype=self.dtypes[name])
            if name in self.valid:
                column = (
                    pl.select(pl.when(pl.Series(self.valid[name].values[rows])).then(pl.lit(column)).otherwise(None))
                    .to_series()
                    .alias(name)
                )
            series.append(column)
        return pl.DataFrame(series)

    def chunks(self, ordered: bool = True, size: int = COPY_ROWS) -> Iterator[pl.DataFrame]:
        """The held rows with their domain text again, `size` at a time (sorted by topic_id, domain if `ordered`);
        releases them."""
        if not self.rows:
            return
        domains = self._domains()
        order = self._order() if ordered else None
        total = self.rows
        try:
            for start in range(0, total, size):
                rows = order[start : start + size] if order is not None else slice(start, min(total, start + size))
                yield self._frame(rows, domains)
        finally:
            self.__init__()  # type: ignore[misc]


def merge_duplicates(rows: pl.DataFrame, starts: np.ndarray[Any, Any] | None = None) -> tuple[pl.DataFrame, int]:
    """Duplicate (domain, topic_id) rows merged keeping the highest score; returns (rows, duplicates). `starts`:
    the rows' domain runs when they are sorted by domain (`domain_runs`)."""
    if starts is not None:
        # Sorted by domain: a duplicate repeats a topic within its domain's run. The key (run, topic_id) is exact.
        marks = np.zeros(rows.height, np.uint64)
        marks[starts] = 1
        run = np.cumsum(marks, dtype=np.uint64)
        topic = rows["topic_id"].to_numpy().astype(np.int64).astype(np.uint64) & np.uint64(0xFFFFFFFF)
        keys = pl.Series(run << np.uint64(32) | topic).n_unique()
    else:
        # A hash per key is cheap; a collision only sends us to the exact merge below, never skips it.
        keys = rows.select((pl.col("domain").hash(seed=7) ^ pl.col("topic_id").hash(seed=11)).n_unique()).item()
    if keys == rows.height:
        return rows, 0
    extras = [pl.col(c).max() for c in OPTIONAL_COLUMNS if c in rows.columns]  # surging: true if any row says so
    merged = rows.group_by("domain", "topic_id", maintain_order=True).agg(pl.col("score").max(), *extras)
    return merged, rows.height - merged.height


def drop_staging(table: str) -> None:
    """Drop a run's staging tables (the load failed or the swap did not commit); never raises."""
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS public.{table}")
            cursor.execute(f"DROP TABLE IF EXISTS public.{table}_m")
            cursor.execute(f"DROP TABLE IF EXISTS public.{table}_d")
    except Exception:  # the connection may be gone (that is why we are here): the next run cleans up
        logger.warning("could not drop Bombora staging table %s", table, exc_info=True)
