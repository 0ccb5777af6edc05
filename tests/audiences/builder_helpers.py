"""Test helpers for the builder: imported audiences with records (straight into a version partition, as an
import would leave them) and a Bombora week (topics, week row, scores in the week's partition)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from audiences import cache
from tests.factories import audience_with_records

WEEK = dt.date(2026, 11, 23)


@pytest.fixture
def fresh_cache() -> Iterator[None]:
    cache.invalidate()
    yield
    cache.invalidate()


# An imported audience whose current version holds the rows (tests/factories.py makes it with the factories).
make_imported = audience_with_records


def load_bombora(scores: Sequence[tuple[Any, ...]], *, week: dt.date = WEEK) -> None:
    """A ready Bombora week with (domain, topic name, score[, research volume, surge flag]) rows (public schema; rolled back with the test)."""
    from bombora.models import BomboraTopic, BomboraWeek, BomboraWeekStatus
    from bombora.store import QUALIFIED, partition_name

    topic_ids: dict[str, int] = {}
    for _, topic, *_ in scores:
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
        columns = "week, domain, topic_id, score, volume, surging"  # issue 18: (domain, topic, score[, volume, surge])
        with cursor.copy(f"COPY {QUALIFIED} ({columns}) FROM STDIN") as copy:  # type: ignore[attr-defined]
            for domain, topic, score, *signals in scores:
                volume, surging = (*signals, None, None)[:2]
                copy.write_row((week, domain, topic_ids[topic], score, volume, surging))
