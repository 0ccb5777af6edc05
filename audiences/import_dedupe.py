"""Import step 3, dedupe: which staged rows become records, decided in polars (exact: hashes only narrow the search).

Reads the staged parts and, for the merge rule, the existing records with the same keys; returns a `Plan`.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from django.db import connection

from audiences import records
from audiences.import_stage import HASH_SEED, KEY, Staged, key_expr, read_part
from audiences.models import Audience, AudienceImport, DedupeRule


@dataclass
class Plan:
    keep_lines: pl.DataFrame  # (line, part) of this file's rows loaded as new records
    merged: pl.DataFrame | None  # merged records (merge rule) that replace their groups
    replace_keys: list[str]  # keys whose existing records this import replaces
    duplicates: int


def existing_keys(audience: Audience | None, key: str) -> pl.DataFrame:
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


def plan_dedupe(imp: AudienceImport, staged: Staged, existing: pl.DataFrame, key: str, base_id: int | None) -> Plan:
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
        frame = read_part(staged.parts[int(part)], columns=["line", KEY])
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
    parts = [read_part(p).join(merge_keys, on=KEY, how="semi") for p in staged.parts]
    rows = pl.concat(parts, how="diagonal_relaxed").with_columns(pl.col("line").alias("__order")) if parts else None
    merged = None
    if rows is not None and rows.height:
        if base_id is not None and with_existing.height:
            old = records.read_version_keys(base_id, key, with_existing[KEY].to_list())
            old = old.with_columns(key_expr(key).alias(KEY), pl.lit(-1, dtype=pl.Int64).alias("__order"))
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


class KeyHashCollision(Exception):
    """Two different keys share a 64-bit hash (odds about n^2 / 2^65): the streamed `first` rule cannot decide
    those rows by hash, so the caller drops what it streamed and imports through the staged path (exact)."""


def key_hashes(keys: pl.Series) -> pl.Series:
    """64-bit hashes of the dedupe keys (the same seed as the staged path's)."""
    return keys.hash(seed=HASH_SEED)


# One-byte slots on the hashes' top bits: at most 2^26 (64 MiB; 10M taken keys fill 14 %, so 86 % of new keys
# need no search), grown with the keys taken so that a small import never touches 64 MiB.
MIN_SLOT_BITS, MAX_SLOT_BITS = 16, 26


class SeenKeys:
    """The dedupe keys already taken (existing records' and this file's kept rows'), for the `first` rule while
    streaming: a row is loaded when its key is new, decided the moment its batch is normalised.

    In memory: only a 64-bit hash per taken key (8 bytes; the exact keys, about 40 bytes each plus polars'
    per-string overhead, took a 10M-row import to 3.3 GB), in sorted numpy runs merged like a log-structured
    tree (a run is merged into the one before it once it is at least half its size), so a batch is checked with
    one binary search per run and each hash is re-sorted only O(log n) times.
    Exact: the taken keys with their hashes are spilled to local disk (Arrow IPC, one file a batch). A row whose
    key hash was taken in an earlier batch is dropped as a duplicate and remembered; `verify` then checks that
    each of those rows' exact key was taken, and raises `KeyHashCollision` if one was not (a different key with
    the same hash). Within a batch, duplicates are decided on the exact keys.
    """

    def __init__(self, existing: pl.DataFrame, spill_dir: Path) -> None:
        self.runs: list[np.ndarray] = []
        self.slot_bits, self.taken_count = MIN_SLOT_BITS, 0
        self.slots = np.zeros(1 << self.slot_bits, dtype=bool)
        self.spill_dir = spill_dir
        self.spills: list[Path] = []
        self.dropped: list[pl.DataFrame] = []  # (h, key) of rows dropped on the hash of an earlier batch's key
        spill_dir.mkdir(parents=True, exist_ok=True)
        if existing.height:
            self._take(existing.select(pl.col(KEY)).drop_nulls().unique())

    def first_new(self, keys: pl.Series) -> pl.Series:
        """True for the rows to load: a null key, or a key neither taken before nor earlier in this batch.

        The loaded keys are then taken.
        """
        frame = pl.DataFrame({KEY: keys}, schema={KEY: pl.String}).with_columns(
            key_hashes(pl.Series(KEY, keys, dtype=pl.String)).alias("h"),
            pl.col(KEY).is_first_distinct().alias("first"),
        )
        taken = pl.Series("taken", self._taken(frame["h"].to_numpy()), dtype=pl.Boolean)
        frame = frame.with_columns(taken.alias("taken"))
        has_key = pl.col(KEY).is_not_null()
        frame = frame.with_columns(keep=~has_key | (pl.col("first") & ~pl.col("taken")))
        later = frame.filter(has_key & pl.col("first") & pl.col("taken")).select("h", KEY)
        if later.height:
            self.dropped.append(later)
        self._take(frame.filter(has_key & pl.col("keep")).select(KEY, "h"))
        return frame["keep"]

    def verify(self) -> None:
        """Raise `KeyHashCollision` unless every row dropped on a hash had exactly a taken key."""
        if not self.dropped:
            return
        dropped = pl.concat(self.dropped)
        wanted = dropped["h"].unique().implode()
        spilled = pl.scan_ipc(self.spills).filter(pl.col("h").is_in(wanted)).select("h", KEY).collect()
        if dropped.join(spilled, on=["h", KEY], how="anti").height:
            raise KeyHashCollision("two different dedupe keys share a 64-bit hash")

    def _take(self, frame: pl.DataFrame) -> None:
        if "h" not in frame.columns:
            frame = frame.with_columns(key_hashes(frame[KEY]).alias("h"))
        if not frame.height:
            return
        spill = self.spill_dir / f"keys-{len(self.spills):05d}.arrow"
        frame.select("h", KEY).write_ipc(spill)
        self.spills.append(spill)
        hashes = frame["h"].to_numpy()
        self._push(np.sort(hashes))
        self.taken_count += len(hashes)
        wanted = min(MAX_SLOT_BITS, max(MIN_SLOT_BITS, (self.taken_count * 8).bit_length()))
        if wanted > self.slot_bits:  # at most 1/8 of the slots filled: rebuilt larger, from the runs
            self.slot_bits = wanted
            self.slots = np.zeros(1 << wanted, dtype=bool)
            for run in self.runs:
                self.slots[run >> np.uint64(64 - wanted)] = True
        else:
            self.slots[hashes >> np.uint64(64 - self.slot_bits)] = True

    def _taken(self, hashes: np.ndarray) -> np.ndarray:
        # A byte per slot of the hashes' top bits rules out most new keys with one lookup; only the rest are
        # binary-searched in the runs (a search in a 10M-entry run costs a cache miss per step).
        maybe = self.slots[hashes >> np.uint64(64 - self.slot_bits)]
        taken = np.zeros(len(hashes), dtype=bool)
        candidates = np.flatnonzero(maybe)
        if len(candidates):
            needles = hashes[candidates]
            found = np.zeros(len(needles), dtype=bool)
            for run in self.runs:
                at = np.minimum(np.searchsorted(run, needles), len(run) - 1)
                found |= run[at] == needles
            taken[candidates] = found
        return taken

    def _push(self, run: np.ndarray) -> None:
        self.runs.append(run)
        while len(self.runs) > 1 and len(self.runs[-1]) * 2 >= len(self.runs[-2]):
            last = self.runs.pop()
            merged = np.concatenate([self.runs[-1], last])
            merged.sort(kind="stable")  # two sorted runs: a linear merge
            self.runs[-1] = merged
