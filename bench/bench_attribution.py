"""Attribution over 10M REDS events: all six models end to end (COPY read + paths + credits).

Data: 10,000,000 events (x P360_BENCH_SCALE) over 60 days in one org's day partitions, written with
COPY: 1M users (scaled), 40 campaigns, 94 % impressions, 5 % clicks, 1 % conversions with a value.
Attribution covers the last 30 days of conversions with a 30-day lookback, so every event is read.
Baselines measured in the same run on the same database:
- the raw `COPY (SELECT the same columns ...) TO STDOUT` of the same events, discarded (the floor
  for getting the events out of PostgreSQL at all);
- one SQL last-touch query (a LATERAL index probe per conversion for its latest touch in the
  window, grouped by campaign) next to the engine's last-touch model alone.
Peak RSS is the process's maximum resident set (includes Django and the generator's chunks).
"""

from __future__ import annotations

import datetime as dt
import io
import os
import resource
import secrets
import time

from bench.common import Row, fmt_ratio, fmt_s, goal_text

ORDER = 70
SCALE = float(os.environ.get("P360_BENCH_SCALE", "1"))
EVENTS = max(10_000, int(10_000_000 * SCALE))
USERS = max(1_000, EVENTS // 10)
CAMPAIGNS = 40
DAYS = 60
END = dt.date(2026, 10, 31)
FIRST = END - dt.timedelta(days=DAYS - 1)
SLUG_PREFIX = "bench-attr-"
CHUNK = 1_000_000
COLUMNS = (
    "event_date, event_timestamp, advertiser_id, campaign_id, line_item_id, event_type, cost_usd, "
    "audience_id, user_id, user_id_type, conversion_value, file_id, line_no"
)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def _generate(advertiser: str) -> None:
    """Write EVENTS events into the current schema's partitions with COPY, 1M at a time."""
    import numpy as np
    import polars as pl
    from django.db import connection

    from ingestion.reds import _ensure_partitions

    _ensure_partitions([FIRST + dt.timedelta(days=n) for n in range(DAYS)])
    # Bulk load: the (user_id, event_timestamp) index is built once afterwards (same end state, far
    # fewer random index writes than maintaining it row by row during 10M inserts).
    with connection.cursor() as cursor:
        cursor.execute("DROP INDEX IF EXISTS ingestion_store_redsevent_user")
    rng = np.random.default_rng(7)
    epoch_s = int(dt.datetime.combine(FIRST, dt.time(), tzinfo=dt.UTC).timestamp())
    for offset in range(0, EVENTS, CHUNK):
        size = min(CHUNK, EVENTS - offset)
        user = rng.integers(0, USERS, size)
        kind = rng.choice(3, size=size, p=[0.94, 0.05, 0.01])
        # Each user leans to a few campaigns: paths have structure for the models to disagree on.
        campaign = (user * 7 + rng.integers(0, 4, size) * rng.integers(0, 11, size)) % CAMPAIGNS
        frame = pl.DataFrame(
            {
                "ts": pl.Series(epoch_s + rng.integers(0, DAYS * 86_400, size), dtype=pl.Int64),
                "user": user,
                "kind": kind,
                "campaign": campaign,
                "value": np.round(rng.uniform(5, 250, size), 2),
            }
        )
        out = frame.select(
            pl.from_epoch("ts", time_unit="s").dt.date().alias("event_date"),
            (pl.from_epoch("ts", time_unit="s").dt.strftime("%Y-%m-%d %H:%M:%S") + "+00").alias("event_timestamp"),
            pl.lit(advertiser).alias("advertiser_id"),
            pl.format("ttd-c{}", "campaign").alias("campaign_id"),
            pl.format("li-{}", pl.col("campaign") * 3 + pl.col("user") % 3).alias("line_item_id"),
            pl.col("kind").replace_strict({0: "impression", 1: "click", 2: "conversion"}).alias("event_type"),
            pl.when(pl.col("kind") == 0).then(pl.lit(0.0025)).otherwise(pl.lit(0.0)).alias("cost_usd"),
            pl.format("aud-{}", pl.col("user") % 25).alias("audience_id"),
            pl.format("uid2-{}", "user").alias("user_id"),
            pl.lit("UID2").alias("user_id_type"),
            pl.when(pl.col("kind") == 2).then(pl.col("value")).otherwise(None).alias("conversion_value"),
            pl.lit(0).alias("file_id"),
            (pl.int_range(pl.len()) + offset + 1).alias("line_no"),
        )
        buffer = io.BytesIO()
        out.write_csv(buffer, include_header=False)
        del out, frame
        sql = f"COPY ingestion_store_redsevent ({COLUMNS}) FROM STDIN (FORMAT csv)"
        with connection.cursor() as cursor, cursor.copy(sql) as copy:  # type: ignore[attr-defined]
            view = buffer.getbuffer()
            for start in range(0, len(view), 1 << 20):
                copy.write(view[start : start + (1 << 20)])
            del view
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE INDEX ingestion_store_redsevent_user ON ingestion_store_redsevent (user_id, event_timestamp)"
        )
        cursor.execute("ANALYZE ingestion_store_redsevent")


def _raw_copy_read(start: dt.date, end: dt.date, lookback: int) -> float:
    """COPY the same columns of the same events out of PostgreSQL, discarding the bytes."""
    from django.db import connection

    first = start - dt.timedelta(days=lookback)
    sql = (
        "COPY (SELECT id, user_id, (extract(epoch FROM event_timestamp) * 1000000)::int8, "
        "CASE event_type WHEN 'impression' THEN 0 WHEN 'click' THEN 1 ELSE 2 END, campaign_id, cost_usd, "
        f"conversion_value FROM ingestion_store_redsevent WHERE event_date BETWEEN '{first}' AND '{end}') "
        "TO STDOUT (FORMAT csv)"
    )
    began = time.perf_counter()
    with connection.cursor() as cursor, cursor.copy(sql) as copy:  # type: ignore[attr-defined]
        for _ in copy:
            pass
    return time.perf_counter() - began


def _sql_last_touch(start: dt.date, end: dt.date, lookback: int) -> tuple[float, int]:
    """Last touch as one SQL query (no reset after a previous conversion: a simpler rule)."""
    from django.db import connection

    sql = f"""
        SELECT lt.campaign_id, count(*) FROM ingestion_store_redsevent c
        CROSS JOIN LATERAL (
            SELECT t.campaign_id FROM ingestion_store_redsevent t
            WHERE t.user_id = c.user_id AND t.event_type <> 'conversion'
              AND t.event_timestamp <= c.event_timestamp
              AND t.event_timestamp >= c.event_timestamp - interval '{lookback} days'
              AND t.event_date BETWEEN c.event_date - {lookback} AND c.event_date
            ORDER BY t.event_timestamp DESC LIMIT 1) lt
        WHERE c.event_type = 'conversion' AND c.event_date BETWEEN %s AND %s AND c.user_id <> ''
        GROUP BY 1"""
    began = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(sql, [start, end])
        attributed = sum(count for _, count in cursor.fetchall())
    return time.perf_counter() - began, attributed


def _drop_bench_orgs() -> None:
    from django.db import connection

    from tenants.models import Organization

    connection.set_schema_to_public()  # type: ignore[attr-defined]
    for org in Organization.objects.filter(slug__startswith=SLUG_PREFIX):
        org.domains.all().delete()
        org.delete(force_drop=True)


def run() -> list[Row]:
    from django_tenants.utils import schema_context

    from reporting.attribution import engine
    from tenants.services import org_create

    _drop_bench_orgs()
    token = secrets.token_hex(3)
    rows: list[Row] = []
    try:
        org = org_create(slug=f"{SLUG_PREFIX}{token}", name="Bench attribution", ttd_advertiser_id=f"benchattr{token}")
        with schema_context(org.schema_name):
            began = time.perf_counter()
            _generate(org.ttd_advertiser_id)
            load_s = time.perf_counter() - began
            start, end, lookback = END - dt.timedelta(days=29), END, 30
            rss_before = _peak_rss_mb()
            read_baseline = _raw_copy_read(start, end, lookback)
            timings = engine.Timings()
            began = time.perf_counter()
            result = engine.compute(engine.Params(start=start, end=end, lookback_days=lookback), timings)
            total = time.perf_counter() - began
            peak = _peak_rss_mb()
            load = os.getloadavg()
            sql_s, sql_attributed = _sql_last_touch(start, end, lookback)
            last = engine.Timings()
            began = time.perf_counter()
            engine.compute(engine.Params(start=start, end=end, lookback_days=lookback, models=("last_touch",)), last)
            last_total = time.perf_counter() - began
        models_s = ", ".join(f"{name} {seconds:.2f}" for name, seconds in timings.models_s.items())
        size = f"{EVENTS:,} events, {USERS:,} users, {DAYS} days"
        rows.append(
            Row(
                workload="Attribution: six models end to end (read + paths + credits)",
                size=size,
                p360=(
                    f"{fmt_s(total)} (read {timings.read_s:.2f}, paths {timings.paths_s:.2f}, {models_s} s); "
                    f"{result['totals']['conversions']:,} attributed conv., "
                    f"{result['paths']['non_converting']:,} non-converting paths; peak RSS {peak:,.0f} MB "
                    f"(before {rss_before:,.0f} MB)"
                ),
                baseline=f"{fmt_s(read_baseline)} raw COPY read of the same events (load avg {load[0]:.1f})",
                ratio=fmt_ratio(total, read_baseline),
                goal=goal_text("< 60 s", total < 60),
            )
        )
        rows.append(
            Row(
                workload="Attribution: last touch alone vs one SQL last-touch query",
                size=size,
                p360=f"{fmt_s(last_total)} ({result['totals']['conversions']:,} conv.)",
                baseline=f"{fmt_s(sql_s)} SQL LATERAL per conversion ({sql_attributed:,} conv.)",
                ratio=fmt_ratio(last_total, sql_s),
                goal="-",
            )
        )
        rows.append(
            Row(
                workload="Attribution bench data load (COPY into 60 day partitions + user index)",
                size=size,
                p360=f"{fmt_s(load_s)} ({EVENTS / load_s:,.0f} events/s)",
                baseline="-",
                ratio="-",
                goal="-",
            )
        )
    finally:
        _drop_bench_orgs()
    return rows


if __name__ == "__main__":  # python -m bench.bench_attribution: this module alone
    from bench.common import format_table, setup_database

    setup_database()
    print(format_table(run()))
