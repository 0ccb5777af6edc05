"""Loading a Bombora Company Surge file into one week partition of the score table.

The accepted layouts (Master Surge, ADAT, a CSV with a header), gzipped or plain, are in bombora/layout.py.

The file is streamed: decompressed in blocks of about P360_BOMBORA_CHUNK_MB, each block split and validated by
polars and deduplicated; its per-domain summary is COPYed into `ingestion_bombora_score_load_<run>_d` as it goes,
and its scores are held compactly (about 10 bytes a row: the domain as a code, see staging.WeekRows) until the file
is read. Then the scores are sorted by (topic_id, domain) in polars and COPYed, in that order, on one connection
into the staging table `ingestion_bombora_score_load_<run>`: its heap is then in the order of the (topic_id,
domain) index, which PostgreSQL builds over presorted keys at a fraction of the cost of a full sort (issue 17).
In one short transaction, the week's old partition is dropped and the staging table attached in its place. A crash
at any point before that commit leaves the previous week untouched (the next run drops the orphaned staging table).

Duplicates ((domain, topic) twice in the week, e.g. ADAT's one row per metro) keep the highest score. Bombora files
come grouped by domain, so duplicates are merged per block, holding back the last domain of a block for the next
one; when the file turns out not to be sorted by domain the held rows are COPYed as they are, and the merge is
redone over the whole table in SQL.

The modules, in the one direction they import (the `bombora-load-one-way` contract in .importlinter):
- bombora/loader.py   the Loader: one file into a staging table (this module; also the public entry points);
- bombora/swap.py     the staged week swapped into the partitioned tables, history pruned;
- bombora/staging.py  topic ids, counters, the staging tables, their run lock and the COPY;
- bombora/parsing.py  a block of lines validated by polars (no database: it runs in the prefetch thread);
- bombora/reading.py  the decompressed stream, blocks of whole lines, the prefetch thread;
- bombora/layout.py   the file's layout from its first line, the week in its name.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl
from django.conf import settings
from django.db import connection

from bombora.layout import week_from_name
from bombora.parsing import LINE, RAW, RAW_MAX, validated_blocks
from bombora.reading import open_binary, prefetch
from bombora.staging import (
    DOMAIN_COLUMNS,
    LOCK_CLASS,
    MAX_QUARANTINE_STORED,
    OPTIONAL_COLUMNS,
    Copier,
    LoadStats,
    Topics,
    WeekRows,
    create_staging,
    domain_runs,
    domain_summary,
    drop_orphan_staging,
    drop_staging,
    hold_run_lock,
    merge_duplicates,
    release_run_lock,
    staging_name,
)
from bombora.store import DOMAIN_QUALIFIED, SURGE_THRESHOLD
from bombora.swap import check_not_too_old, prune_history, swap_in
from p360.core.fault_inject import fault_point
from p360.core.intake.tables import FileRejected

if TYPE_CHECKING:
    from ingestion.models import IngestionRun  # a load belongs to an ingestion run (typing only: no upward import)
    from p360.core.jobs.services import JobContext

# The public entry points, kept importable from here (the run in ingestion/sources/bombora.py imports them from
# their own modules; this keeps any older `from bombora.loader import ...` working).
__all__ = [
    "LOCK_CLASS",
    "MAX_QUARANTINE_STORED",
    "LoadStats",
    "Loader",
    "WeekUnknown",
    "check_not_too_old",
    "drop_orphan_staging",
    "drop_staging",
    "hold_run_lock",
    "prune_history",
    "release_run_lock",
    "staging_name",
    "swap_in",
    "week_from_name",
]


INDEX_SORT_MEMORY = "128MB"  # maintenance_work_mem of the (topic_id, domain) index build of an unsorted heap
INDEX_BYTES_PER_ROW = 100  # a presorted index build's memory per row (index tuple + sort slot), for index_memory()


def index_memory(rows: int, presorted: bool) -> str:
    """maintenance_work_mem for the (topic_id, domain) index build (see _finish_table)."""
    if not presorted:
        return INDEX_SORT_MEMORY
    cap = max(128, int(getattr(settings, "P360_BOMBORA_INDEX_MEMORY_MB", 2048)))
    return f"{min(cap, max(128, rows * INDEX_BYTES_PER_ROW >> 20))}MB"


class WeekUnknown(FileRejected):
    pass


@dataclass
class Loader:
    run: IngestionRun
    path: Path
    name: str
    week: dt.date | None
    ctx: JobContext | None = None
    block_bytes: int = 16 << 20
    stats: LoadStats = field(default_factory=LoadStats)
    topic_ids: set[int] = field(default_factory=set)
    topic_counts: dict[int, list[int]] = field(default_factory=dict)  # topic id -> [domains, surging]
    copier: Copier = field(init=False, repr=False)
    week_rows: WeekRows = field(default_factory=WeekRows, repr=False)

    def load(self) -> LoadStats:
        stream, raw = open_binary(self.path)
        size = max(1, self.path.stat().st_size)
        table = staging_name(self.run.pk)
        topics = Topics()
        carry: pl.DataFrame | None = None
        seen_content = False
        created = False
        blocks = prefetch(validated_blocks(stream, raw, self.name, self.block_bytes))
        # One connection: the COPYs land in the heap in the order they are sent (see _copy_held).
        self.copier = Copier(workers=1)
        try:
            for _layout, block, position in blocks:
                seen_content = True
                self.stats.rows_read += block.good.height + len(block.bad)
                self.stats.add_bad(block.bad)
                good = block.good
                if good.is_empty():
                    continue
                if not created:
                    self._settle_week(good)
                    assert self.week is not None
                    create_staging(table, self.week)
                    create_staging(f"{table}_d", self.week, like=DOMAIN_QUALIFIED)
                    created = True
                good = self._restrict_week(good)
                ids = topics.resolve(good.select("topic", "category"))
                extras = [c for c in OPTIONAL_COLUMNS if c in good.columns]  # issue 18: volume, surging
                rows = good.join(ids, on="topic", how="left", maintain_order="left").select(
                    "domain", "topic_id", "score", *extras
                )
                if carry is not None:
                    rows = pl.concat([carry, rows])
                if rows.is_empty():  # every row of the block was of another week
                    continue
                # Hold back the last domain: its rows may continue in the next block.
                last = rows["domain"][-1]
                carry = rows.filter(pl.col("domain") == last)
                rows = rows.filter(pl.col("domain") != last)
                self._write(table, rows)
                if self.ctx:
                    self.ctx.progress(position, size, rows_read=self.stats.rows_read)
            if carry is not None:
                self._write(table, carry)
            self._copy_held(table, ordered=True)
            self.copier.finish()
            if not seen_content or self.stats.rows_read == 0:
                raise FileRejected(f"{self.name} is empty (no Bombora rows)")
            if self.stats.loaded == 0:  # nothing valid (or only rows of other weeks): never swap in an empty week
                exc = FileRejected(
                    f"no row of {self.name} could be loaded ({self.stats.quarantined:,} quarantined): "
                    + "; ".join(sorted({r for _, r, _ in self.stats.bad})[:3])
                )
                exc.bad = self.stats.bad  # type: ignore[attr-defined]
                raise exc
            fault_point("bombora:after_copy")
            self._finish_table(table)
            self.topic_ids = set(self.topic_counts)
            return self.stats
        except BaseException:
            self.copier.close()
            if created:
                drop_staging(table)
            raise
        finally:
            blocks.close()  # stops the parsing thread before its file is closed
            stream.close()
            raw.close()

    def _settle_week(self, good: pl.DataFrame) -> None:
        if self.week is not None:
            return
        if "week" in good.columns:
            weeks = good["week"].drop_nulls()
            if len(weeks):
                self.week = weeks[0]
                check_not_too_old(self.week)  # as for a week from --date or the file name
                return
        raise WeekUnknown(
            f"{self.name}: no week: put the date (YYYYMMDD) in the file name, pass --date YYYY-MM-DD, "
            "or add a Week column"
        )

    def _restrict_week(self, good: pl.DataFrame) -> pl.DataFrame:
        if "week" not in good.columns:
            return good
        other = good.filter(pl.col("week").is_not_null() & (pl.col("week") != self.week))
        if other.height:
            assert self.week is not None
            self.stats.add_bad(
                [
                    (line, f"week {week:%Y-%m-%d} is not the file's week ({self.week:%Y-%m-%d})", raw[:RAW_MAX])
                    for line, week, raw in other.select(LINE, "week", RAW).iter_rows()
                ]
            )
            good = good.filter(pl.col("week").is_null() | (pl.col("week") == self.week))
        return good

    def _write(self, table: str, rows: pl.DataFrame) -> None:
        if rows.is_empty():
            return
        starts = domain_runs(rows["domain"])
        rows, duplicates = merge_duplicates(rows, starts)
        if duplicates:  # merged in the rows' own order: the runs are still sorted, fewer
            starts = domain_runs(rows["domain"])
        self.stats.duplicates += duplicates
        domain = rows["domain"]
        first, last = (domain[0], domain[-1]) if starts is not None else (domain.min(), domain.max())
        if self.stats.last_domain is not None and first is not None and str(first) <= self.stats.last_domain:
            self.stats.sorted_by_domain = False
        if last is not None and (self.stats.last_domain is None or str(last) > self.stats.last_domain):
            self.stats.last_domain = str(last)
        summary = domain_summary(rows, starts)
        self.stats.loaded += rows.height
        self.stats.domains += summary.height
        self.stats.surging += int(summary["surging"].sum())
        self.copier.submit(f"{table}_d", summary, DOMAIN_COLUMNS)  # while the file is read
        if self.stats.sorted_by_domain:
            self.week_rows.add(rows, starts)  # COPYed once the file is read, sorted by (topic_id, domain)
        else:  # not sorted by domain: the week is merged in SQL (_finish_table), so the order is moot
            self._copy_held(table, ordered=False)
            self.copier.submit(table, rows)
        # Per topic: domains and surging (a topic id is a small positive primary key: counted by bincount).
        topic = rows["topic_id"].to_numpy()
        domains = np.bincount(topic)
        surging = np.bincount(topic, weights=rows["score"].to_numpy() >= SURGE_THRESHOLD, minlength=len(domains))
        for topic_id in np.flatnonzero(domains):
            counts = self.topic_counts.setdefault(int(topic_id), [0, 0])
            counts[0] += int(domains[topic_id])
            counts[1] += int(surging[topic_id])

    def _copy_held(self, table: str, ordered: bool) -> None:
        """COPY the held rows, sorted by (topic_id, domain) when `ordered`: on one connection, one COPY after the
        other, the heap is then in the index's order and the index build in _finish_table is a pass over presorted
        keys (PostgreSQL checks for that before sorting) rather than a full sort."""
        for part in self.week_rows.chunks(ordered=ordered):
            self.copier.submit(table, part, freeze=ordered)

    def _finish_table(self, table: str) -> None:
        with connection.cursor() as cursor:
            if not self.stats.sorted_by_domain:
                # Blocks overlapped in domains: merge duplicates across the whole week in SQL.
                merged = f"{table}_m"
                create_staging(merged, self.week)  # type: ignore[arg-type]
                cursor.execute(
                    f"INSERT INTO public.{merged} (domain, topic_id, score, volume, surging) "
                    f"SELECT domain, topic_id, max(score), max(volume), bool_or(surging) FROM public.{table} "
                    "GROUP BY domain, topic_id"
                )
                kept = cursor.rowcount
                self.stats.duplicates += self.stats.loaded - kept
                self.stats.loaded = kept
                cursor.execute(f"DROP TABLE public.{table}")
                cursor.execute(f"ALTER TABLE public.{merged} RENAME TO {table}")
                cursor.execute(f"ALTER TABLE public.{table} RENAME CONSTRAINT {merged}_week TO {table}_week")
                cursor.execute(f"TRUNCATE public.{table}_d")
                cursor.execute(
                    f"INSERT INTO public.{table}_d ({', '.join(DOMAIN_COLUMNS)}) SELECT domain, count(*), "
                    f"count(*) FILTER (WHERE score >= {SURGE_THRESHOLD}), max(score) FROM public.{table} GROUP BY domain"
                )
                self.stats.domains = cursor.rowcount
                cursor.execute(f"SELECT count(*) FILTER (WHERE score >= {SURGE_THRESHOLD}) FROM public.{table}")
                self.stats.surging = cursor.fetchone()[0]
                cursor.execute(
                    f"SELECT topic_id, count(*), count(*) FILTER (WHERE score >= {SURGE_THRESHOLD}) "
                    f"FROM public.{table} GROUP BY topic_id"
                )
                self.topic_counts = {int(t): [int(n), int(k)] for t, n, k in cursor.fetchall()}
            # Keys in heap order (a file sorted by domain, COPYed sorted by (topic_id, domain)): PostgreSQL's sort
            # finds them presorted, and one in-memory pass is cheapest (20M keys: 9.0 CPU-s with 2 GB, 11.5 with
            # 128 MB, whose presorted runs go to temporary files only to be merged back; 7.6 vs 8.9 without the
            # parallel workers, which add CPU but use the second core).
            # Keys in file order (an unsorted file, merged in SQL above): sorting in runs of a few tens of MB each
            # (per parallel participant) merged from temporary files beats one in-memory sort of every key: at 10M
            # keys 512 MB took ~40 % more CPU than 128 MB (the comparisons of a big in-memory sort miss the cache).
            # Session setting, reset right after.
            memory = index_memory(self.stats.loaded, presorted=self.stats.sorted_by_domain)
            cursor.execute(f"SET maintenance_work_mem = '{memory}'")
            try:
                cursor.execute(f"CREATE INDEX {table}_td ON public.{table} (topic_id, domain)")
                cursor.execute(f"CREATE INDEX {table}_d_domain ON public.{table}_d (domain)")
            finally:
                cursor.execute("RESET maintenance_work_mem")
            cursor.execute(f"ANALYZE public.{table}")
            cursor.execute(f"ANALYZE public.{table}_d")
