"""Test helpers for the builder: imported audiences with records (straight into a version partition, as an
import would leave them) and a Bombora week (topics, week row, scores in the week's partition)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Sequence
from typing import Any

import polars as pl
import pytest
from django.db import connection
from django.utils import timezone

from audiences import cache, records
from audiences.models import Audience, AudienceImport, AudienceKind, AudienceStatus, AudienceVersion, ImportStatus

WEEK = dt.date(2026, 11, 23)


@pytest.fixture
def fresh_cache() -> Iterator[None]:
    cache.invalidate()
    yield
    cache.invalidate()


def make_imported(name: str, rows: Sequence[dict[str, Any]], *, custom_types: dict[str, str] | None = None) -> Audience:
    """An imported audience whose current version holds `rows` (canonical/derived fields, `custom` as a dict)."""
    audience = Audience.objects.filter(name=name).first() or Audience.objects.create(
        name=name, kind=AudienceKind.IMPORTED, status=AudienceStatus.READY
    )
    number = (audience.versions.order_by("-number").values_list("number", flat=True).first() or 0) + 1
    version = AudienceVersion.objects.create(audience=audience, number=number, record_count=len(rows))
    records.create_partition(version.pk)
    data: dict[str, list[Any]] = {"line": list(range(2, len(rows) + 2))}
    for column, _, _dtype in records.RECORD_COLUMNS:
        values = [row.get(column) for row in rows]
        if column == "custom":
            values = [json.dumps(v) if v else None for v in values]
        data[column] = values
    frame = pl.DataFrame(data, schema={"line": pl.Int64, **{c: t for c, _, t in records.RECORD_COLUMNS}})
    records.copy_frame(version.pk, records.conform(frame), first_row=0)
    audience.current_version = version
    audience.record_count = len(rows)
    audience.save(update_fields=["current_version", "record_count", "updated_at"])
    if custom_types:
        AudienceImport.objects.create(
            audience=audience,
            audience_name=name,
            source_name=f"{name}.csv",
            status=ImportStatus.SUCCEEDED,
            custom_types={key: type_name for key, type_name in custom_types.items()},
            version=version,
        )
    return audience


def load_bombora(scores: Sequence[tuple[str, str, int]], *, week: dt.date = WEEK) -> None:
    """A ready Bombora week with (domain, topic name, score) rows (public schema; rolled back with the test)."""
    from bombora.models import BomboraTopic, BomboraWeek, BomboraWeekStatus
    from bombora.store import QUALIFIED, partition_name

    topic_ids: dict[str, int] = {}
    for _, topic, _ in scores:
        if topic not in topic_ids:
            obj = BomboraTopic.objects.filter(name__iexact=topic).first() or BomboraTopic.objects.create(
                name=topic, category="Technology"
            )
            topic_ids[topic] = obj.pk
    BomboraWeek.objects.update_or_create(
        week=week,
        defaults={
            "status": BomboraWeekStatus.READY,
            "rows": len(scores),
            "loaded_at": timezone.now(),
            "topics": len(topic_ids),
        },
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS public.{partition_name(week)} PARTITION OF {QUALIFIED} "
            f"FOR VALUES IN ('{week.isoformat()}')"
        )
        with cursor.copy(f"COPY {QUALIFIED} (week, domain, topic_id, score) FROM STDIN") as copy:  # type: ignore[attr-defined]
            for domain, topic, score in scores:
                copy.write_row((week, domain, topic_ids[topic], score))
