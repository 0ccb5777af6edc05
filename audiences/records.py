"""Audience records: one partition of `audiences_record` per audience version.

Why partitions: a version is written once (COPY into a fresh, index-free table inside the import's
transaction), read whole by the builder's column loader, and dropped whole by retention. None of that
needs row-level indexes, and dropping a table is instant where deleting ten million rows is not.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import polars as pl
from django.db import connection, transaction

TABLE = "audiences_record"

# (column, PostgreSQL type, polars type): the stored columns, the contract's canonical fields, then the derived ones.
RECORD_COLUMNS: list[tuple[str, str, type[pl.DataType] | pl.DataType]] = [
    ("email", "text", pl.String),
    ("email_normalized", "text", pl.String),
    ("phone", "text", pl.String),
    ("phone_e164", "text", pl.String),
    ("first_name", "text", pl.String),
    ("last_name", "text", pl.String),
    ("job_title", "text", pl.String),
    ("company_name", "text", pl.String),
    ("domain", "text", pl.String),
    ("industry", "text", pl.String),
    ("revenue", "bigint", pl.Int64),
    ("employee_count", "integer", pl.Int32),
    ("country", "text", pl.String),
    ("region", "text", pl.String),
    ("city", "text", pl.String),
    ("postal_code", "text", pl.String),
    ("maid", "text", pl.String),
    ("maid_type", "text", pl.String),
    ("ip", "text", pl.String),
    ("custom", "jsonb", pl.String),
]
STORED_COLUMNS = [name for name, _, _ in RECORD_COLUMNS]
# The UID2 hashes (standard Base64 of the SHA-256 of the UTF-8 base value) are not stored (issue 17: 28 % of the
# table, and the import's hashing and COPY parsing): every reader derives them from their base column, in SQL by
# `column_sql`/`select_list` (the `uid2_hash(text)` function of migration 0009, inlined here so that a reader
# needs no search path) and in polars by `normalize.uid2_hashes`.
DERIVED: dict[str, str] = {"email_sha256": "email_normalized", "phone_sha256": "phone_e164"}
# The record's data columns as readers see them, in the contract's order: each derived hash after its base.
DATA_COLUMNS = [
    column
    for name in STORED_COLUMNS
    for column in (name, *(derived for derived, base in DERIVED.items() if base == name))
]
# Bookkeeping columns: the ordinal of the row in its version, and the source line it came from.
ALL_COLUMNS = ["version_id", "row", "line", *STORED_COLUMNS]
# polars type of every data column a reader can ask for.
COLUMN_TYPES: dict[str, type[pl.DataType] | pl.DataType] = {
    **{name: dtype for name, _, dtype in RECORD_COLUMNS},
    **{name: pl.String for name in DERIVED},
}

CREATE_TABLE_SQL = (
    f"CREATE TABLE {TABLE} (version_id bigint NOT NULL, row bigint NOT NULL, line bigint NOT NULL, "
    + ", ".join(f"{name} {pg}" for name, pg, _ in RECORD_COLUMNS)
    + ") PARTITION BY LIST (version_id)"
)


def uid2_hash_sql(value: str) -> str:
    """SQL of the UID2 hash of a text expression: equal to `normalize.uid2_hash` on every text (tests prove it).

    `convert_to` is STABLE, so the UTF-8 bytes come from `decode(..., 'escape')` with every backslash doubled
    (a text holds no NUL); every function here is IMMUTABLE, like migration 0009's `uid2_hash(text)`."""
    return f"encode(sha256(decode(replace({value}, '\\', '\\\\'), 'escape')), 'base64')"


def column_sql(alias: str, name: str) -> str:
    """A data column of a record row aliased `alias`: the stored column, or a derived hash computed from its base."""
    prefix = f"{alias}." if alias else ""
    base = DERIVED.get(name)
    return f"{prefix}{name}" if base is None else uid2_hash_sql(f"{prefix}{base}")


def row_select(alias: str) -> str:
    """The SELECT list of a whole record row as readers see it (what `alias.*` gave when the hashes were stored):
    the bookkeeping columns, then every data column, derived ones computed (only where a query uses them: the
    planner drops unused outputs of a flattened subquery)."""
    return select_list(alias, ["version_id", "row", "line", *DATA_COLUMNS])


def select_list(alias: str, columns: Iterable[str]) -> str:
    """A SELECT list of data columns (and bookkeeping ones) of rows aliased `alias`, derived ones computed."""
    prefix = f"{alias}." if alias else ""
    return ", ".join(f"{column_sql(alias, c)} AS {c}" if c in DERIVED else f"{prefix}{c}" for c in columns)


def partition_name(version_id: int) -> str:
    return f"{TABLE}_v{int(version_id)}"


def qualified(schema: str, version_id: int) -> str:
    """Schema-qualified: loader threads and streamed responses do not share the request's search path."""
    return f'"{schema}".{partition_name(version_id)}'


def create_partition(version_id: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE {partition_name(version_id)} PARTITION OF {TABLE} FOR VALUES IN ({int(version_id)})"
        )


def create_detached(cursor: Any, schema: str, version_id: int) -> None:
    """A table shaped like a partition, loaded before it is attached (the CHECK makes ATTACH skip its scan)."""
    cursor.execute(
        f'CREATE TABLE {qualified(schema, version_id)} (LIKE "{schema}".{TABLE}, '
        f"CONSTRAINT {partition_name(version_id)}_version CHECK (version_id = {int(version_id)}))"
    )


def attach(cursor: Any, schema: str, version_id: int) -> None:
    """Attach a loaded detached table as the version's partition (its statistics were gathered by the parallel
    loader before: `ParallelLoader.analyzed`)."""
    cursor.execute(
        f'ALTER TABLE "{schema}".{TABLE} ATTACH PARTITION {qualified(schema, version_id)} '
        f"FOR VALUES IN ({int(version_id)})"
    )


def drop_partition(version_id: int, schema: str | None = None) -> None:
    name = qualified(schema, version_id) if schema else partition_name(version_id)
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {name}")


def conform(frame: pl.DataFrame) -> pl.DataFrame:
    """Every data column present with its type (missing ones null), in table order."""
    exprs = []
    for name, _, dtype in RECORD_COLUMNS:
        if name in frame.columns:
            exprs.append(pl.col(name).cast(dtype))
        else:
            exprs.append(pl.lit(None, dtype=dtype).alias(name))
    return frame.select(pl.col("line").cast(pl.Int64), *exprs)


@dataclass(frozen=True)
class CopyPayload:
    """Rows encoded for `COPY ... FROM STDIN (FORMAT text)`, and the columns they fill, in order."""

    columns: tuple[str, ...]
    data: bytes


# The characters COPY's text format gives a meaning to inside a field (a backslash escape, the field and row ends).
_TEXT_SPECIAL = r"[\\\t\n\r]"
_TEXT_ESCAPES = (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r"))  # the backslash first


def copy_payload_of(version_id: int, frame: pl.DataFrame, *, first_row: int) -> CopyPayload:
    """A conformed frame as COPY text, numbering rows from `first_row` (polars encodes, no Python loop).

    Text, not CSV: no field is quoted, so polars writes each value as it is and PostgreSQL's text parser does less
    per byte than its CSV parser (`CopyReadLine` and the attribute split were ~32 % of the backend's COPY CPU in CSV,
    ~25 % in text). Only a column that holds a backslash, tab, CR or LF in this batch is escaped (rare: a pass over
    the strings finds none in most files). Columns that are null in every row of the batch are left out of the
    column list: the table has no defaults, so PostgreSQL stores NULL without parsing anything.
    """
    present = [name for name in frame.columns if frame[name].null_count() < frame.height]
    strings = [name for name in present if frame.schema[name] == pl.String]
    # each column's values joined into one string and searched once: a regex call per value cost twice as much
    special = frame.select(pl.col(strings).str.join("").str.contains(_TEXT_SPECIAL)).row(0) if strings else ()
    escaped = {name for name, found in zip(strings, special, strict=True) if found}
    values = [_text_escaped(pl.col(name)) if name in escaped else pl.col(name) for name in present]
    out = frame.select(
        pl.lit(int(version_id), dtype=pl.Int64).alias("version_id"),
        (pl.int_range(0, frame.height, dtype=pl.Int64) + first_row).alias("row"),
        *values,
    )
    buffer = io.BytesIO()
    out.write_csv(buffer, include_header=False, separator="\t", null_value="\\N", quote_style="never")
    return CopyPayload(columns=("version_id", "row", *present), data=buffer.getvalue())


def _text_escaped(column: pl.Expr) -> pl.Expr:
    for char, escape in _TEXT_ESCAPES:
        column = column.str.replace_all(char, escape, literal=True)
    return column


def copy_payload(cursor: Any, table: str, payload: CopyPayload) -> None:
    sql = f"COPY {table} ({', '.join(payload.columns)}) FROM STDIN (FORMAT text)"
    with cursor.copy(sql) as copy:
        view = memoryview(payload.data)
        for start in range(0, len(view), 1 << 20):
            copy.write(view[start : start + (1 << 20)])


def copy_frame(version_id: int, frame: pl.DataFrame, *, first_row: int) -> int:
    """COPY a conformed frame into the version's partition (current connection and transaction)."""
    if frame.height == 0:
        return 0
    with connection.cursor() as cursor:
        copy_payload(cursor, partition_name(version_id), copy_payload_of(version_id, frame, first_row=first_row))
    return frame.height


def copy_version(
    cursor: Any, schema: str, source_id: int, target_id: int, *, key: str = "", skip_keys: list[str] | None = None
) -> int:
    """Copy a version's rows into another (append keeps the old records), except the rows whose
    dedupe key is in `skip_keys` (this import replaces them). Rows keep their ordinals."""
    columns = ", ".join(["row", "line", *STORED_COLUMNS])
    where = "true"
    if skip_keys:
        # IF NOT EXISTS + TRUNCATE: several imports may share one outer transaction (tests, scripts).
        cursor.execute("CREATE TEMP TABLE IF NOT EXISTS _replaced_keys (key text PRIMARY KEY) ON COMMIT DROP")
        cursor.execute("TRUNCATE _replaced_keys")
        with cursor.copy("COPY _replaced_keys (key) FROM STDIN") as copy:
            for value in skip_keys:
                copy.write_row((value,))
        where = f"NOT EXISTS (SELECT 1 FROM _replaced_keys k WHERE k.key = {key_sql(key, 's')})"
    cursor.execute(
        f"INSERT INTO {qualified(schema, target_id)} (version_id, {columns}) "
        f"SELECT %s, {columns} FROM {qualified(schema, source_id)} s WHERE {where}",
        [target_id],
    )
    return int(cursor.rowcount)


def key_sql(column: str, alias: str) -> str:
    """The SQL expression of a dedupe key on a record row (custom keys live in the JSON column)."""
    if column.startswith("custom."):
        name = column.removeprefix("custom.").replace("'", "''")
        return f"lower(trim({alias}.custom ->> '{name}'))"
    if column not in DATA_COLUMNS:
        raise ValueError(f"unknown dedupe key {column!r}")
    return f"lower(({column_sql(alias, column)})::text)"


def read_version(version_id: int, columns: Iterable[str] | None = None, *, where: str = "true") -> pl.DataFrame:
    """A version's rows as a frame (for exports and tests; the builder reads column-wise itself)."""
    wanted = list(columns or ["row", "line", *DATA_COLUMNS])
    sql = (
        f"COPY (SELECT {select_list('s', wanted)} FROM {partition_name(version_id)} s WHERE {where} ORDER BY s.row) "
        "TO STDOUT (FORMAT csv, HEADER)"
    )
    buffer = io.BytesIO()
    with connection.cursor() as cursor, cursor.copy(sql) as copy:  # type: ignore[attr-defined]
        for chunk in copy:
            buffer.write(chunk)
    buffer.seek(0)
    schema = {c: COLUMN_TYPES.get(c, pl.Int64) for c in wanted}
    if buffer.getbuffer().nbytes == 0:
        return pl.DataFrame(schema=schema)
    return pl.read_csv(buffer, schema=schema)


def read_version_keys(version_id: int, key: str, keys: list[str]) -> pl.DataFrame:
    """The version's rows whose dedupe key is in `keys` (the merge rule against existing records)."""
    with transaction.atomic():  # the temporary table lives until commit: keep it for the read below
        return _read_version_keys(version_id, key, keys)


def _read_version_keys(version_id: int, key: str, keys: list[str]) -> pl.DataFrame:
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE IF NOT EXISTS _wanted_keys (key text) ON COMMIT DROP")
        cursor.execute("TRUNCATE _wanted_keys")
        with cursor.copy("COPY _wanted_keys (key) FROM STDIN") as copy:  # type: ignore[attr-defined]
            for value in keys:
                copy.write_row((value,))
    return read_version(
        version_id, ["line", *STORED_COLUMNS], where=f"{key_sql(key, 's')} IN (SELECT key FROM _wanted_keys)"
    )


def next_row(schema: str, version_id: int) -> int:
    """The first free row ordinal after a version's rows (appended rows come after the kept ones)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT coalesce(max(row) + 1, 0) FROM {qualified(schema, version_id)}")
        return int(cursor.fetchone()[0])


def count_version(version_id: int) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {partition_name(version_id)}")
        return int(cursor.fetchone()[0])
