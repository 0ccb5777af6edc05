"""Ingestion end to end (parse, validate, stage, find-or-create, load) against raw COPY of the same file.

- Surfside: a 150,000-row daily file (document 004's volume per client, source and day).
- REDS: a 1,000,000-event hourly file (document 000's upper bound), routed to one org.
The baseline is PostgreSQL `COPY ... (FORMAT csv)` of the same bytes into a text table, measured in
the same run on the same database: the floor for getting the file into the database at all.
"""

from __future__ import annotations

import datetime as dt
import random
import secrets
import shutil
import tempfile
import time
from pathlib import Path

from bench.common import Row, fmt_ratio, fmt_s, goal_text

ORDER = 40
SURFSIDE_ROWS = 150_000
REDS_EVENTS = 1_000_000
SLUG_PREFIX = "bench-ingest-"
DAY = dt.date(2026, 11, 20)


def _surfside_file(path: Path) -> Path:
    rng = random.Random(6)
    with path.open("w") as handle:
        handle.write("Date,Campaign,Strategy,Placement,Creative,Impressions,Clicks,Conversions,Conversion Revenue\n")
        for n in range(SURFSIDE_ROWS):
            # 20 campaigns x 10 strategies x 25 placements x 30 creatives = 150,000 distinct keys
            c, s, p, k = n % 20, (n // 20) % 10, (n // 200) % 25, (n // 5000) % 30
            imps = rng.randint(100, 50_000)
            handle.write(
                f"{DAY.isoformat()},Campaign {c},Strategy {s},Placement {p},Creative {k},"
                f"{imps},{imps // 200},{imps // 5000},{imps / 900:.2f}\n"
            )
    return path


def _reds_file(path: Path, advertiser: str) -> Path:
    rng = random.Random(7)
    kinds = ["impression"] * 90 + ["click"] * 8 + ["conversion"] * 2
    with path.open("w") as handle:
        handle.write(
            "event_timestamp|advertiser_id|campaign_id|line_item_id|event_type|cost_usd|audience_id|user_id|user_id_type|conversion_value\n"
        )
        for n in range(REDS_EVENTS):
            kind = kinds[n % 100]
            value = f"{rng.uniform(10, 90):.2f}" if kind == "conversion" else ""
            handle.write(
                f"2026-11-20T05:{(n // 60) % 60:02d}:{n % 60:02d}Z|{advertiser}|cmp{n % 40}|li{n % 200}|{kind}|"
                f"0.00{n % 10}|aud{n % 50}|user-{rng.randint(1, 300_000)}|UID2|{value}\n"
            )
    return path


def _raw_copy_seconds(path: Path, columns: int, delimiter: str) -> float:
    """COPY the same bytes into a plain text table (created and dropped outside the timing)."""
    from django.db import connection

    table = f"bench_raw_{secrets.token_hex(3)}"
    cols = ", ".join(f"c{i} text" for i in range(columns))
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE public.{table} ({cols})")
        try:
            start = time.perf_counter()
            with (
                cursor.copy(  # type: ignore[attr-defined]
                    f"COPY public.{table} FROM STDIN (FORMAT csv, HEADER true, DELIMITER '{delimiter}')"
                ) as copy,
                path.open("rb") as handle,
            ):
                while block := handle.read(1 << 20):
                    copy.write(block)
            return time.perf_counter() - start
        finally:
            cursor.execute(f"DROP TABLE public.{table}")


def _drop_bench_orgs() -> None:
    from django.db import connection

    from ingestion.models import IngestionRun
    from p360.core.jobs.models import Job
    from tenants.models import Organization

    connection.set_schema_to_public()  # type: ignore[attr-defined]
    for org in Organization.objects.filter(slug__startswith=SLUG_PREFIX):
        IngestionRun.objects.filter(org=org).delete()
        IngestionRun.objects.filter(org__isnull=True, routed__has_key=org.slug).delete()
        Job.objects.filter(org=org).delete()
        org.domains.all().delete()
        org.delete(force_drop=True)


def run() -> list[Row]:
    from django.conf import settings
    from django_tenants.utils import schema_context

    from campaigns.services import cpm_set
    from ingestion.services import ingest_file
    from tenants.services import org_create

    _drop_bench_orgs()
    token = secrets.token_hex(3)
    advertiser = f"bench{token}"
    tmp = Path(tempfile.mkdtemp(prefix="p360-bench-ingest-"))
    media = tmp / "media"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(media)}},
    }
    from django.core.files.storage import storages

    storages._storages = {}  # re-read STORAGES (the setting_changed signal only fires in tests)
    rows: list[Row] = []
    try:
        org = org_create(slug=f"{SLUG_PREFIX}{token}", name="Bench ingestion", ttd_advertiser_id=advertiser)
        with schema_context(org.schema_name):
            cpm_set(cpm="12.5", effective_date=dt.date(2026, 1, 1), actor=None)

        surfside = _surfside_file(tmp / "media-report-2026-11-20.csv")
        baseline = _raw_copy_seconds(surfside, 9, ",")
        start = time.perf_counter()
        run_ = ingest_file(source="surfside", org=org, path=surfside, run_date=DAY)
        seconds = time.perf_counter() - start
        assert run_.status == "succeeded" and run_.rows_loaded == SURFSIDE_ROWS, run_.error
        rerun_start = time.perf_counter()
        again = ingest_file(source="surfside", org=org, path=surfside, run_date=DAY)
        rerun_seconds = time.perf_counter() - rerun_start
        assert again.metrics_replaced == SURFSIDE_ROWS
        rows.append(
            Row(
                workload="Surfside day end to end (new hierarchy)",
                size=f"{SURFSIDE_ROWS:,} rows, {surfside.stat().st_size / 1e6:.1f} MB",
                p360=f"{fmt_s(seconds)} ({SURFSIDE_ROWS / seconds:,.0f} rows/s); re-run {fmt_s(rerun_seconds)}",
                baseline=f"{fmt_s(baseline)} raw COPY ({SURFSIDE_ROWS / baseline:,.0f} rows/s)",
                ratio=fmt_ratio(seconds, baseline),
                goal=goal_text("< 10 s", seconds < 10),
            )
        )

        reds = _reds_file(tmp / "reds-2026112005.psv", advertiser)
        baseline = _raw_copy_seconds(reds, 10, "|")
        start = time.perf_counter()
        run_ = ingest_file(source="reds", org=None, path=reds)
        seconds = time.perf_counter() - start
        assert run_.status == "succeeded" and run_.rows_loaded == REDS_EVENTS, run_.error
        rows.append(
            Row(
                workload="REDS hour end to end (route, store, roll up)",
                size=f"{REDS_EVENTS:,} events, {reds.stat().st_size / 1e6:.0f} MB",
                p360=f"{fmt_s(seconds)} ({REDS_EVENTS / seconds:,.0f} events/s)",
                baseline=f"{fmt_s(baseline)} raw COPY ({REDS_EVENTS / baseline:,.0f} rows/s)",
                ratio=fmt_ratio(seconds, baseline),
                goal=goal_text("< 30 s", seconds < 30),
            )
        )
    finally:
        _drop_bench_orgs()
        shutil.rmtree(tmp, ignore_errors=True)
    return rows
