"""Import step 5, the report: the quarantine file, the quality figures and the summary of an import."""

from __future__ import annotations

import io
from typing import Any

import polars as pl
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection

from audiences import records
from audiences.import_stage import Staged
from audiences.import_write import Written
from audiences.models import AudienceImport
from p360.core.exports import neutralise_expr
from p360.core.intake.reader import ROW
from p360.core.tenancy import org_storage_name


def save_quarantine(imp: AudienceImport, quarantine: pl.DataFrame) -> str:
    """The rows that were not loaded, as CSV (formula-looking values neutralised for spreadsheets)."""
    if quarantine.height == 0:
        return ""
    out = quarantine.rename({ROW: "line"}).with_columns(
        [neutralise_expr(pl.col(c)).alias(c) for c in ("column", "field", "value", "reason")]
    )
    buffer = io.BytesIO()
    out.write_csv(buffer)
    name = org_storage_name(f"imports/{imp.pk}/quarantine.csv")
    if default_storage.exists(name):
        default_storage.delete(name)  # a re-run replaces the previous attempt's report
    return default_storage.save(name, ContentFile(buffer.getvalue()))


def quality(version_id: int, staged: Staged, written: Written, quarantine: pl.DataFrame) -> dict[str, Any]:
    """Counts, completeness and validity of the new version, and why rows were quarantined."""
    columns = records.DATA_COLUMNS
    # A UID2 hash is not stored (records.DERIVED): it is present exactly where its base column is.
    stored = [records.DERIVED.get(c, c) for c in columns]
    if written.has_base:  # kept records from the previous version count too: ask the table (one scan)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*), "
                + ", ".join(f"count({c})" for c in stored)
                + f" FROM {records.partition_name(version_id)}"
            )
            counts = cursor.fetchone()
    else:  # the version holds exactly what this import wrote: counted on the way in
        counts = (written.rows, *(written.filled.get(c, 0) for c in stored))
    total = int(counts[0])
    completeness = {c: round(int(n) / total, 4) if total else 0.0 for c, n in zip(columns, counts[1:], strict=True)}
    reasons = (
        quarantine.group_by("reason").len().sort("len", descending=True)
        if quarantine.height
        else pl.DataFrame(schema={"reason": pl.String, "len": pl.UInt32})
    )
    invalid_by_field = (
        quarantine.filter(pl.col("field") != "").group_by("field").len() if quarantine.height else pl.DataFrame()
    )
    invalid = (
        dict(zip(invalid_by_field["field"].to_list(), invalid_by_field["len"].to_list(), strict=True))
        if invalid_by_field.height
        else {}
    )
    field_filled = dict(staged.field_filled)
    for derived, base in records.DERIVED.items():  # the import no longer hashes: as many hashes as base values
        if base in field_filled and derived not in field_filled:
            field_filled[derived] = field_filled[base]
    validity = {}
    for column, filled in field_filled.items():
        bad = int(invalid.get(column, 0))
        validity[column] = round(filled / (filled + bad), 4) if filled + bad else None
    return {
        "records_in_version": total,
        "completeness": {c: v for c, v in completeness.items() if v},
        "validity": validity,
        "quarantine_reasons": dict(zip(reasons["reason"].to_list(), reasons["len"].to_list(), strict=True)),
        "uid2_ready_share": completeness.get("email_sha256", 0.0),
        "loaded_this_import": written.loaded,
    }


def summary(imp: AudienceImport) -> dict[str, Any]:
    """The contract's keys (import_audience --json), plus a few useful extras."""
    return {
        "import_id": imp.pk,
        "status": imp.status,
        "rows_read": imp.rows_read,
        "rows_loaded": imp.rows_loaded,
        "rows_quarantined": imp.rows_quarantined,
        "duplicates": imp.duplicates,
        "audience_id": imp.audience_id,
        "version": imp.version.number if imp.version is not None else None,
        "quarantine_file": imp.quarantine_file or None,
        "blank_lines": imp.blank_lines,
        "file_sha256": imp.file_sha256,
    }
