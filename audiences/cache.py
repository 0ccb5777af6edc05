"""The builder's in-memory columnar cache: one polars frame of the universe per organisation.

- Keyed by schema name; an entry never serves another org.
- Built lazily on the first preview; a cheap "data generation" stamp (the imported audiences' current versions,
  the current Bombora week and when it was loaded) is read on every request, so every process notices an import
  or a new Bombora week. A stale entry keeps serving (responses say `stale: true`) while a background thread
  rebuilds it; with `P360_BUILDER_BACKGROUND_REBUILD=0` (tests) the rebuild is synchronous.
- Strings are `pl.Enum` (predicates run over the categories) unless nearly unique; numbers are narrowed.
- Bombora: the current week's scores for the org's domains are kept long (domain code, topic, score), sorted by
  topic; a topic's per-person column is gathered by domain code on first use and kept (LRU within the entry).
- Bounded by `P360_BUILDER_CACHE_MB` across orgs, least recently used evicted first.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import resource
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from django.conf import settings
from django.db import connection

from audiences import frame_files, records
from audiences.logic.polars_engine import (
    LeafMemo,
    SortedIndex,
    StringColumn,
    audience_column,
    category_bitmaps,
    index_nbytes,
    sorted_index,
)
from audiences.logic.sql_engine import RID_SHIFT, custom_sql
from audiences.normalize import uid2_hashes
from audiences.records import COLUMN_TYPES, DATA_COLUMNS, DERIVED, RECORD_COLUMNS
from bombora.models import BomboraWeek, BomboraWeekStatus
from bombora.store import current_week, scores_frame
from p360.core import arrow_reads

logger = logging.getLogger(__name__)

ENUM_MAX_SHARE = 0.5  # a string column with more distinct values than this share of rows stays String
ALWAYS_ENUM = frozenset({"domain"})  # domain codes index the Bombora scores
# the frame's string columns, the UID2 hashes among them (not stored: derived from their base in polars, see build())
STRING_COLUMNS = [name for name in DATA_COLUMNS if COLUMN_TYPES[name] is pl.String and name != "custom"]
NUMBER_COLUMNS = {name: dtype for name, _, dtype in RECORD_COLUMNS if dtype is not pl.String}
MAX_TOPIC_COLUMNS = 64
TOPIC_COLUMNS_SHARE = 0.1  # per-person Bombora columns kept: at most this share of the frame's bytes (and 64)
LEAF_MEMO_SHARE = 0.06  # leaf masks memoised across a session's edits: at most this share of the frame's bytes


def _memo_for(frame: pl.DataFrame) -> LeafMemo:
    """A leaf memo sized to the frame: about 40 leaf masks (a bit per person each), at least 1 MB."""
    return LeafMemo(max(1 << 20, int(frame.estimated_size() * LEAF_MEMO_SHARE)))


@dataclass(frozen=True)
class Stamp:
    versions: str
    week: str
    custom: str

    def __str__(self) -> str:
        return f"{self.versions}|{self.week}|{self.custom}"

    @property
    def generation(self) -> str:
        """An opaque token of this data generation: the builder page refetches its field catalogue (known values,
        custom fields) when a response carries another one."""
        return hashlib.sha256(str(self).encode()).hexdigest()[:16]


@dataclass
class Entry:
    schema: str
    stamp: Stamp
    # The columns read so far: every column, or (a first build, until its deferred pass is done) every column but
    # DEFERRED's. Read `frame` (waits for that pass) unless the column is known not to be deferred (`column`).
    ready_frame: pl.DataFrame
    strings: dict[str, StringColumn]
    custom: dict[str, str]
    week: Any
    build_seconds: float
    built_at: float
    imported_masks: dict[int, pl.Series]
    # The week's scores for the org's domains: code (UInt32), topic_id (Int32), score (UInt8), sorted by topic_id.
    # None while a background thread reads them (issue 17: the first preview does not wait on 20M scores); read
    # `bombora`, which waits for (or does) the load; previews read one topic at a time instead (topic_column).
    bombora_frame: pl.DataFrame | None
    topic_columns: OrderedDict[int, pl.Series] = field(default_factory=OrderedDict)
    # Issue 18: Bombora measures over several weeks, per (topic, measure); LRU like the topic columns.
    measure_columns: OrderedDict[tuple[int, str], pl.Series] = field(default_factory=OrderedDict)
    built_masks: dict[tuple[int, str], pl.Series] = field(default_factory=dict)
    has_hash: pl.Series | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    bombora_lock: threading.Lock = field(default_factory=threading.Lock)
    # Issue 17: leaf masks memoised across the edits of a session (this entry is one data generation).
    leaf_memo: LeafMemo = field(default_factory=lambda: LeafMemo(1 << 20))
    # Issue 17: columns served memory-mapped from the generation's stored file (frame_files.py): in the frame like
    # the others, but in the page cache, not this process's heap, so nbytes() leaves them out (mapped_bytes()).
    mapped: frozenset[str] = frozenset()
    # Issue 17: DEFERRED columns a first build has not read yet (see build()); set when they are in `ready_frame`.
    deferred: frozenset[str] = frozenset()
    deferred_done: threading.Event = field(default_factory=threading.Event)
    deferred_error: BaseException | None = None
    settled: threading.Event = field(default_factory=threading.Event)  # the deferred pass is done and stored
    # while deferred: each deferred column's presence (True, or null where the value is), for null tests
    presence: dict[str, pl.Series] = field(default_factory=dict)
    # Issue 17, session 10: integer columns' sorted row indexes (warm_indexes), read by selective range leaves
    indexes: dict[str, SortedIndex] = field(default_factory=dict)
    _resolver: Any = None

    @property
    def frame(self) -> pl.DataFrame:
        """Every column: waits for the deferred pass of a first build (emails and hashes read after the rest)."""
        if self.deferred:
            self.deferred_done.wait()
            if self.deferred_error is not None:
                raise RuntimeError(f"builder cache: the deferred columns of {self.schema} could not be read") from (
                    self.deferred_error
                )
        return self.ready_frame

    def column(self, name: str, *, presence: bool = False) -> pl.Series:
        """A column, without waiting for the deferred pass unless it is a deferred column. With `presence` (the
        caller only tests for nulls) a deferred column still being read is served by its presence series."""
        if name in self.deferred:  # (cleared only after ready_frame holds the column)
            if presence and name in self.presence:
                return self.presence[name].alias(name)
            return self.frame.get_column(name)
        return self.ready_frame.get_column(name)

    def resolver(self) -> Any:
        """The tree resolver of this data generation, kept: it remembers the Bombora topics it looked up, so a
        preview does not query each topic again (topics come with Bombora weeks, which start a new generation)."""
        if self._resolver is None:
            from audiences.catalogue import make_resolver

            self._resolver = make_resolver(self.custom)
        return self._resolver

    @property
    def height(self) -> int:
        return self.ready_frame.height

    @property
    def bombora(self) -> pl.DataFrame:
        """The long scores frame (see bombora_frame); waits for the background load, or loads it now."""
        if self.bombora_frame is None:
            with self.bombora_lock:  # the loader thread holds it while it reads
                if self.bombora_frame is None:
                    self.bombora_frame = bombora_long(self.ready_frame, self.strings, self.week)
        return self.bombora_frame

    @property
    def bombora_ready(self) -> bool:
        """Whether the long scores frame is read (a page can show its Bombora part without waiting for it)."""
        return self.bombora_frame is not None

    def load_bombora_later(self) -> None:
        """Read the long scores frame in a daemon thread (it takes bombora_lock first, so readers wait for it)."""
        ready = threading.Event()

        def run() -> None:
            from django.db import connection as thread_connection

            try:
                with self.bombora_lock:
                    ready.set()
                    if self.bombora_frame is None:
                        self.bombora_frame = bombora_long(self.ready_frame, self.strings, self.week)
                self.warm_indexes()
            except Exception:
                logger.exception("builder cache: reading the Bombora week or the indexes for %s failed", self.schema)
            finally:
                ready.set()
                thread_connection.close()

        threading.Thread(target=run, name=f"builder-bombora-{self.schema}", daemon=True).start()
        ready.wait(5)

    def warm_indexes(self) -> None:
        """Build the row indexes off the request path (the background thread that reads the Bombora week calls it
        after that read): per-category masks of the few-category Enum columns (otherwise built by their first
        leaf) and a sorted index of each integer record column (only ever built here: ~1 s each at 10M)."""
        frame = self.ready_frame
        for name, info in list(self.strings.items()):
            if name in frame.columns:
                category_bitmaps(frame.get_column(name), info)
        for name in NUMBER_COLUMNS:
            if name in frame.columns and name not in self.indexes:
                index = sorted_index(frame.get_column(name))
                if index is not None:
                    with self.lock:
                        self.indexes[name] = index

    def nbytes(self) -> int:
        with self.lock:  # request threads add topic columns and built masks under this lock
            series: list[pl.Series] = [
                *self.imported_masks.values(),
                *self.topic_columns.values(),
                *self.measure_columns.values(),
                *self.built_masks.values(),
                # Enum categories (the frame's size counts codes only), and their lowercase forms when they differ
                *(s.categories for s in self.strings.values() if s.categories is not None),
                *(
                    s.lowered_categories
                    for s in self.strings.values()
                    if s.lowered_categories is not None and not s.lowercase
                ),
                *self.leaf_memo.series(),
            ]
        long = self.bombora_frame
        sizes = [
            *(c.estimated_size() for c in self.ready_frame.get_columns() if c.name not in self.mapped),
            long.estimated_size() if long is not None else 0,
            *(s.estimated_size() for s in series),
            index_nbytes(self.strings, self.indexes),  # per-category masks, sorted integer indexes (warm_indexes)
        ]
        return int(sum(sizes))

    def mapped_bytes(self) -> int:
        """Bytes of the memory-mapped columns (on disk and in the page cache as they are read; not on the heap)."""
        return int(sum(c.estimated_size() for c in self.ready_frame.get_columns() if c.name in self.mapped))

    def domain_categories(self) -> pl.Series | None:
        """The domain Enum's categories (index = code), None without a domain column."""
        return _categories(self.ready_frame, self.strings, "domain")

    def topic_column(self, topic_id: int) -> pl.Series:
        """The topic's score per person (null when the domain has none), built on first use."""
        with self.lock:
            if topic_id in self.topic_columns:
                self.topic_columns.move_to_end(topic_id)
                return self.topic_columns[topic_id]
        codes = self.ready_frame.get_column("domain").to_physical() if "domain" in self.ready_frame.columns else None
        domains = self.domain_categories()
        size = domains.len() if codes is not None and domains is not None else 0
        long = self.bombora_frame
        if long is not None:
            topics = long.get_column("topic_id")
            start = int(topics.search_sorted(topic_id, side="left"))
            end = int(topics.search_sorted(topic_id, side="right"))
            part = long.slice(start, end - start)
        else:  # the long frame is still being read: this topic's scores only (the week's (topic, domain) index)
            part = _scores_by_code(self.ready_frame, self.strings, self.week, [topic_id])
        dense = pl.repeat(None, size, dtype=pl.UInt8, eager=True)
        if part.height and size:
            dense = dense.scatter(part.get_column("code"), part.get_column("score"))
        column = (
            dense.gather(codes)
            if size and codes is not None
            else pl.repeat(None, self.height, dtype=pl.UInt8, eager=True)
        )
        with self.lock:
            self.topic_columns[topic_id] = column
            self._trim(self.topic_columns)
        return column

    def _trim(self, columns: OrderedDict[Any, pl.Series]) -> None:
        """Keep at most MAX_TOPIC_COLUMNS, within TOPIC_COLUMNS_SHARE of the frame's bytes (least recent out)."""
        budget = self.ready_frame.estimated_size() * TOPIC_COLUMNS_SHARE
        while len(columns) > 1 and (
            len(columns) > MAX_TOPIC_COLUMNS or sum(c.estimated_size() for c in columns.values()) > budget
        ):
            columns.popitem(last=False)

    def measure_column(self, topic_id: int, measure: str) -> pl.Series:
        """A multi-week Bombora measure per person (null when the domain has none), built on first use."""
        from bombora.store import MEASURE_DTYPES, measure_frame

        dtype = MEASURE_DTYPES.get(measure, pl.Int16)  # issue 18: volume Int32, surge indicator Boolean
        key = (topic_id, measure)
        with self.lock:
            if key in self.measure_columns:
                self.measure_columns.move_to_end(key)
                return self.measure_columns[key]
        categories = self.domain_categories()
        if categories is None or not categories.len():
            column = pl.repeat(None, self.height, dtype=dtype, eager=True)
        else:
            values = measure_frame(topic_id, measure, self.week)
            codes = pl.DataFrame(
                {"domain": categories, "code": pl.int_range(0, categories.len(), eager=True, dtype=pl.UInt32)}
            )
            found = values.join(codes, on="domain", how="inner")
            dense = pl.repeat(None, categories.len(), dtype=dtype, eager=True)
            if found.height:
                dense = dense.scatter(found.get_column("code"), found.get_column("value"))
            column = dense.gather(self.ready_frame.get_column("domain").to_physical())
        with self.lock:
            self.measure_columns[key] = column
            self._trim(self.measure_columns)
        return column

    def built_mask(self, audience_id: int, generation: str) -> pl.Series:
        """Membership of a built audience (its materialised rids), kept per materialisation."""
        key = (audience_id, generation)
        with self.lock:
            if key in self.built_masks:
                return self.built_masks[key]
        # COPY straight into polars: a built audience may have millions of members.
        sql = f"SELECT rid FROM audiences_builtmember WHERE audience_id = {int(audience_id)}"
        rids = _copy_frame(sql, {"rid": pl.Int64}).get_column("rid")
        mask = self.ready_frame.get_column("__rid").is_in(rids.implode())
        with self.lock:
            for old in [k for k in self.built_masks if k[0] == audience_id]:
                del self.built_masks[old]
            self.built_masks[key] = mask
        return mask


# --- the registry ----------------------------------------------------------------------------------------------
_entries: OrderedDict[str, Entry] = OrderedDict()
_registry_lock = threading.Lock()
_building: set[str] = set()


def budget_bytes() -> int:
    return int(getattr(settings, "P360_BUILDER_CACHE_MB", 2048)) * 1024 * 1024


def background_rebuild() -> bool:
    return bool(getattr(settings, "P360_BUILDER_BACKGROUND_REBUILD", True))


def current_stamp() -> Stamp:
    """The org's data generation: one cheap query (one round trip), run on every request."""
    table = BomboraWeek._meta.db_table
    with connection.cursor() as cursor:
        # A version's creation time too: the stored frames (frame_files.py) outlive the database's ids (a test
        # database or a restored backup reuses them), so the stamp that names a stored generation must not.
        cursor.execute(
            "SELECT (SELECT coalesce(string_agg(a.id || ':' || a.current_version_id || '@' "
            "                                   || extract(epoch FROM v.created_at), ',' ORDER BY a.id), '') "
            "        FROM audiences_audience a JOIN audiences_audienceversion v ON v.id = a.current_version_id "
            "        WHERE a.kind = 'imported'), "
            "       w.week, w.loaded_at, w.rows, h.n, h.loaded "
            f"FROM (SELECT week, loaded_at, rows FROM {table} WHERE status = %s ORDER BY week DESC LIMIT 1) w "
            f"RIGHT JOIN (SELECT count(*) AS n, max(loaded_at) AS loaded FROM {table} WHERE status = %s) h ON true",
            [str(BomboraWeekStatus.READY.value)] * 2,
        )
        versions, week, loaded_at, rows, weeks, last_loaded = cursor.fetchone()
    week_stamp = f"{week}@{loaded_at.isoformat() if loaded_at else ''}#{rows}" if week else ""
    if week:  # issue 18: multi-week measures read older weeks too -- a reloaded older week changes the data
        week_stamp += f"|{weeks}@{last_loaded.isoformat() if last_loaded else ''}"
    return Stamp(versions=versions, week=week_stamp, custom="")


def get(*, wait: bool = False) -> tuple[Entry, bool]:
    """The current org's entry and whether it is stale (a rebuild is running). Builds it if there is none."""
    schema = connection.schema_name  # type: ignore[attr-defined]
    stamp = current_stamp()
    with _registry_lock:
        entry = _entries.get(schema)
        if entry is not None:
            _entries.move_to_end(schema)
    if entry is not None and entry.stamp == stamp:
        return entry, False
    if entry is not None and background_rebuild() and not wait:
        _start_background(schema)
        return entry, True
    with _build_lock(schema):  # concurrent first requests of one org build it once
        with _registry_lock:
            current = _entries.get(schema)
        if current is not None and current.stamp == stamp:
            return current, False
        with frame_files.build_lock(schema, stamp.generation):  # another worker may be building it: load theirs
            # a first build (nothing serves meanwhile) defers its emails and hashes (see build())
            # (not inside a transaction: the deferred pass's thread would not see its rows)
            defer = background_rebuild() and not connection.in_atomic_block
            entry = load_stored(schema, stamp) or build(stamp=stamp, defer=defer)
        _store(entry)
    return entry, False


_build_locks: dict[str, threading.Lock] = {}


def _build_lock(schema: str) -> threading.Lock:
    with _registry_lock:
        return _build_locks.setdefault(schema, threading.Lock())


def _store(entry: Entry) -> None:
    with _registry_lock:
        _entries[entry.schema] = entry
        _entries.move_to_end(entry.schema)
        _evict(keep=entry.schema)


def _evict(keep: str) -> None:
    budget = budget_bytes()
    total = sum(e.nbytes() for e in _entries.values())
    for schema in list(_entries):
        if total <= budget:
            break
        if schema == keep:
            continue
        total -= _entries.pop(schema).nbytes()
        logger.info("builder cache: evicted %s (over %s MB)", schema, budget >> 20)


def _start_background(schema: str) -> None:
    with _registry_lock:
        if schema in _building:
            return
        _building.add(schema)

    def run() -> None:
        from django.db import connection as thread_connection

        try:
            thread_connection.set_schema(schema)  # type: ignore[attr-defined]
            with _build_lock(schema):
                stamp = current_stamp()
                with frame_files.build_lock(schema, stamp.generation):
                    _store(load_stored(schema, stamp) or build(stamp=stamp))
        except Exception:
            logger.exception("builder cache: background rebuild of %s failed", schema)
        finally:
            with _registry_lock:
                _building.discard(schema)
            thread_connection.close()

    threading.Thread(target=run, name=f"builder-cache-{schema}", daemon=True).start()


def invalidate(schema: str | None = None) -> None:
    """Drop one org's entry (or all): the next request rebuilds it."""
    with _registry_lock:
        if schema is None:
            _entries.clear()
        else:
            _entries.pop(schema, None)


def stats() -> list[dict[str, Any]]:
    """Per org: rows, memory, build time, when built (for the org admin and the benchmark)."""
    with _registry_lock:
        entries = list(_entries.values())
    return [
        {
            "schema": e.schema,
            "rows": e.height,
            "bytes": e.nbytes(),
            "mb": round(e.nbytes() / 2**20, 1),
            "mapped_mb": round(e.mapped_bytes() / 2**20, 1),
            "build_seconds": round(e.build_seconds, 3),
            "built_at": e.built_at,
            "bombora_rows": e.bombora_frame.height if e.bombora_frame is not None else None,
            "topic_columns": len(e.topic_columns),
            "stamp": str(e.stamp),
        }
        for e in entries
    ]


def entry_stats(schema: str) -> dict[str, Any] | None:
    return next((s for s in stats() if s["schema"] == schema), None)


# --- building ---------------------------------------------------------------------------------------------------
SPOOL_MAX_AGE = 6 * 3600  # seconds: no build's COPY takes this long


def _copy_frame(sql: str, schema: dict[str, Any]) -> pl.DataFrame:
    """The query's rows through COPY ... CSV, spooled to a temporary file that polars parses from its memory map.

    At 10M records the CSV is about 2.5 GB: held in a BytesIO (which doubles as it grows) it set the build's peak
    memory; on disk it costs the page cache only, and the parse reads it in parallel."""
    spool = Path(settings.DATA_DIR) / "tmp"
    spool.mkdir(parents=True, exist_ok=True)
    for stale in spool.glob("builder-*.csv"):  # left by a build that was killed (a file is removed when closed)
        with contextlib.suppress(OSError):  # another worker may remove it first
            if time.time() - stale.stat().st_mtime > SPOOL_MAX_AGE:
                stale.unlink()
    with tempfile.NamedTemporaryFile(dir=spool, prefix="builder-", suffix=".csv") as handle:
        with connection.cursor() as cursor, cursor.copy(f"COPY ({sql}) TO STDOUT (FORMAT csv)") as copy:  # type: ignore[attr-defined]
            for chunk in copy:
                handle.write(chunk)
        handle.flush()
        if handle.tell() == 0:
            return pl.DataFrame(schema=schema)
        # PostgreSQL's CSV booleans are t/f: read as text, then mapped
        text = {name: pl.String if dtype == pl.Boolean else dtype for name, dtype in schema.items()}
        frame = pl.read_csv(handle.name, has_header=False, new_columns=list(schema), schema=text)
    booleans = [name for name, dtype in schema.items() if dtype == pl.Boolean]
    return (
        frame.with_columns(
            pl.col(name).replace_strict({"t": True, "f": False}, default=None, return_dtype=pl.Boolean)
            for name in booleans
        )
        if booleans
        else frame
    )


KEYS = ["version_id", "row"]


# the identifiers, read as text (the people rule reads email_normalized's text; the others are DEFERRED's)
TEXT_COLUMNS = frozenset(
    {"email_normalized", "email", "email_sha256", "phone", "phone_e164", "phone_sha256", "maid", "ip"}
)


@dataclass
class _Coded:
    """A string column as dictionary codes: `codes` (UInt32, null where the value is) index `values` (distinct)."""

    codes: pl.Series
    values: pl.Series

    def decoded(self) -> pl.Series:
        return self.values.gather(self.codes)


@dataclass
class _Dictionaries:
    """The string -> code mapping of each string column, shared by every slice of one read (polars' Categorical
    categories: a concurrent map, so both read threads code their slices into the same codes as they arrive).

    Issue 17: each slice used to be dictionary-encoded on its own and the slices' dictionaries unified after the read
    by one more hash pass over all of them: for a column of 2M company names over 10M records a slice's dictionary
    is nearly the slice (93 % distinct), and that merge cost more than the encoding (synthetic 10M rows, CPU: 2.2 s
    per slice + 3.1 s merge, against 3.0 s coding into one shared mapping and 0.3 s to list its values)."""

    dtypes: dict[str, pl.Categorical] = field(default_factory=dict)
    # An empty series of each dtype: polars frees a mapping (and starts a new, empty one) once no series refers to
    # it, and the slices keep only their physical codes.
    pins: dict[str, pl.Series] = field(default_factory=dict)
    # Columns kept as text: the identifiers (nearly unique: coding them buys nothing). Every other column is coded,
    # whatever a slice of it looks like: a slice of 300k records holds ~95-100 % distinct values of a column of 2M
    # company names over 10M records, as many as emails do, and a column kept as text was hashed again whole after
    # the read (10M: company and domain, 6.2 of the encode's 10.2 CPU-s). Whether a column ends up an Enum is
    # decided on the people's values (_encode_coded), so the frame is the same either way.
    text: frozenset[str] = TEXT_COLUMNS
    lock: threading.Lock = field(default_factory=threading.Lock)

    def dtype(self, name: str) -> pl.Categorical | None:
        """The column's shared Categorical (None: the column is kept as text)."""
        with self.lock:
            if name in self.text:
                return None
            if name not in self.dtypes:
                self.dtypes[name] = pl.Categorical(pl.Categories.random())  # this read's own: freed with it
                self.pins[name] = pl.Series([], dtype=self.dtypes[name])
            return self.dtypes[name]

    def values(self, name: str) -> pl.Series:
        """The column's distinct values, index = code."""
        with self.lock:
            dtype = self.dtypes.get(name)
        return dtype.categories.to_series() if dtype is not None else pl.Series([], dtype=pl.String)


@dataclass
class _SliceCodes:
    """A slice's string column as codes (UInt32, null where the value is) of its read's shared mapping."""

    codes: pl.Series


def _slice_columns(table: pa.Table, schema: dict[str, Any], dictionaries: _Dictionaries) -> dict[str, Any]:
    """One slice of the records, column by column: strings coded into the read's shared mapping (_Dictionaries),
    except nearly unique ones (emails, hashes: coding them buys nothing), which stay text; other columns as polars
    series of the schema's dtype. The slice's Arrow strings can go as soon as this returns, so the build never holds
    every string column of 10M records as text (that set the 6 GB peak)."""
    out: dict[str, Any] = {}
    for index, (name, dtype) in enumerate(schema.items()):
        # A copy of what is kept: polars would otherwise share the driver's buffers, and one column shared keeps the
        # slice's whole record batches alive (the C data interface releases a batch only with all its columns).
        chunks = table.column(index).chunks
        column = pa.concat_arrays(chunks) if chunks else pa.array([], type=table.schema.field(index).type)
        series = pl.from_arrow(column)
        assert isinstance(series, pl.Series)
        if dtype != pl.String:
            out[name] = series if series.dtype == dtype else series.cast(dtype)
            continue
        text = series.cast(pl.String)
        shared = dictionaries.dtype(name)
        if shared is None:
            out[name] = text
            continue
        out[name] = _SliceCodes(text.cast(shared).to_physical())
    return out


def _merge(pieces: list[Any], dtype: Any, values: Callable[[], pl.Series]) -> Any:
    """One column from its slices: a series (numbers; TEXT_COLUMNS), or `_Coded` (every slice coded into the read's
    shared mapping; `values` lists it). Either gives the same frame (see _encode)."""
    if dtype != pl.String:
        return pl.concat(pieces, rechunk=False) if pieces else pl.Series([], dtype=dtype)
    if pieces and all(isinstance(piece, _SliceCodes) for piece in pieces):
        codes = pl.concat([piece.codes for piece in pieces], rechunk=False)
        return _Coded(codes=codes.cast(pl.UInt32), values=values())
    assert not any(isinstance(piece, _SliceCodes) for piece in pieces)  # a column is text in every slice or none
    return pl.concat(pieces, rechunk=False) if pieces else pl.Series([], dtype=dtype)


@dataclass
class _Read:
    """The records as read, in scan order (slices one after another), with the order that sorts them by
    (version_id, row). A column is gathered once, straight into the people's order, and then dropped, so the build
    never holds a sorted copy of every column beside the read one (that set the 10M build's peak)."""

    columns: dict[str, Any]
    order: pl.Series | None  # None: the scan order is the key order already (no sort, no gathers through it)
    lock: threading.Lock = field(default_factory=threading.Lock)
    at: pl.Series | None = None
    at_keep: pl.Series | None = None

    @classmethod
    def from_slices(cls, slices: list[dict[str, Any]], schema: dict[str, Any], dictionaries: _Dictionaries) -> _Read:
        """The slices (each coded with `dictionaries`) as one read."""
        columns = {
            name: _merge([piece[name] for piece in slices], dtype, lambda name=name: dictionaries.values(name))  # type: ignore[misc]
            for name, dtype in schema.items()
        }
        keys = pl.DataFrame([columns[k].alias(k) for k in KEYS])
        if _in_key_order(keys):
            return cls(columns=columns, order=None)
        return cls(columns=columns, order=keys.select(pl.arg_sort_by(KEYS)).to_series())

    def sorted_keys(self) -> pl.DataFrame:
        if self.order is None:
            return pl.DataFrame([self.columns[k].alias(k) for k in KEYS])
        return pl.DataFrame([self.columns[k].gather(self.order).alias(k) for k in KEYS])

    def sorted_column(self, name: str) -> pl.Series:
        column = self.columns[name]
        text = column.decoded() if isinstance(column, _Coded) else column
        return text.alias(name) if self.order is None else text.gather(self.order).alias(name)

    def take(self, name: str, keep: pl.Series) -> Any:
        """The column at the sorted positions `keep` (a series, or `_Coded` with gathered codes), removed from the
        read (its memory goes with it)."""
        column = self.drop(name)
        with self.lock:  # the read positions of the people, computed once for every column
            if self.at is None or self.at_keep is not keep:
                self.at, self.at_keep = (keep if self.order is None else self.order.gather(keep)), keep
            at = self.at
        if isinstance(column, _Coded):
            return _Coded(codes=column.codes.gather(at), values=column.values)
        return column.gather(at).alias(name)

    def drop(self, name: str) -> Any:
        with self.lock:
            return self.columns.pop(name)


def _in_key_order(keys: pl.DataFrame) -> bool:
    """Whether the rows are sorted by (version_id, row) as read: a version's pages hold its rows in the order they
    were written, so a page-ordered scan usually is (then the 10M-row two-key sort and the gathers through it go)."""
    if keys.height < 2:
        return True
    version, row = pl.col("version_id"), pl.col("row")
    ascending = (version.diff() > 0) | ((version.diff() == 0) & (row.diff() > 0))
    return bool(keys.select(ascending.slice(1).all()).item())


def _read_records(select: list[str], schema: dict[str, Any], version_ids: list[int]) -> _Read:
    """The versions' records: typed slices through ADBC when it can (see _read_records_arrow), else COPY CSV."""
    if arrow_reads.available():
        return _read_records_arrow(select, schema, version_ids)
    return _read_records_csv(select, schema, ",".join(str(int(v)) for v in version_ids))


READ_THREADS = 2  # one slice per connection at a time: PostgreSQL formats one while this process decodes another
SLICE_BYTES = (
    64 << 20
)  # of a partition's heap per slice (about 300k bench records): bounds what a slice holds in flight


def _record_slices(version_ids: list[int]) -> list[str]:
    """FROM ... WHERE clauses that split the versions' partitions into slices of pages (TID range scans: each
    slice reads only its own pages). A version is written once, so slices read on several connections agree."""
    schema_name = connection.schema_name  # type: ignore[attr-defined]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT v, pg_relation_size(format('%%I.%%I', %s::text, 'audiences_record_v' || v)::regclass), "
            "current_setting('block_size')::bigint FROM unnest(%s::bigint[]) v",
            [schema_name, [int(v) for v in version_ids]],
        )
        sizes = cursor.fetchall()
    slices = []
    for vid, size, block in sizes:
        table = records.qualified(schema_name, vid)
        count = max(1, -(-int(size) // SLICE_BYTES))
        blocks = int(size) // int(block)
        bounds = [blocks * i // count for i in range(count + 1)]
        for i in range(count):
            if count == 1:
                slices.append(f"{table} r")
                continue
            where = f"r.ctid >= '({bounds[i]},0)'::tid"
            if i < count - 1:  # the last slice is open-ended
                where += f" AND r.ctid < '({bounds[i + 1]},0)'::tid"
            slices.append(f"{table} r WHERE {where}")
    return slices


def _read_records_arrow(select: list[str], schema: dict[str, Any], version_ids: list[int]) -> _Read:
    """The versions' records in slices of pages, on READ_THREADS ADBC connections (binary COPY decoded into Arrow
    in C++: no CSV to format and parse, no Python call per row; numbers, dates and booleans arrive typed), each
    slice's strings coded as soon as it arrives (see _slice_columns).

    Issue 17: the COPY CSV read of 10M records took 462 s under load (10M+ Python iterations over psycopg's one
    message per row, a 2.5 GB spool file and its parse), and its parsed strings set a 6 GB peak."""
    columns = ", ".join(f"{expression} AS c{i}" for i, expression in enumerate(select))
    dsn = arrow_reads.conninfo()
    sources = _record_slices(version_ids)
    slices: list[dict[str, Any] | None] = [None] * len(sources)
    dictionaries = _Dictionaries()
    queue = iter(range(len(sources)))
    queue_lock = threading.Lock()

    def reader() -> None:
        # One connection per thread for all its slices: an ADBC connect cost ~0.1 CPU-s here (the driver reads the
        # server's type catalogue) plus a backend start, and a 10M build read ~70 slices over its two passes.
        with arrow_reads.connect(dsn) as db:
            while True:
                with queue_lock:
                    index = next(queue, None)
                if index is None:
                    return
                with db.cursor() as cursor:
                    cursor.execute(f"SELECT {columns} FROM {sources[index]}")
                    table = cursor.fetch_arrow_table()
                slices[index] = _slice_columns(table, schema, dictionaries)
                del table

    threads = max(1, min(READ_THREADS, len(sources)))
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="builder-read") as pool:
        for future in [pool.submit(reader) for _ in range(threads)]:
            future.result()
    return _Read.from_slices([piece for piece in slices if piece is not None], schema, dictionaries)


def _read_records_csv(select: list[str], schema: dict[str, Any], ids: str) -> _Read:
    """The versions' records through one COPY CSV on Django's connection: inside a transaction (tests) another
    connection would not see them, and an installation without the ADBC driver reads this way."""
    sql = f"SELECT {', '.join(select)} FROM audiences_record r WHERE r.version_id IN ({ids})"
    frame = _copy_frame(sql, schema)
    dictionaries = _Dictionaries()
    return _Read.from_slices([_slice_columns(frame.to_arrow(), schema, dictionaries)], schema, dictionaries)


def _narrow(series: pl.Series) -> pl.Series:
    if series.len() == 0 or series.null_count() == series.len():
        return series
    low, high = series.min(), series.max()
    for dtype, lo, hi in ((pl.Int8, -128, 127), (pl.Int16, -32768, 32767), (pl.Int32, -(2**31), 2**31 - 1)):
        if lo <= low and high <= hi:  # type: ignore[operator]
            return series.cast(dtype)
    return series


LOWERCASE_STEP = 1 << 20


def _all_lowercase(series: pl.Series) -> bool:
    """Whether every value is in lowercase already, checked in steps of rows (a lowercase copy of a whole column of
    10M emails was one more copy of it at the build's peak)."""
    for start in range(0, series.len(), LOWERCASE_STEP):
        part = series.slice(start, LOWERCASE_STEP)
        if not (part.str.to_lowercase() == part).fill_null(True).all():
            return False
    return True


def _encode(name: str, column: Any, *, distinct: int | None = None) -> tuple[pl.Series, StringColumn | None]:
    """A column as the frame keeps it: strings as Enum (or String when nearly unique), numbers narrowed.
    `distinct`: the column's exact number of distinct values (nulls one) when the caller knows it."""
    if isinstance(column, _Coded):
        return _encode_coded(name, column)
    series = column
    if series.dtype == pl.String:
        if name in ALWAYS_ENUM or not _nearly_unique(series, distinct):
            return _as_enum(series)
        return series, StringColumn(lowercase=_all_lowercase(series))
    if name == "version_id":
        return series.cast(pl.Int32), None  # a few ids (rid >> 36 gives it too); half the bytes of Int64
    if series.dtype in (pl.Int64, pl.Int32) and name != "__rid":
        return _narrow(series), None
    return series, None


def _encode_coded(name: str, column: _Coded, *, enum: bool = False) -> tuple[pl.Series, StringColumn]:
    """A coded string column as the frame keeps it, without going through 10M strings: the values the people use
    are found from their codes, sorted as _as_enum sorts its categories, and the codes renumbered (one gather)."""
    codes, values = column.codes.rename(name), column.values
    used = np.zeros(values.len(), dtype=bool)
    used[codes.drop_nulls().to_numpy()] = True
    present = np.flatnonzero(used)
    threshold = max(1000, ENUM_MAX_SHARE * codes.len())
    if not enum and name not in ALWAYS_ENUM and codes.len() > 1000 and len(present) > threshold:  # as _nearly_unique
        series = column.decoded().alias(name)
        return series, StringColumn(lowercase=_all_lowercase(series))
    ordered = (
        pl.DataFrame({"value": values.gather(pl.Series(present, dtype=pl.UInt32)), "index": present})
        .with_columns(pl.col("value").str.to_lowercase().alias("lowered"))
        .sort("lowered", "value")
    )
    categories, lowered = ordered.get_column("value"), ordered.get_column("lowered")
    renumber = np.zeros(values.len(), dtype=np.uint32)
    renumber[ordered.get_column("index").to_numpy()] = np.arange(len(present), dtype=np.uint32)
    encoded = categories.cast(pl.Enum(categories)).gather(pl.Series(renumber).gather(codes)).alias(name)
    if lowered.equals(categories):  # already lowercase (domains, postal codes): share the Enum's own categories
        return encoded, StringColumn(lowered_categories=categories, lowercase=True, categories=categories)
    return encoded, StringColumn(lowered_categories=lowered, categories=categories)


def _nearly_unique(series: pl.Series, distinct: int | None = None) -> bool:
    """More distinct values than ENUM_MAX_SHARE of the rows (and over 1000): kept as String, not Enum.

    All values are counted: a sample cannot tell an identifier from a column with millions of values repeated a few
    times each (2M companies over 10M people look 95 % distinct in a 200k-row sample), and the latter must be an Enum.
    `distinct` (exact, nulls one) when known: the people rule counts the distinct emails anyway.
    """
    if series.len() <= 1000:
        return False
    threshold = max(1000, ENUM_MAX_SHARE * series.len())
    if distinct is not None:
        return distinct > threshold
    # An estimate first (HyperLogLog: no hash table of 10M strings); the exact count only near the threshold.
    # Either answer gives the same counts; the choice only decides how the column is stored.
    estimate = int(series.approx_n_unique())  # type: ignore[arg-type]
    if estimate > 1.5 * threshold:
        return True
    if estimate < 0.5 * threshold:
        return False
    return series.n_unique() > threshold


def _as_enum(series: pl.Series) -> tuple[pl.Series, StringColumn]:
    """The column as an Enum whose categories are sorted by their lowercase form (then as written): `eq`, `in` and
    `starts_with` (case-insensitive) then match contiguous code ranges (see polars_engine.classify_matches).

    Coded first (pyarrow's hash kernel), then as _encode_coded: polars' `cast` of 10M strings to an Enum of 2M
    categories took seconds more than the hash and one gather of codes."""
    if series.len() > 1000:
        array = series.to_arrow()
        if array.type != pa.large_string():
            array = array.cast(pa.large_string())
        encoded = pc.dictionary_encode(array)
        codes = pl.from_arrow(encoded.indices)
        values = pl.from_arrow(encoded.dictionary)
        assert isinstance(codes, pl.Series) and isinstance(values, pl.Series)
        coded = _Coded(codes=codes.cast(pl.UInt32), values=values.cast(pl.String))
        return _encode_coded(series.name, coded, enum=True)
    unique = series.drop_nulls().unique().to_frame("value")
    ordered = unique.with_columns(pl.col("value").str.to_lowercase().alias("lowered")).sort("lowered", "value")
    categories, lowered = ordered.get_column("value"), ordered.get_column("lowered")
    encoded = series.cast(pl.Enum(categories))
    if lowered.equals(categories):  # already lowercase (domains, postal codes): share the Enum's own categories
        return encoded, StringColumn(lowered_categories=categories, lowercase=True, categories=categories)
    return encoded, StringColumn(lowered_categories=lowered, categories=categories)


EMPTY_BOMBORA = {"code": pl.UInt32, "topic_id": pl.Int32, "score": pl.UInt8}


def _categories(frame: pl.DataFrame, strings: dict[str, StringColumn], column: str) -> pl.Series | None:
    """An Enum column's categories, from the cache's record of them (the dtype's are slow to read: see StringColumn)."""
    if column not in frame.columns:
        return None
    info = strings.get(column)
    if info is not None and info.categories is not None:
        return info.categories
    dtype = frame.get_column(column).dtype
    return dtype.categories if isinstance(dtype, pl.Enum) else None


def _scores_by_code(
    frame: pl.DataFrame, strings: dict[str, StringColumn], week: Any, topic_ids: list[int] | None
) -> pl.DataFrame:
    """The week's scores (of some topics, or all) for the frame's domains: (code, topic_id, score), one score per
    domain and topic (the highest, as the SQL join), sorted by topic then code."""
    categories = _categories(frame, strings, "domain")
    if week is None or categories is None or not categories.len():
        return pl.DataFrame(schema=EMPTY_BOMBORA)
    scores = scores_frame(week, topic_ids)
    codes = pl.DataFrame({"domain": categories, "code": pl.int_range(0, categories.len(), eager=True, dtype=pl.UInt32)})
    return (
        scores.join(codes, on="domain", how="inner")
        .group_by("topic_id", "code")
        .agg(pl.col("score").max())
        .sort("topic_id", "code")
        .select("code", "topic_id", "score")
    )


def bombora_long(frame: pl.DataFrame, strings: dict[str, StringColumn], week: Any) -> pl.DataFrame:
    """This week's scores for the org's domains, as (domain code, topic, score) sorted by topic."""
    return _scores_by_code(frame, strings, week, None)


# Near-unique identifiers no people rule reads: read after the rest (build()). Conditions on them are mostly null
# tests, which their presence answers exactly meanwhile; any other condition on one waits for the second pass.
DEFERRED = ("email", "email_sha256", "phone", "phone_e164", "phone_sha256", "maid", "ip")
PRESENT = "__present"  # the first pass's presence of the deferred columns: bit k set when DEFERRED[k] IS NOT NULL


def build(*, stamp: Stamp | None = None, defer: bool = False) -> Entry:
    """Read the org's universe from PostgreSQL into a frame (see logic/sql_engine.py for the same rule in SQL).

    Two passes (issue 17): every column but DEFERRED's (with their `IS NOT NULL`), then DEFERRED's strings on their
    own, gathered straight into the people's order. Holding those near-unique strings beside every other column
    during the read set most of the 10M build's peak, and reading them was a large share of its time. With `defer`
    (a first build, which a preview waits for) the second pass runs on a thread after the entry is returned: counts
    are served at once (null tests on a deferred column read its presence), and `entry.frame` waits for the pass."""
    from audiences.catalogue import custom_fields

    started = time.perf_counter()
    phases: dict[str, float] = {}
    cpu_phases: dict[str, float] = {}  # this process's CPU seconds (every thread): wall time on a shared machine lies
    peak_mb: dict[str, int] = {}
    timer = _Phases(phases, cpu_phases, peak_mb)
    phase = timer.phase

    schema_name = connection.schema_name  # type: ignore[attr-defined]
    stamp = stamp or current_stamp()
    custom = custom_fields()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, current_version_id FROM audiences_audience "
            "WHERE kind = 'imported' AND current_version_id IS NOT NULL ORDER BY id"
        )
        imported = [(int(a), int(v)) for a, v in cursor.fetchall()]
    version_ids = [v for _, v in imported]
    first_strings = [c for c in STRING_COLUMNS if c not in DEFERRED]
    select = ["r.version_id", "r.row", *[f"r.{c}" for c in first_strings], *[f"r.{c}" for c in NUMBER_COLUMNS]]
    schema: dict[str, Any] = {"version_id": pl.Int64, "row": pl.Int64}
    schema.update({c: pl.String for c in first_strings})
    schema.update(NUMBER_COLUMNS)
    # One small integer for every deferred column's presence: a field costs the driver's decode more than its
    # bytes (2M rows: 0.11 client CPU-s per all-null text column, as much as a filled one).
    # (a UID2 hash is present exactly where its base column is)
    select.append(
        " | ".join(f"((r.{DERIVED.get(name, name)} IS NOT NULL)::int << {k})" for k, name in enumerate(DEFERRED))
    )
    schema[PRESENT] = pl.Int32
    for key, type_name in custom.items():
        select.append(custom_sql("r", key, type_name))
        schema[f"custom.{key}"] = {
            "integer": pl.Int64,
            "decimal": pl.Float64,
            "date": pl.Date,
            "boolean": pl.Boolean,
        }.get(type_name, pl.String)
    # the frame's column order (as one pass built it: stored generations and samples keep it)
    order = ["version_id", *STRING_COLUMNS, *NUMBER_COLUMNS, *(c for c in schema if c.startswith("custom.")), "__rid"]
    read = _read_records(select, schema, version_ids) if version_ids else _Read.from_slices([], schema, _Dictionaries())
    phase("read")
    sorted_keys = read.sorted_keys()
    records = sorted_keys.with_columns(read.sorted_column("email_normalized")).with_row_index("__i")
    read.drop("email_normalized")  # the read copy (the sorted one is in `records`, then the people's in `universe`)
    # One person per email_normalized (most recent version, then first row), else one per record.
    # Only the four columns the rule reads (sorting every column of 10M rows doubled the build's peak memory). The
    # rows are put in rule order by two integer keys, then the first of each email is kept by hashing (a sort on the
    # 10M email strings themselves took most of this phase).
    email = pl.col("email_normalized")
    if len(version_ids) == 1:
        # One version: the rule's order (most recent version, then first row) is the key order the records are in,
        # so the representative of an email is its first row: one hash pass, no sort, no concat and re-sort.
        keep = records.select((email.is_null() | email.is_first_distinct()).arg_true()).to_series().alias("__i")
        with_email = records.clear().select("email_normalized", "version_id")  # (no email is in two versions)
        nulls = int(records.get_column("email_normalized").null_count())
        known_distinct = {"email_normalized": keep.len() - nulls + (1 if nulls else 0)}
    else:
        with_email = records.select("email_normalized", "version_id", "row", "__i").filter(email.is_not_null())
        representatives = (
            with_email.sort(["version_id", "row"], descending=[True, False])
            .unique(subset="email_normalized", keep="first")
            .get_column("__i")
        )
        without_email = records.select("__i", "email_normalized").filter(email.is_null())
        keep = pl.concat([without_email.get_column("__i"), representatives]).sort()
        # the people's distinct emails, known exactly (one person per email; the nulls count as one value)
        known_distinct = {"email_normalized": representatives.len() + (1 if without_email.height else 0)}
        del without_email, representatives
    # Imported-audience membership: the representative's version, plus other versions holding the same email.
    # (With one imported audience no email is in two versions: skip two more hash passes over the emails.)
    pairs = with_email.select("email_normalized", "version_id")
    pairs = pairs.unique() if len(imported) > 1 else pairs.clear()
    shared = pairs.filter(pl.col("email_normalized").is_duplicated())
    universe = records.select(pl.all().gather(keep))  # the people's keys and emails
    universe = universe.with_columns((pl.col("version_id") * (1 << RID_SHIFT) + pl.col("row")).alias("__rid"))
    imported_masks: dict[int, pl.Series] = {}
    for audience_id, vid in imported:
        emails = shared.filter(pl.col("version_id") == vid).get_column("email_normalized")
        mask = universe.select(
            ((pl.col("version_id") == vid) | pl.col("email_normalized").is_in(emails.implode())).fill_null(False)
        ).to_series()
        imported_masks[audience_id] = mask.alias(audience_column(audience_id))
    del records, with_email, pairs, shared
    phase("people")
    # Narrow types; strings to Enum where it pays.
    strings: dict[str, StringColumn] = {}
    columns: list[pl.Series] = []
    height = universe.height
    names = [name for name in schema if name not in ("row", PRESENT)] + ["__rid"]

    def encode(name: str, universe: pl.DataFrame = universe, read: _Read = read) -> Any:
        if name in universe.columns:
            return _encode(name, universe.get_column(name), distinct=known_distinct.get(name))
        return _encode(name, read.take(name, keep))

    # One column per task on two threads: most of these string kernels run on one core each.
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="builder-encode") as pool:
        encoded = list(pool.map(encode, names))
    for name, (series, info) in zip(names, encoded, strict=True):
        if info is not None:
            strings[name] = info
        columns.append(series)
    frame = pl.DataFrame(columns)
    present = read.take(PRESENT, keep)
    presence = {name: _presence((present & (1 << k)) != 0) for k, name in enumerate(DEFERRED)}
    del present
    rids = universe.get_column("__rid")
    emails = universe.get_column("email_normalized")  # the people's, for their UID2 hashes (the deferred pass)
    del read, universe, encode  # (encode's defaults hold them too)
    phase("encode")
    week = current_week()
    # Bombora's long frame: read now without background threads (tests), else by a thread after the entry is
    # stored, so the first preview does not wait on the week's scores (previews read one topic at a time).
    bombora = None if background_rebuild() else bombora_long(frame, strings, week)
    has_hash = presence["email_sha256"].is_not_null()
    phase("bombora")
    elapsed = time.perf_counter() - started
    entry = Entry(
        schema=schema_name,
        stamp=stamp,
        ready_frame=frame,
        strings=strings,
        custom=custom,
        week=week,
        build_seconds=elapsed,
        built_at=time.time(),
        imported_masks=imported_masks,
        bombora_frame=bombora,
        has_hash=has_hash,
        leaf_memo=_memo_for(frame),
        stats={"build_phases": phases, "build_cpu_phases": cpu_phases, "build_peak_rss_mb": peak_mb},
        deferred=frozenset(DEFERRED),
        presence=presence,
    )
    second = _SecondPass(
        version_ids=version_ids, keep=keep, rids=rids, order=order, timer=timer, started=started, emails=emails
    )
    then = entry.load_bombora_later if bombora is None else None
    if defer:  # the week's scores are read after the deferred columns (one background read at a time: its peak)
        second.start(entry, then=then)
    else:
        second.run(entry)
        if then is not None:
            then()
    entry.build_seconds = time.perf_counter() - started
    logger.info(
        "builder cache: built %s (%d people, %.1f MB) in %.2f s", schema_name, height, entry.nbytes() / 2**20, elapsed
    )
    return entry


@dataclass
class _Phases:
    """Wall and CPU seconds and the peak RSS per phase of a build (the org admin and the benchmark show them)."""

    wall: dict[str, float]
    cpu: dict[str, float]
    peak_mb: dict[str, int]
    mark: float = field(default_factory=time.perf_counter)
    cpu_mark: float = field(default_factory=time.process_time)

    def phase(self, name: str) -> None:
        now, cpu_now = time.perf_counter(), time.process_time()
        self.wall[name], self.cpu[name] = now - self.mark, cpu_now - self.cpu_mark
        self.peak_mb[name] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss >> 10  # this process's peak so far
        self.mark, self.cpu_mark = now, cpu_now


def _presence(present: pl.Series) -> pl.Series:
    """`IS NOT NULL` as a column with the same nulls as the value's (True where it has one): null tests on it give
    the value's answers."""
    return pl.DataFrame({"p": present}).select(pl.when(pl.col("p")).then(pl.lit(True))).to_series()


@dataclass
class _SecondPass:
    """DEFERRED's strings of the people (see build()), read after the rest and added to the entry's frame."""

    version_ids: list[int]
    keep: pl.Series  # the people's positions among the records sorted by (version_id, row)
    rids: pl.Series  # the people's rids (checked: the second read's rows are the first's)
    order: list[str]
    timer: _Phases
    started: float
    emails: pl.Series  # the people's email_normalized (String), in the people's order

    def read(self) -> list[tuple[pl.Series, StringColumn | None]]:
        stored = [c for c in DEFERRED if c not in DERIVED]
        select = ["r.version_id", "r.row", *[f"r.{c}" for c in stored]]
        schema: dict[str, Any] = {"version_id": pl.Int64, "row": pl.Int64, **{c: pl.String for c in stored}}
        read = (
            _read_records(select, schema, self.version_ids)
            if self.version_ids
            else _Read.from_slices([], schema, _Dictionaries())
        )
        # A version is written once: sorted by the same unique key, the positions of the first pass still hold.
        rids = read.take("version_id", self.keep) * (1 << RID_SHIFT) + read.take("row", self.keep)
        if not rids.equals(self.rids, check_names=False):
            raise RuntimeError("builder cache: the second read's records are not the first read's")
        self.timer.phase("deferred read")
        # One column at a time: the read's strings go as each is gathered (this pass's peak is one column's copies).
        # The UID2 hashes are not stored (issue 17): `uid2_hashes` of their base column, the people's values.
        encoded: dict[str, tuple[pl.Series, StringColumn | None]] = {}
        bases: dict[str, pl.Series] = {"email_normalized": self.emails}
        for name in stored:
            column = read.take(name, self.keep)
            if name in DERIVED.values():
                bases[name] = (column.decoded() if isinstance(column, _Coded) else column).alias(name)
            encoded[name] = _encode(name, column)
        del read
        for name, base in DERIVED.items():
            encoded[name] = _encode(name, uid2_hashes(bases.pop(base)).alias(name))
        self.emails = self.emails.clear()
        return [encoded[name] for name in DEFERRED]

    def add(self, entry: Entry, encoded: list[tuple[pl.Series, StringColumn | None]]) -> None:
        """The deferred columns into the entry (its frame swapped for one that has them), then stored."""
        for name, (_, info) in zip(DEFERRED, encoded, strict=True):
            if info is not None:
                entry.strings[name] = info
        by_name = {c.name: c for c in entry.ready_frame.get_columns()}
        by_name.update({series.name: series for series, _ in encoded})
        entry.ready_frame = pl.DataFrame([by_name[name] for name in self.order if name in by_name])
        entry.deferred = frozenset()  # after the frame holds them (Entry.column reads `deferred` first)
        entry.presence = {}
        entry.deferred_done.set()
        self.timer.phase("deferred encode")
        if frame_files.enabled():
            _persist(entry)
        self.timer.phase("store")
        entry.stats["deferred_seconds"] = time.perf_counter() - self.started
        entry.settled.set()

    def run(self, entry: Entry) -> None:
        self.add(entry, self.read())

    def start(self, entry: Entry, then: Callable[[], None] | None = None) -> None:
        """run() on a thread (then `then`): the entry serves counts meanwhile. A failure drops the entry (the next
        request builds again) and makes `entry.frame` raise."""

        def work() -> None:
            from django.db import connection as thread_connection

            try:
                thread_connection.set_schema(entry.schema)  # type: ignore[attr-defined]
                self.run(entry)
                if then is not None:
                    then()
            except Exception as error:
                logger.exception("builder cache: the deferred columns of %s could not be read", entry.schema)
                entry.deferred_error = error
                entry.deferred_done.set()
                entry.settled.set()
                with _registry_lock:
                    if _entries.get(entry.schema) is entry:
                        del _entries[entry.schema]
            finally:
                thread_connection.close()

        threading.Thread(target=work, name=f"builder-deferred-{entry.schema}", daemon=True).start()


# --- the stored generation (frame_files.py) ----------------------------------------------------------------------
IMPORTED_PREFIX = "__imported:"
HAS_HASH = "__has_hash"


def _persist(entry: Entry) -> None:
    """Store the entry's generation, then serve its near-unique strings from the stored file's memory map."""
    mapped = [name for name, info in entry.strings.items() if info.lowered_categories is None]
    extra = [mask.alias(f"{IMPORTED_PREFIX}{audience_id}") for audience_id, mask in entry.imported_masks.items()]
    if entry.has_hash is not None:
        extra.append(entry.has_hash.alias(HAS_HASH))
    meta = {
        "stamp": str(entry.stamp),
        "schema": entry.schema,
        "custom": entry.custom,
        "week": entry.week.isoformat() if entry.week else None,
        "lowercase": {name: info.lowercase for name, info in entry.strings.items()},
        "build_seconds": entry.build_seconds,
    }
    categories = {
        name: info.categories
        for name, info in entry.strings.items()
        if info.lowered_categories is not None and info.categories is not None
    }
    path = frame_files.save(
        entry.schema, entry.stamp.generation, entry.ready_frame.with_columns(extra), mapped, categories, meta
    )
    if path is None:
        return
    try:
        entry.ready_frame = frame_files.remap(path, entry.ready_frame, mapped)
    except (OSError, pl.exceptions.PolarsError):
        logger.exception("builder cache: could not map %s; its strings stay on the heap", path)
        return
    entry.mapped = frozenset(mapped)


def load_stored(schema: str, stamp: Stamp) -> Entry | None:
    """The generation another process (or this one before a restart) stored, as an entry; None if there is none."""
    if not frame_files.enabled():
        return None
    started = time.perf_counter()
    stored = frame_files.load(schema, stamp.generation, str(stamp))
    if stored is None:
        return None
    meta = stored.meta
    frame = stored.frame
    imported = {
        int(name.removeprefix(IMPORTED_PREFIX)): frame.get_column(name).alias(
            audience_column(int(name.removeprefix(IMPORTED_PREFIX)))
        )
        for name in frame.columns
        if name.startswith(IMPORTED_PREFIX)
    }
    has_hash = frame.get_column(HAS_HASH) if HAS_HASH in frame.columns else None
    frame = frame.drop([*(f"{IMPORTED_PREFIX}{a}" for a in imported), *([HAS_HASH] if has_hash is not None else [])])
    strings: dict[str, StringColumn] = {}
    for name, lowercase in meta["lowercase"].items():
        categories = stored.categories.get(name)
        if categories is not None:
            lowered = categories.str.to_lowercase()
            if lowered.equals(categories):
                strings[name] = StringColumn(lowered_categories=categories, lowercase=True, categories=categories)
            else:
                strings[name] = StringColumn(lowered_categories=lowered, categories=categories)
        else:
            strings[name] = StringColumn(lowercase=bool(lowercase))
    week = dt.date.fromisoformat(meta["week"]) if meta.get("week") else None
    elapsed = time.perf_counter() - started
    entry = Entry(
        schema=schema,
        stamp=stamp,
        ready_frame=frame,
        strings=strings,
        custom=dict(meta["custom"]),
        week=week,
        build_seconds=elapsed,
        built_at=time.time(),
        imported_masks=imported,
        bombora_frame=None if background_rebuild() else bombora_long(frame, strings, week),
        has_hash=has_hash,
        leaf_memo=_memo_for(frame),
        stats={"build_phases": {"load stored": elapsed}, "built_seconds": meta.get("build_seconds")},
        mapped=stored.mapped,
    )
    entry.settled.set()
    if entry.bombora_frame is None:
        entry.load_bombora_later()
    logger.info("builder cache: loaded %s's stored frame (%d people) in %.2f s", schema, frame.height, elapsed)
    return entry
