"""Storage and reads of Bombora scores: the one place that knows the score table's shape.

`public.ingestion_bombora_score` is partitioned by LIST (week); each loaded week is one partition named
`ingestion_bombora_score_w<YYYYMMDD>`. A week is re-loaded by filling a detached table and swapping it in, so
readers see the old week or the new one, never half of either. Rows are narrow on purpose (20-60M a week):
domain text (normalised like audience domains), topic_id (`BomboraTopic.id`), score smallint 0-100.

Readers (the builder's cache, SQL materialisation, admin coverage) use only the functions below.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl
from django.db import connection

from bombora.models import BomboraTopic, BomboraWeek, BomboraWeekStatus
from p360.core import arrow_reads

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
    query = f"SELECT domain, topic_id, score FROM {QUALIFIED} WHERE {where}"
    if arrow_reads.available():  # issue 17: binary COPY decoded in C++ (psycopg's COPY is a Python call per row)
        return arrow_reads.read(query, schema)
    sql = f"COPY ({query}) TO STDOUT WITH (FORMAT csv)"
    buf = bytearray()
    with connection.cursor() as cursor, cursor.copy(sql) as copy:  # type: ignore[attr-defined]
        for chunk in copy:
            buf += chunk
    if not buf:
        return pl.DataFrame(schema=schema)
    return pl.read_csv(bytes(buf), has_header=False, new_columns=list(schema), schema=schema)


# --- Issue 18: scores over several weeks (builder fields bombora_max_4w:<topic>, bombora_rise_12w:<topic>) ---------
WINDOW_WEEKS = {"max_4w": 4, "rise_12w": 12, "volume": 1, "surge": 1}
# Story 6.1: research volume and Bombora's own surge indicator, this week, when the file carried them (builder
# fields bombora_volume:<topic>, bombora_surge:<topic>; null where the file had none).
SIGNAL_COLUMNS = {"volume": "volume", "surge": "surging"}
MEASURE_DTYPES: dict[str, Any] = {"max_4w": pl.Int16, "rise_12w": pl.Int16, "volume": pl.Int32, "surge": pl.Boolean}


def window_weeks(week: dt.date | None, weeks: int) -> list[dt.date]:
    """The loaded (ready) weeks among the `weeks` weeks ending with `week` (oldest first)."""
    if week is None:
        return []
    first = week - dt.timedelta(days=7 * (weeks - 1))
    return sorted(
        BomboraWeek.objects.filter(status=BomboraWeekStatus.READY, week__gte=first, week__lte=week).values_list(
            "week", flat=True
        )
    )


def topic_weeks_frame(topic_id: int, weeks: list[dt.date]) -> pl.DataFrame:
    """One topic's scores over some weeks: (domain, week, score), the highest score per domain and week."""
    schema = {"domain": pl.String, "week": pl.Date, "score": pl.Int16}
    if not weeks:
        return pl.DataFrame(schema=schema)
    listed = ",".join(f"DATE '{w.isoformat()}'" for w in weeks)
    sql = (
        f"COPY (SELECT domain, week, max(score) FROM {QUALIFIED} WHERE topic_id = {int(topic_id)} "
        f"AND week IN ({listed}) GROUP BY domain, week) TO STDOUT WITH (FORMAT csv)"
    )
    buf = bytearray()
    with connection.cursor() as cursor, cursor.copy(sql) as copy:  # type: ignore[attr-defined]
        for chunk in copy:
            buf += chunk
    if not buf:
        return pl.DataFrame(schema=schema)
    return pl.read_csv(bytes(buf), has_header=False, new_columns=list(schema), schema=schema)


def measure_frame(topic_id: int, measure: str, week: dt.date | None) -> pl.DataFrame:
    """Per domain, the measure's value (domain String, value Int16) computed in polars (the SQL engine has its own
    statement of the same rule in `measure_sql`; the agreement test holds them to each other)."""
    empty = pl.DataFrame(schema={"domain": pl.String, "value": MEASURE_DTYPES[measure]})
    if measure in SIGNAL_COLUMNS:
        return signal_frame(topic_id, measure, week)
    weeks = window_weeks(week, WINDOW_WEEKS[measure])
    rows = topic_weeks_frame(topic_id, weeks)
    if not rows.height or week is None:
        return empty
    if measure == "max_4w":
        return rows.group_by("domain").agg(pl.col("score").max().cast(pl.Int16).alias("value"))
    per_domain = (
        rows.sort("week")
        .group_by("domain")
        .agg(
            pl.col("score").first().alias("earliest"),
            pl.col("score").filter(pl.col("week") == week).first().alias("current"),
            pl.len().alias("weeks"),
        )
    )
    return per_domain.filter((pl.col("weeks") > 1) & pl.col("current").is_not_null()).select(
        "domain", (pl.col("current") - pl.col("earliest")).cast(pl.Int16).alias("value")
    )


def measure_sql(topic_id: int, measure: str, week: dt.date | None) -> str:
    """`SELECT domain, v`: the measure per domain in SQL (no row for a domain without a value)."""
    if measure in SIGNAL_COLUMNS:
        return signal_sql(topic_id, measure, week)
    weeks = window_weeks(week, WINDOW_WEEKS[measure])
    if not weeks or week is None:
        return "SELECT NULL::text AS domain, NULL::smallint AS v WHERE false"
    listed = ",".join(f"DATE '{w.isoformat()}'" for w in weeks)
    per_week = (
        f"SELECT domain, week, max(score) AS s FROM {QUALIFIED} WHERE topic_id = {int(topic_id)} "
        f"AND week IN ({listed}) GROUP BY domain, week"
    )
    if measure == "max_4w":
        return f"SELECT domain, max(s) AS v FROM ({per_week}) w GROUP BY domain"
    current = f"DATE '{week.isoformat()}'"
    return (
        f"SELECT domain, max(s) FILTER (WHERE week = {current}) - (array_agg(s ORDER BY week))[1] AS v "
        f"FROM ({per_week}) w GROUP BY domain HAVING count(*) > 1 AND bool_or(week = {current})"
    )


def signal_sql(topic_id: int, measure: str, week: dt.date | None) -> str:
    """`SELECT domain, v`: this week's research volume (`volume`) or surge indicator (`surge`) per domain; no row
    where the file did not carry it (one row per domain: a week holds one row per domain and topic)."""
    column = SIGNAL_COLUMNS[measure]
    if week is None:
        return "SELECT NULL::text AS domain, NULL::integer AS v WHERE false"
    agg = "bool_or" if measure == "surge" else "max"
    return (
        f"SELECT domain, {agg}({column}) AS v FROM {QUALIFIED} WHERE week = DATE '{week.isoformat()}' "
        f"AND topic_id = {int(topic_id)} AND {column} IS NOT NULL GROUP BY domain"
    )


def signal_frame(topic_id: int, measure: str, week: dt.date | None) -> pl.DataFrame:
    """`signal_sql` read into polars: (domain String, value Int32 | Boolean)."""
    dtype = MEASURE_DTYPES[measure]
    schema = {"domain": pl.String, "value": dtype}
    if week is None:
        return pl.DataFrame(schema=schema)
    buf = bytearray()
    sql = f"COPY ({signal_sql(topic_id, measure, week)}) TO STDOUT WITH (FORMAT csv)"
    with connection.cursor() as cursor, cursor.copy(sql) as copy:  # type: ignore[attr-defined]
        for chunk in copy:
            buf += chunk
    if not buf:
        return pl.DataFrame(schema=schema)
    frame = pl.read_csv(
        bytes(buf),
        has_header=False,
        new_columns=["domain", "value"],
        schema_overrides={"domain": pl.String, "value": pl.String},
    )
    value = pl.col("value") == "t" if measure == "surge" else pl.col("value").cast(dtype)
    return frame.select("domain", value.alias("value"))


def domain_signals(domain: str, week: dt.date | None = None, limit: int = 500) -> list[dict[str, object]]:
    """Issue 18: one domain's topics in a week (default current) with score, research volume and Bombora's surge
    indicator (the last two NULL when the file did not carry them), highest score first."""
    week = week or current_week()
    if week is None or not domain:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT t.name, s.score, s.volume, s.surging FROM {QUALIFIED} s JOIN public.{BomboraTopic._meta.db_table} t "
            "ON t.id = s.topic_id WHERE s.week = %s AND s.domain = %s ORDER BY s.score DESC, t.name LIMIT %s",
            [week, domain.strip().lower(), max(1, min(limit, 5000))],
        )
        rows = cursor.fetchall()
    return [
        {
            "topic": name,
            "score": score,
            "volume": volume,
            "surging": surging,
            "surging_by_score": score >= SURGE_THRESHOLD,
        }
        for name, score, volume, surging in rows
    ]
