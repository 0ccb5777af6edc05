"""Import step 2, the stage: read the batches, normalise them, quarantine bad rows, stage good rows on local disk.

`normalised` yields the good rows batch by batch; the `first` rule streams them straight to COPY (pipeline.py),
`stage` writes them to disk for `last` and `merge`, which need the whole file before placing any row.

Normalised rows go to local disk (LZ4 Parquet parts) so memory stays bounded; only a 64-bit hash of each
row's dedupe key stays in memory for the dedupe step. Returns a `Staged` value; calls nothing above it.
(Uncompressed Arrow IPC parts were tried: cheaper to write and read, but the 10M-row import then peaked at
3.1 GB RSS instead of 1.8 GB, over the 2 GB goal.)
"""

from __future__ import annotations

import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import psutil

from audiences.import_source import ImportFailed, open_batches
from audiences.models import AudienceImport
from audiences.normalize_batch import normalize_batch
from p360.core.intake.reader import QUARANTINE_SCHEMA, ROW, RestartCarefully

if TYPE_CHECKING:
    from p360.core.jobs.services import JobContext

KEY = "__key"
HASH_SEED = 360


@dataclass
class Staged:
    """The staged file: its Parquet parts, key hashes, quarantined rows, and the timings of every phase."""

    parts: list[Path] = field(default_factory=list)
    keys: list[pl.DataFrame] = field(default_factory=list)
    quarantine: list[pl.DataFrame] = field(default_factory=list)
    rows_read: int = 0
    blank_lines: int = 0
    field_filled: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    # CPU-seconds of the whole process while each phase ran: normalising works on helper threads and polars'
    # pool, which the importing thread's own clock never saw (it showed ~1 CPU-s for a 10M-row normalise). In the
    # streamed path the COPY workers run alongside and are counted in the phase they overlap; their own share
    # is also given apart (`copy_workers`, set by the pipeline).
    cpu: dict[str, float] = field(default_factory=dict)
    memory: dict[str, int] = field(default_factory=dict)  # MB of RSS seen at the end of each phase
    # Where the process's peak RSS was reached: the kernel's high-water mark (VmHWM, exact, no sampling) read as
    # each phase starts and ends; a phase (or `before` the first phase, or `between` two) that raised it is
    # recorded with the mark it left, in MB. The end-of-phase RSS never saw the 10M import's 3.3 GB peak.
    peak_memory: dict[str, int] = field(default_factory=dict)
    _mark: int | None = None  # the high-water mark when the last phase ended (None before the first phase)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time a phase (shown in the report, so slow imports can be explained)."""
        start, cpu = time.perf_counter(), time.process_time()
        self.note_peak("before" if self._mark is None else "between")
        try:
            yield
        finally:
            self.note_peak(name)
            self.timings[name] = round(self.timings.get(name, 0.0) + time.perf_counter() - start, 3)
            # CPU too: wall time on a busy machine says little about what a phase costs
            self.cpu[name] = round(self.cpu.get(name, 0.0) + time.process_time() - cpu, 3)
            rss = psutil.Process().memory_info().rss // (1 << 20)
            self.memory[name] = max(self.memory.get(name, 0), rss)

    def note_peak(self, where: str) -> None:
        """Attribute any rise of the high-water mark since the last look to `where`."""
        mark = peak_rss_mb()
        if mark > (self._mark or 0):
            self.peak_memory[where] = max(self.peak_memory.get(where, 0), mark)
        self._mark = max(mark, self._mark or 0)

    def reset(self) -> None:
        for part in self.parts:
            part.unlink(missing_ok=True)
        self.parts, self.keys, self.quarantine, self.rows_read, self.field_filled = [], [], [], 0, {}
        self.timings, self.cpu = {}, {}


def peak_rss_mb() -> int:
    """The process's peak RSS so far in MB: VmHWM from /proc (Linux), else getrusage's ru_maxrss."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def default_dedupe_key(mapping: dict[str, str]) -> str:
    fields = set(mapping.values())
    return "email_normalized" if "email" in fields else "domain"


def key_expr(key: str) -> pl.Expr:
    if key.startswith("custom."):
        name = key.removeprefix("custom.")
        return pl.col("custom").str.json_path_match(f"$.{name}").str.strip_chars().str.to_lowercase()
    return pl.col(key).cast(pl.String).str.to_lowercase() if key else pl.lit(None, dtype=pl.String)


def read_part(part: Path, columns: list[str] | None = None) -> pl.DataFrame:
    """A staged part (or some of its columns)."""
    return pl.read_parquet(part, columns=columns)


def stage(imp: AudienceImport, path: Path, info: Any, tmp: Path, ctx: JobContext | None) -> tuple[Staged, int]:
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
    for number, good in enumerate(normalised(imp, path, info, tmp, ctx, staged, careful=careful)):
        part = tmp / f"part-{number:05d}.parquet"
        with staged.phase("stage"):
            good.write_parquet(part, compression="lz4")
        staged.parts.append(part)
        # Only a 64-bit hash of each key stays in memory (20 bytes a row); the few rows whose hash
        # repeats are compared by their real keys later, read back from the staged part.
        hashed = pl.when(pl.col(KEY).is_not_null()).then(pl.col(KEY).hash(seed=HASH_SEED))
        staged.keys.append(good.select("line", pl.lit(number, dtype=pl.Int32).alias("part"), hashed.alias("h")))
    return staged, staged.blank_lines


def normalised(
    imp: AudienceImport,
    path: Path,
    info: Any,
    tmp: Path,
    ctx: JobContext | None,
    staged: Staged,
    *,
    careful: bool = False,
) -> Iterator[pl.DataFrame]:
    """The file's good rows, batch by batch: normalised, with `line` and the dedupe key (`__key`).

    Bad rows go to `staged.quarantine`; rows read, filled fields and blank lines are counted on `staged`.
    May raise `RestartCarefully` part-way (the fast reader gave up): the caller then starts again with
    `careful=True` and discards what it did with the batches already yielded.
    """
    with staged.phase("check_and_scan"):
        batches, reader, total = open_batches(path, info, tmp)
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
    while True:
        with staged.phase("read"):
            batch = next(iterator, None)
        if batch is None:
            break
        staged.rows_read += batch.height
        with staged.phase("normalise"):
            batch = _quarantine_empty_rows(batch, staged)
            result = normalize_batch(
                batch,
                mapping,
                custom_types=imp.custom_types,
                default_country=imp.default_country or "US",
                hashes=False,  # not stored: readers derive them (records.DERIVED)
            )
        if result.errors.height:
            staged.quarantine.append(_first_error_per_row(result.errors))
        good = result.records.rename({ROW: "line"}).with_columns(key_expr(key).alias(KEY))
        for column in good.columns:
            if column not in {"line", KEY}:
                staged.field_filled[column] = staged.field_filled.get(column, 0) + int(good[column].is_not_null().sum())
        done = int(batch[ROW].cast(pl.Int64).max() or done) if batch.height else done  # type: ignore[arg-type]
        yield good
        if ctx is not None:
            ctx.progress(min(done, total), total, rows_read=staged.rows_read)
    if reader is not None:
        staged.rows_read += reader.scan.quarantine.height
        staged.quarantine.append(reader.scan.quarantine)
        staged.blank_lines = len(reader.scan.blank)


def _quarantine_empty_rows(batch: pl.DataFrame, staged: Staged) -> pl.DataFrame:
    values = [c for c in batch.columns if c != ROW]
    if not values:
        return batch
    # The first column alone rules out almost every row (stripping all the columns of every row cost about a
    # sixth of normalising them); the other columns are only looked at on the rows left.
    maybe = batch.filter(_blank(values[0]))
    if not maybe.height:
        return batch
    bad = maybe.filter(pl.all_horizontal([_blank(c) for c in values[1:]])) if len(values) > 1 else maybe
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
        return batch.filter(~pl.col(ROW).is_in(bad[ROW].implode()))
    return batch


def _blank(column: str) -> pl.Expr:
    return pl.col(column).fill_null("").str.strip_chars() == ""


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
