"""Rows with no values are quarantined exactly as before the first-column shortcut: the same lines, the rest kept."""

from __future__ import annotations

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from audiences.import_stage import Staged, _quarantine_empty_rows
from p360.core.intake.reader import ROW

value = st.one_of(st.none(), st.sampled_from(["", " ", "\t", "\x1c", "\u00a0", "\u3000 ", "x", " a ", "0", "\u200b"]))


@settings(max_examples=150, deadline=None)
@given(
    st.integers(min_value=1, max_value=4).flatmap(
        lambda width: st.lists(st.lists(value, min_size=width, max_size=width), max_size=15)
    )
)
def test_empty_rows_match_a_strip_of_every_column(rows: list[list[str | None]]) -> None:
    width = len(rows[0]) if rows else 2
    columns = [f"c{i}" for i in range(width)]
    batch = pl.DataFrame(
        {ROW: list(range(2, len(rows) + 2)), **{c: [r[i] for r in rows] for i, c in enumerate(columns)}},
        schema={ROW: pl.Int64, **dict.fromkeys(columns, pl.String)},
    )
    # the previous definition: every column stripped on every row
    previous = pl.all_horizontal([pl.col(c).fill_null("").str.strip_chars() == "" for c in columns])
    empty = batch.select(previous).to_series().to_list()
    staged = Staged()
    kept = _quarantine_empty_rows(batch, staged)
    assert kept[ROW].to_list() == [line for line, bad in zip(batch[ROW], empty, strict=True) if not bad]
    quarantined = pl.concat(staged.quarantine)[ROW].to_list() if staged.quarantine else []
    assert quarantined == [line for line, bad in zip(batch[ROW], empty, strict=True) if bad]
    assert kept.columns == batch.columns
