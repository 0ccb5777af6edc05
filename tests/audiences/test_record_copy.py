"""A version's rows go to PostgreSQL as COPY text (no quoting; only columns holding special characters escaped;
all-null columns left out): what comes back is exactly what was sent, whatever the values hold."""

from __future__ import annotations

import json
from typing import Any

import polars as pl
import pytest
from django.db import connection
from django_tenants.utils import schema_context
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audiences import records

pytestmark = pytest.mark.django_db

VERSION = 987_654  # no real version has this id in a test database

# Text that COPY's text format gives a meaning to, and text that only looks like it
nasty = st.sampled_from(["\\", "\t", "\n", "\r", "\\N", "\\.", "\\t", '"', ",", "", " ", "é€", "\x01"])
text = st.one_of(st.none(), st.lists(st.one_of(nasty, st.text(max_size=4)), max_size=4).map("".join))


def _without_nul(value: str | None) -> str | None:
    return value.replace("\x00", "") if value is not None else None  # PostgreSQL text cannot hold NUL


@st.composite
def frames(draw: st.DrawFn) -> pl.DataFrame:
    height = draw(st.integers(min_value=1, max_value=6))
    column = st.lists(text, min_size=height, max_size=height).map(lambda xs: [_without_nul(x) for x in xs])
    custom = st.lists(
        st.one_of(st.none(), st.dictionaries(st.sampled_from(["a", "b\\c", "t\tab"]), text.map(_without_nul))),
        min_size=height,
        max_size=height,
    )
    revenue = st.lists(st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)), min_size=height, max_size=height)
    return records.conform(
        pl.DataFrame(
            {
                "line": list(range(2, height + 2)),
                "email": draw(column),
                "first_name": draw(column),
                "city": [None] * height,  # null in every row: left out of the COPY
                "revenue": draw(revenue),
                "custom": [json.dumps(c) if c is not None else None for c in draw(custom)],
            },
            schema_overrides={"revenue": pl.Int64},
        )
    )


def _stored(version_id: int) -> list[dict[str, Any]]:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT version_id, row, line, {', '.join(records.STORED_COLUMNS)} "
            f"FROM {records.partition_name(version_id)} ORDER BY row"
        )
        names = [d[0] for d in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    for row in rows:  # Django's connection hands jsonb back as its text
        if isinstance(row["custom"], str):
            row["custom"] = json.loads(row["custom"])
    return rows


def _expected(frame: pl.DataFrame, first_row: int) -> list[dict[str, Any]]:
    rows = []
    for index, row in enumerate(frame.to_dicts()):
        custom = json.loads(row["custom"]) if row["custom"] is not None else None
        rows.append({"version_id": VERSION, "row": first_row + index, **row, "custom": custom})
    return rows


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frame=frames(), first_row=st.integers(0, 1000))
def test_copied_rows_come_back_exactly(acme: Any, frame: pl.DataFrame, first_row: int) -> None:
    with schema_context("org_acme"):
        records.create_partition(VERSION)
        try:
            records.copy_frame(VERSION, frame, first_row=first_row)
            assert _stored(VERSION) == _expected(frame, first_row)
        finally:
            records.drop_partition(VERSION)


def test_null_columns_are_left_out_and_special_columns_alone_are_escaped() -> None:
    frame = records.conform(
        pl.DataFrame({"line": [2, 3], "email": ["a\tb", "c"], "first_name": ["plain", "text"], "custom": [None, None]})
    )
    payload = records.copy_payload_of(VERSION, frame, first_row=0)
    assert payload.columns == ("version_id", "row", "line", "email", "first_name")
    assert payload.data == f"{VERSION}\t0\t2\ta\\tb\tplain\n{VERSION}\t1\t3\tc\ttext\n".encode()


def test_a_literal_backslash_n_is_text_not_null(acme: Any) -> None:
    """(The CSV payload before session 10 sent the text `\\N` unquoted, so it was stored as NULL.)"""
    frame = records.conform(pl.DataFrame({"line": [2, 3], "email": ["\\N", None]}))
    with schema_context("org_acme"):
        records.create_partition(VERSION)
        records.copy_frame(VERSION, frame, first_row=0)
        assert [row["email"] for row in _stored(VERSION)] == ["\\N", None]


def test_records_columns_have_no_defaults(acme: Any) -> None:
    """Columns left out of a COPY are stored as NULL only because the table gives them no default."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM information_schema.columns WHERE table_name = %s AND column_default IS NOT NULL",
            [records.TABLE],
        )
        assert cursor.fetchone()[0] == 0
