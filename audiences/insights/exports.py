"""BI exports: an audience's members and its analytics as CSV or Parquet.

Machine files carry exact values (no spreadsheet escaping): BI tools read them, not people in Excel.

Members are the audience's members file (`GET .../audiences/<id>/members?format=csv`, the same rows and bytes):
the CSV is that stream as is; the Parquet is the same stream parsed in batches of about `BATCH_BYTES` of CSV, each
written as one row group and sent on at once, so memory holds one batch whatever the audience's size.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import polars as pl

from audiences import cache, records
from audiences.insights import selectors
from audiences.models import Audience
from audiences.selectors import members_csv_stream

FORMATS = {"csv": "text/csv; charset=utf-8", "parquet": "application/vnd.apache.parquet"}
BATCH_BYTES = 16 * 1024 * 1024  # CSV bytes per Parquet row group (memory: a few times this, not the audience)


def members_schema() -> dict[str, Any]:
    """The members file's columns with their types (`custom` is the JSON object as text)."""
    return {name: records.COLUMN_TYPES[name] for name in records.DATA_COLUMNS}


def members_csv(audience: Audience) -> Iterator[bytes]:
    return members_csv_stream(audience, for_people=False)


class _Sink(io.RawIOBase):
    """A write-only file for pyarrow's Parquet writer: collects what it writes until `take()` hands it on."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._position = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._parts.append(chunk)
        self._position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self._position

    def take(self) -> bytes:
        data, self._parts = b"".join(self._parts), []
        return data


def members_parquet(audience: Audience, *, batch_bytes: int | None = None) -> Iterator[bytes]:
    """The members file as Parquet, streamed: one row group per CSV batch, bytes sent as each is written."""
    stream = members_csv(audience)  # its SQL now, in the request's org schema
    return _parquet_batches(stream, batch_bytes or BATCH_BYTES)


def _parquet_batches(stream: Iterator[bytes], limit: int) -> Iterator[bytes]:
    import pyarrow.parquet as pq

    schema = members_schema()
    arrow_schema = pl.DataFrame(schema=schema).to_arrow().schema
    sink = _Sink()
    writer = pq.ParquetWriter(sink, arrow_schema, compression="zstd")
    next(stream)  # the header: the columns are `schema`'s, in the same order
    batch: list[bytes] = []
    size = 0

    def flush() -> bytes:
        frame = pl.read_csv(
            b"".join(batch),
            has_header=False,
            new_columns=list(schema),
            schema=schema,
        )
        writer.write_table(frame.to_arrow().cast(arrow_schema))
        batch.clear()
        return sink.take()

    try:
        for chunk in stream:
            batch.append(chunk)
            size += len(chunk)
            if size >= limit:
                size = 0
                yield flush()
        if batch:
            yield flush()
    finally:
        writer.close()
    yield sink.take()


def members(audience: Audience, fmt: str) -> Iterator[bytes]:
    return members_parquet(audience) if fmt == "parquet" else members_csv(audience)


def analytics_frame(audience: Audience) -> pl.DataFrame:
    """One long table: (section, field, value, count, score) for composition (uncapped) and quality parts."""
    payload = selectors.audience_insights(audience)
    entry, _ = cache.get()
    full = selectors.comp.composition(entry, selectors.audience_mask(entry, audience))
    rows: list[dict[str, Any]] = [
        {"section": "size", "field": "size", "value": None, "count": payload["size"], "score": None}
    ]
    for field, values in full.items():
        rows.extend(
            {"section": "composition", "field": field, "value": v["value"], "count": v["count"], "score": None}
            for v in values
        )
    rows.append(
        {
            "section": "quality",
            "field": "score",
            "value": None,
            "count": None,
            "score": float(payload["quality"]["score"]),
        }
    )
    for name, part in payload["quality"]["parts"].items():
        rows.append({"section": "quality", "field": name, "value": None, "count": None, "score": float(part["score"])})
    rows.append(
        {
            "section": "freshness",
            "field": "data_changed_at",
            "value": payload["data_changed_at"],
            "count": None,
            "score": None,
        }
    )
    schema = {"section": pl.String, "field": pl.String, "value": pl.String, "count": pl.Int64, "score": pl.Float64}
    return pl.DataFrame(rows, schema=schema)


def encode(frame: pl.DataFrame, fmt: str) -> bytes:
    buffer = io.BytesIO()
    if fmt == "parquet":
        frame.write_parquet(buffer)
    else:
        frame.write_csv(buffer)
    return buffer.getvalue()
