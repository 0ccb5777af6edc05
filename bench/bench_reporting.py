"""Dashboard data for a 30-day range on an org with 20M daily-metric rows (issue 7).

Data: one year (365 days) x ~55K creatives a day = 20M `campaigns_dailymetric` rows (the source
document's volume for one client), 40 campaigns over 4 sources, 400 strategies, 4,000 placements;
generated with polars, loaded with COPY into the real (indexed) table; the daily rollup is then built
the way `aggregate` builds it. `P360_BENCH_SCALE` (default 1) scales the row count for development;
`P360_BENCH_REUSE=1` keeps the generated org (and reuses it next time: loading 20M rows takes minutes).

Figures, p50/p95 over 30-day windows spread across the year:
- the function the dashboard view calls (KPIs with the previous 30 days, daily trend, by source,
  first page of the campaign table), and the HTTP view itself through the test client;
- the baseline: one naive SQL aggregation over the daily rows of the same 60 days (grouped by day,
  source and campaign: everything those figures need), in the same run;
- the creative table (read from the daily rows, not the rollup), reported as it is.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import secrets
import time
from typing import Any

import polars as pl

from bench.common import Row, fmt_ms, fmt_ratio, fmt_s, goal_text, percentile, time_many

ORDER = 70
SLUG_PREFIX = "bench-reports-"
FULL_ROWS = 20_000_000
DAYS = 365
FIRST_DAY = dt.date(2025, 11, 1)
CAMPAIGNS, STRATEGIES, PLACEMENTS = 40, 400, 4000
SOURCES = ["surfside", "vibe", "facebook", "reds"]
CHUNK_DAYS = 10
RUNS = 30
GOAL_MS = 200


def _scale() -> float:
    return float(os.environ.get("P360_BENCH_SCALE") or "1")


def _drop_old() -> None:
    from p360.core.jobs.models import Job
    from tenants.models import Organization

    for org in Organization.objects.filter(slug__startswith=SLUG_PREFIX):
        Job.objects.filter(org=org).delete()
        org.domains.all().delete()
        org.delete(force_drop=True)


def _hierarchy(cursor: Any, creatives: int) -> None:
    cursor.execute(
        """INSERT INTO campaigns_campaign (id, name, source, external_id, status, budget, currency, created_at, updated_at)
           SELECT c, 'Campaign ' || c, (ARRAY['surfside','vibe','facebook','reds'])[1 + c %% 4], '', 'active', 0, 'USD',
                  now(), now()
           FROM generate_series(1, %s) c""",
        [CAMPAIGNS],
    )
    cursor.execute(
        """INSERT INTO campaigns_strategy (id, campaign_id, name, created_at)
           SELECT s, 1 + s %% %s, 'Strategy ' || s, now() FROM generate_series(1, %s) s""",
        [CAMPAIGNS, STRATEGIES],
    )
    cursor.execute(
        """INSERT INTO campaigns_placement (id, strategy_id, name, created_at)
           SELECT p, 1 + p %% %s, 'Placement ' || p, now() FROM generate_series(1, %s) p""",
        [STRATEGIES, PLACEMENTS],
    )
    cursor.execute(
        """INSERT INTO campaigns_creative (id, placement_id, name, preview_url, created_at)
           SELECT k, 1 + k %% %s, 'Creative ' || k, '', now() FROM generate_series(1, %s) k""",
        [PLACEMENTS, creatives],
    )
    for table in ("campaign", "strategy", "placement", "creative"):
        cursor.execute(
            f"SELECT setval(pg_get_serial_sequence('campaigns_{table}', 'id'), (SELECT max(id) FROM campaigns_{table}))"
        )


def _chunk(first: int, days: int, creatives: int) -> pl.DataFrame:
    """`days` x `creatives` daily rows as polars columns (pseudo-random figures from hashes)."""
    n = days * creatives
    idx = pl.int_range(0, n, dtype=pl.Int64, eager=True)
    frame = pl.DataFrame({"i": idx}).with_columns(
        day=(pl.col("i") // creatives) + first, k=(pl.col("i") % creatives) + 1
    )
    h = pl.col("i").hash(first + 17)
    frame = frame.with_columns(
        date=pl.lit(FIRST_DAY) + pl.duration(days=pl.col("day")),
        creative_id=pl.col("k"),
        placement_id=1 + pl.col("k") % PLACEMENTS,
        impressions=(h % 50_000).cast(pl.Int64) + 1,
    )
    frame = frame.with_columns(
        strategy_id=1 + pl.col("placement_id") % STRATEGIES,
        clicks=pl.col("impressions") // (50 + (h % 150).cast(pl.Int64)),
    )
    frame = frame.with_columns(
        campaign_id=1 + pl.col("strategy_id") % CAMPAIGNS,
        conversions=pl.col("clicks") // (5 + (h % 20).cast(pl.Int64)),
    )
    frame = frame.with_columns(
        source=pl.lit(SOURCES).list.get(pl.col("campaign_id") % 4),
        conversion_revenue=(pl.col("conversions") * (h % 9000).cast(pl.Int64) / 100).round(2),
        cpm=pl.lit(12.5),
        spend=pl.col("impressions") * 12.5 / 1000,
        run_id=pl.lit(0),
        loaded_at=pl.lit("2026-01-01 00:00:00+00"),
    )
    return frame.select(
        "date",
        "campaign_id",
        "strategy_id",
        "placement_id",
        "creative_id",
        "source",
        "impressions",
        "clicks",
        "conversions",
        "conversion_revenue",
        "cpm",
        "spend",
        "run_id",
        "loaded_at",
    )


def _load(cursor: Any, creatives: int) -> tuple[int, float]:
    """COPY the year into campaigns_dailymetric, CHUNK_DAYS at a time; returns (rows, seconds)."""
    started = time.perf_counter()
    rows = 0
    columns = (
        "date, campaign_id, strategy_id, placement_id, creative_id, source, impressions, clicks, conversions, "
        "conversion_revenue, cpm, spend, run_id, loaded_at"
    )
    for first in range(0, DAYS, CHUNK_DAYS):
        frame = _chunk(first, min(CHUNK_DAYS, DAYS - first), creatives)
        buffer = io.BytesIO()
        frame.write_csv(buffer, include_header=False)
        with cursor.copy(f"COPY campaigns_dailymetric ({columns}) FROM STDIN (FORMAT csv)") as copy:
            copy.write(buffer.getvalue())
        rows += frame.height
    return rows, time.perf_counter() - started


def _naive(cursor: Any, start: dt.date, end: dt.date) -> None:
    prev_start = start - (end - start) - dt.timedelta(days=1)
    cursor.execute(
        """SELECT date, source, campaign_id, sum(impressions), sum(clicks), sum(conversions),
                  sum(conversion_revenue), sum(spend)
           FROM campaigns_dailymetric WHERE date BETWEEN %s AND %s GROUP BY date, source, campaign_id""",
        [prev_start, end],
    )
    cursor.fetchall()


def run() -> list[Row]:
    from django.db import connection
    from django.test import Client
    from django_tenants.utils import schema_context

    from reporting import rollup, selectors
    from tenants.models import Organization, Role
    from tenants.services import org_create, user_create

    total = int(FULL_ROWS * _scale())
    creatives = max(CAMPAIGNS, total // DAYS)
    reuse = os.environ.get("P360_BENCH_REUSE") == "1"  # keep the generated org between runs (it takes minutes)
    org = Organization.objects.filter(slug__startswith=SLUG_PREFIX).first() if reuse else None
    if org is None:
        _drop_old()
        token = secrets.token_hex(3)
        org = org_create(slug=f"{SLUG_PREFIX}{token}", name="Bench reports")
        fresh = True
    else:
        fresh = False
    from tenants.models import User

    email = "bench-reports@bench.local"  # kept between runs (deleting a user touches every org's tables)
    user = User.objects.filter(email=email).first() or user_create(
        email=email, role=Role.SUPER_ADMIN, password=secrets.token_hex(8)
    )
    rows_out: list[Row] = []
    try:
        with schema_context(org.schema_name):
            with connection.cursor() as cursor:
                if fresh:
                    _hierarchy(cursor, creatives)
                    loaded, load_s = _load(cursor, creatives)
                else:
                    cursor.execute("SELECT count(*) FROM campaigns_dailymetric")
                    loaded, load_s = int(cursor.fetchone()[0]), 0.0
                started = time.perf_counter()
                rollup.refresh_range(FIRST_DAY, FIRST_DAY + dt.timedelta(days=DAYS - 1))
                rollup_s = time.perf_counter() - started
                cursor.execute("ANALYZE campaigns_dailymetric")
                cursor.execute("ANALYZE reporting_dailyrollup")
                cursor.execute("SELECT count(*) FROM reporting_dailyrollup")
                rollup_rows = int(cursor.fetchone()[0])
            print(
                f"bench_reporting: {loaded:,} daily rows loaded in {load_s:.1f} s; "
                f"rollup {rollup_rows:,} rows in {rollup_s:.1f} s"
            )
            # 30-day windows spread over the year's second half (each has a previous 30 days)
            windows = [(FIRST_DAY + dt.timedelta(days=60 + (n * 9) % (DAYS - 90)),) for n in range(RUNS)]
            ranges = [(w[0], w[0] + dt.timedelta(days=29)) for w in windows]
            it = iter(ranges * 3)

            def view_function() -> None:
                start, end = next(it)
                selectors.dashboard_data(start, end)
                selectors.table("campaign", start, end, page=1, per_page=25)

            def creative_table() -> None:
                start, end = next(it)
                selectors.table("creative", start, end, page=1, per_page=25)

            naive_it = iter(ranges * 2)

            def naive() -> None:
                start, end = next(naive_it)
                with connection.cursor() as cursor:
                    _naive(cursor, start, end)

            fn_times = time_many(view_function, RUNS, warmup=0)
            naive_times = time_many(naive, RUNS, warmup=0)
            creative_times = time_many(creative_table, RUNS // 2, warmup=0)
        client = Client()
        client.force_login(user, backend="tenants.auth.RoleBackend")
        http_it = iter(ranges * 2)

        def http() -> None:
            start, end = next(http_it)
            response = client.get(
                f"/o/{org.slug}/reports/", {"preset": "custom", "start": start.isoformat(), "end": end.isoformat()}
            )
            assert response.status_code == 200, response.status_code

        http_times = time_many(http, RUNS, warmup=1)
        size = f"{loaded / 1e6:.1f}M daily rows, 30 d"
        naive50, naive95 = percentile(naive_times, 50), percentile(naive_times, 95)
        for label, times in (
            ("dashboard data 30 d (view's function)", fn_times),
            ("dashboard page 30 d (HTTP, test client)", http_times),
        ):
            p50, p95 = percentile(times, 50), percentile(times, 95)
            rows_out.append(
                Row(
                    workload=label,
                    size=size,
                    p360=f"p50 {fmt_ms(p50)} / p95 {fmt_ms(p95)}",
                    baseline=f"naive SQL over daily rows p50 {fmt_ms(naive50)} / p95 {fmt_ms(naive95)}",
                    ratio=f"{naive95 / p95:.1f}x faster" if p95 < naive95 else fmt_ratio(p95, naive95),
                    goal=goal_text(f"p95 < {GOAL_MS} ms", p95 * 1000 < GOAL_MS),
                )
            )
        c50, c95 = percentile(creative_times, 50), percentile(creative_times, 95)
        rows_out.append(
            Row(
                workload="creative table 30 d, page 1 (daily rows)",
                size=size,
                p360=f"p50 {fmt_ms(c50)} / p95 {fmt_ms(c95)}",
                baseline=f"naive p95 {fmt_ms(naive95)}",
                ratio=fmt_ratio(c95, naive95),
                goal="- (not the dashboard's first view)",
            )
        )
        rows_out.append(
            Row(
                workload="rollup build (whole year, as aggregate does)",
                size=f"{loaded / 1e6:.1f}M -> {rollup_rows:,} rows",
                p360=fmt_s(rollup_s),
                baseline=f"COPY of the daily rows {fmt_s(load_s)}" if load_s else "- (data reused)",
                ratio=fmt_ratio(rollup_s, load_s) if load_s else "-",
                goal="-",
            )
        )
    finally:
        connection.set_schema_to_public()  # type: ignore[attr-defined]
        if not reuse:
            _drop_old()
    return rows_out


if __name__ == "__main__":  # python -m bench.bench_reporting: this module alone
    from bench.common import format_table, setup_database

    setup_database()
    print(format_table(run()))
