"""Reads for audience pages, API and admin."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.utils import timezone

from audiences.models import Audience, AudienceImport
from p360.core.exports import neutralise_sql
from p360.core.jobs.models import Job


def import_preview(imp: AudienceImport) -> dict[str, list[Any]]:
    return imp.preview or {}


def preview_rows(preview: dict[str, list[Any]], headers: list[str]) -> list[list[Any]]:
    """The preview as rows (header order) for a table."""
    height = max((len(v) for v in preview.values()), default=0)
    return [
        [(preview.get(h) or [None] * height)[i] if i < len(preview.get(h) or []) else None for h in headers]
        for i in range(height)
    ]


def import_status(imp: AudienceImport) -> dict[str, Any]:
    """Everything a progress view needs: status, percent, rate, ETA, counts, and the report when done."""
    job = Job.objects.filter(pk=imp.job_id).first() if imp.job_id else None
    done = job.progress_done if job else 0
    total = job.progress_total if job else None
    percent = 100.0 if imp.status == "succeeded" else (round(100 * done / total, 1) if total else 0.0)
    eta = None
    rate = None
    if job and job.started_at and total and 0 < done < total:
        elapsed = (timezone.now() - job.started_at).total_seconds()
        if elapsed > 0:
            rate = done / elapsed
            eta = round((total - done) / rate, 1)
    return {
        "id": imp.pk,
        "status": imp.status,
        "status_label": imp.get_status_display(),
        "finished": imp.is_finished,
        "source_name": imp.source_name,
        "audience_name": imp.audience_name,
        "audience_id": imp.audience_id,
        "version": imp.version.number if imp.version is not None else None,
        "progress": {"done": done, "total": total, "percent": percent, "rows_per_second": rate, "eta_seconds": eta},
        "rows_read": imp.rows_read,
        "rows_loaded": imp.rows_loaded,
        "rows_quarantined": imp.rows_quarantined,
        "duplicates": imp.duplicates,
        "blank_lines": imp.blank_lines,
        "reconciles": imp.reconciles,
        "quality": imp.quality,
        "error": imp.error,
        "file": {
            "kind": imp.file_kind,
            "encoding": imp.encoding,
            "delimiter": imp.delimiter,
            "size": imp.file_size,
            "sha256": imp.file_sha256,
        },
        "options": {
            "mode": imp.mode,
            "dedupe_key": imp.dedupe_key,
            "dedupe_rule": imp.dedupe_rule,
            "mapping": imp.mapping,
            "custom_types": imp.custom_types,
            "default_country": imp.default_country,
        },
        "has_quarantine": bool(imp.quarantine_file),
        "created_by": imp.created_by_email,
        "created_at": imp.created_at.isoformat(),
        "finished_at": imp.finished_at.isoformat() if imp.finished_at else None,
    }


def quality_rows(imp: AudienceImport) -> list[dict[str, Any]]:
    """Per field, in the catalogue's order: label, share filled (of the version), share valid (in the file)."""
    from audiences.fields import field_label
    from audiences.records import DATA_COLUMNS

    completeness = (imp.quality or {}).get("completeness", {})
    validity = (imp.quality or {}).get("validity", {})
    rows = []
    for column in DATA_COLUMNS:
        if column not in completeness and column not in validity:
            continue
        if column == "custom" and not imp.custom_types:
            continue
        label = "Custom fields" if column == "custom" else field_label(column)
        rows.append(
            {"field": column, "label": label, "filled": completeness.get(column, 0.0), "valid": validity.get(column)}
        )
    return rows


def import_duration(imp: AudienceImport) -> float | None:
    if imp.started_at and imp.finished_at:
        return round((imp.finished_at - imp.started_at).total_seconds(), 1)
    return None


# --- issue 5: builder reads; implemented in audiences/preview.py -------------------------------------------------
from audiences.preview import (  # noqa: E402
    audience_overlap,
    audience_preview,
    audience_summary,
    bombora_topics,
    built_audience_detail,
    field_catalogue,
    parse_tree,
)

__all__ = [
    "audience_overlap",
    "audience_preview",
    "audience_summary",
    "bombora_topics",
    "built_audience_detail",
    "field_catalogue",
    "import_duration",
    "import_preview",
    "import_status",
    "members_csv_stream",
    "parse_tree",
    "preview_rows",
    "quality_rows",
]


def members_copy_sql(audience: Audience, *, for_people: bool) -> tuple[list[str], str | None]:
    """(header, `COPY ... TO STDOUT (FORMAT csv)` of the audience's members, or None when it has none).

    `for_people` neutralises formula-looking text for a CSV people open (p360.core.exports); otherwise
    (the API, XLSX) values are exact. Schema-qualified: a streamed response runs after the org
    middleware has reset the search path."""
    import polars as pl
    from django.db import connection

    from audiences import records
    from audiences.logic.sql_engine import RID_SHIFT

    schema = connection.schema_name  # type: ignore[attr-defined]
    columns = [c for c in records.DATA_COLUMNS if c != "custom"]
    select = ", ".join(
        f"{neutralise_sql(f's.{c}')} AS {c}" if for_people and records.COLUMN_TYPES[c] == pl.String else f"s.{c}"
        for c in columns
    )
    header = [*columns, "custom"]
    built = audience.kind == "built"
    if audience.current_version_id is None and not built:
        return header, None
    if built:  # issue 5: the materialised members, each by its representative record
        source = (
            f'"{schema}".audiences_builtmember m JOIN "{schema}".{records.TABLE} r '
            f"ON r.version_id = (m.rid >> {RID_SHIFT}) AND r.row = (m.rid & {(1 << RID_SHIFT) - 1}) "
            f"WHERE m.audience_id = {int(audience.pk)}"
        )
        rows, order = f"{records.row_select('r')}, m.rid", "rid"
    else:
        source = f'"{schema}".{records.partition_name(audience.current_version_id)} r'  # type: ignore[arg-type]
        rows, order = records.row_select("r"), "row"
    # The UID2 hashes are derived from their base columns (`records.row_select`), once a row: OFFSET 0 keeps the
    # subquery from being flattened into the outer list, which names a column up to four times (`neutralise_sql`).
    table = f"(SELECT {rows} FROM {source} OFFSET 0) s"
    custom = neutralise_sql("s.custom::text") if for_people else "s.custom::text"
    return header, f"COPY (SELECT {select}, {custom} FROM {table} ORDER BY {order}) TO STDOUT (FORMAT csv)"


def members_csv_stream(audience: Audience, *, for_people: bool) -> Iterator[bytes]:
    """The members CSV (header, then `members_copy_sql`'s COPY) as it arrives from PostgreSQL, chunk by chunk.

    The one streamed members path: the API's machine file, the page's formula-safe CSV and the BI exports (CSV as
    is, Parquet converted in batches) all read it, so memory stays flat whatever the audience's size. PostgreSQL
    sends one COPY message per row, so every chunk after the header is whole CSV rows.

    The SQL is made now, in the request's org schema (schema-qualified); the rows are read when the response is
    sent, after the org middleware has reset the search path."""
    from django.db import connection

    header, copy_sql = members_copy_sql(audience, for_people=for_people)

    def chunks() -> Iterator[bytes]:
        yield (",".join(header) + "\n").encode()
        if copy_sql is None:
            return
        with connection.cursor() as cursor, cursor.copy(copy_sql) as copy:  # type: ignore[attr-defined]
            for chunk in copy:
                yield bytes(chunk)

    return chunks()
