"""Import step 3, dedupe: which staged rows become records, decided in polars (exact: hashes only narrow the search).

Reads the staged parts and, for the merge rule, the existing records with the same keys; returns a `Plan`.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

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


class SeenKeys:
    """The dedupe keys already taken (existing records' and this file's kept rows'), for the `first` rule while
    streaming: a row is loaded when its key is new, decided the moment its batch is normalised.

    Exact: the keys themselves are kept, in sorted runs merged like a log-structured tree (a run is merged
    into the one before it once it is at least half its size), so a batch is checked with one binary search
    per run and each key is re-sorted only O(log n) times. Memory: the distinct keys once (about 40 bytes
    for a typical email), where the staged path kept 20 bytes of hash per row plus the staged file.
    """

    def __init__(self, existing: pl.DataFrame) -> None:
        self.runs: list[pl.Series] = []
        if existing.height:
            self._push(existing[KEY].drop_nulls().unique().sort())

    def first_new(self, keys: pl.Series) -> pl.Series:
        """True for the rows to load: a null key, or a key neither taken before nor earlier in this batch.

        The loaded keys are then taken.
        """
        frame = pl.DataFrame({KEY: keys})
        taken = self._taken(keys)
        keep = frame.select(pl.col(KEY).is_null() | (pl.col(KEY).is_first_distinct() & ~pl.lit(taken))).to_series()
        fresh = keys.filter(keep & keys.is_not_null())
        if fresh.len():
            self._push(fresh.sort())
        return keep

    def _taken(self, keys: pl.Series) -> pl.Series:
        taken = pl.Series(KEY, [False] * keys.len(), dtype=pl.Boolean)
        for run in self.runs:
            at = run.search_sorted(keys).clip(upper_bound=run.len() - 1)
            taken = taken | (run.gather(at) == keys).fill_null(False)
        return taken

    def _push(self, run: pl.Series) -> None:
        self.runs.append(run)
        while len(self.runs) > 1 and self.runs[-1].len() * 2 >= self.runs[-2].len():
            last = pl.DataFrame({KEY: self.runs.pop()})
            self.runs[-1] = pl.DataFrame({KEY: self.runs[-1]}).merge_sorted(last, KEY)[KEY]
