"""Storage and reads of Bombora scores: the one place that knows the score table's shape.

`public.ingestion_bombora_score` is partitioned by LIST (week); each loaded week is one partition named
`ingestion_bombora_score_w<YYYYMMDD>`. A week is re-loaded by filling a detached table and swapping it in, so
readers see the old week or the new one, never half of either. Rows are narrow on purpose (20-60M a week):
domain text (normalised like audience domains), topic_id (`BomboraTopic.id`), score smallint 0-100.

Readers (the builder's cache, SQL materialisation, admin coverage) use only the functions below.
"""

from __future__ import annotations

import datetime as dt

import polars as pl
from django.db import connection

from bombora.models import BomboraTopic, BomboraWeek, BomboraWeekStatus

TABLE = "ingestion_bombora_score"
QUALIFIED = f"public.{TABLE}"
SURGE_THRESHOLD = 60  # Bombora: a composite score of 60 or more is "surging" (integrations.md 4.1)

CREATE_TABLE_SQL = (
    f"CREATE TABLE {QUALIFIED} (week date NOT NULL, domain text NOT NULL, topic_id integer NOT NULL, "
    "score smallint NOT NULL CHECK (score BETWEEN 0 AND 100)) PARTITION BY LIST (week)"
)


# Issue 5 (loader): one row per domain and week, for cheap coverage counts and per-domain summaries. Partitioned
# and swapped exactly like the scores (same week, same transaction).
DOMAIN_TABLE = "ingestion_bombora_domain"
DOMAIN_QUALIFIED = f"public.{DOMAIN_TABLE}"
CREATE_DOMAIN_TABLE_SQL = (
    f"CREATE TABLE {DOMAIN_QUALIFIED} (week date NOT NULL, domain text NOT NULL, topics integer NOT NULL, "
    "surging integer NOT NULL, max_score smallint NOT NULL) PARTITION BY LIST (week)"
)


def domain_partition_name(week: dt.date) -> str:
    return f"{DOMAIN_TABLE}_w{week:%Y%m%d}"


def week_of(day: dt.date) -> dt.date:
    """Bombora weeks are keyed by their Monday."""
    return day - dt.timedelta(days=day.weekday())


def partition_name(week: dt.date) -> str:
    return f"{TABLE}_w{week:%Y%m%d}"


def current_week() -> dt.date | None:
    """The latest week whose load finished: the week every builder reads."""
    row = BomboraWeek.objects.filter(status=BomboraWeekStatus.READY).order_by("-week").values_list("week").first()
    return row[0] if row else None


def search_topics(query: str = "", limit: int = 50) -> list[BomboraTopic]:
    qs = BomboraTopic.objects.all()
    if query:
        qs = qs.filter(name__icontains=query.strip())
    return list(qs.order_by("name")[: max(1, min(limit, 500))])


def topic_by_name(name: str) -> BomboraTopic | None:
    return BomboraTopic.objects.filter(name__iexact=name.strip()).first()


def scores_frame(week: dt.date | None = None, topic_ids: list[int] | None = None) -> pl.DataFrame:
    """Scores of one week (default: the current one) as a frame (domain: String, topic_id: Int32, score: UInt8).

    Empty (with that schema) when no week is loaded. Read with COPY: tens of millions of rows in seconds.
    """
    schema = {"domain": pl.String, "topic_id": pl.Int32, "score": pl.UInt8}
    week = week or current_week()
    if week is None:
        return pl.DataFrame(schema=schema)
    where = f"week = '{week.isoformat()}'"
    if topic_ids is not None:
        if not topic_ids:
            return pl.DataFrame(schema=schema)
        where += " AND topic_id IN (" + ",".join(str(int(t)) for t in topic_ids) + ")"
    sql = f"COPY (SELECT domain, topic_id, score FROM {QUALIFIED} WHERE {where}) TO STDOUT WITH (FORMAT csv)"
    buf = bytearray()
    with connection.cursor() as cursor, cursor.copy(sql) as copy:  # type: ignore[attr-defined]
        for chunk in copy:
            buf += chunk
    if not buf:
        return pl.DataFrame(schema=schema)
    return pl.read_csv(bytes(buf), has_header=False, new_columns=list(schema), schema=schema)
