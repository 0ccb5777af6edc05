"""Where activation reads audience records from: SQL fragments over the audience tables (read-only).

Every fragment is schema-qualified (tasks and streamed responses do not share a request's search path)
and yields rows of `audiences_record` as readers see them (the UID2 hashes derived: `records.row_select`) for one
audience (its current version, or a built audience's materialised members) or for the whole organisation (every
imported audience's current version).
"""

from __future__ import annotations

from django.db import connection

from audiences import records
from audiences.logic.sql_engine import RID_SHIFT
from audiences.models import Audience, AudienceKind


def schema() -> str:
    return str(connection.schema_name)  # type: ignore[attr-defined]


def audience_records_sql(audience: Audience) -> str | None:
    """A FROM item (aliased `r`) with the audience's member records, or None when it has none."""
    s = schema()
    if audience.kind == AudienceKind.BUILT:
        return (
            f'(SELECT {records.row_select("rec")} FROM "{s}".audiences_builtmember m JOIN "{s}".{records.TABLE} rec '
            f"ON rec.version_id = (m.rid >> {RID_SHIFT}) AND rec.row = (m.rid & {(1 << RID_SHIFT) - 1}) "
            f"WHERE m.audience_id = {int(audience.pk)}) r"
        )
    if audience.current_version_id is None:
        return None
    return (
        f'(SELECT {records.row_select("rec")} FROM "{s}".{records.partition_name(audience.current_version_id)} rec) r'
    )


def org_records_sql() -> str:
    """Every imported audience's current version (the org's universe)."""
    s = schema()
    return (
        f'(SELECT {records.row_select("rec")} FROM "{s}".{records.TABLE} rec WHERE rec.version_id IN '
        f'(SELECT current_version_id FROM "{s}".audiences_audience WHERE current_version_id IS NOT NULL)) r'
    )
