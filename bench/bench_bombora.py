"""Bombora Master Surge load end to end (`ingest bombora FILE`) against raw COPY of the same rows.

- The file: headerless Master Surge, gzipped, P360_BENCH_BOMBORA_ROWS rows (default 20,000,000: a large weekly
  file; set e.g. 1000000 while developing), ~20 topics per domain, sorted by domain like Bombora's deliveries.
- p360: `manage.py ingest bombora FILE` in a subprocess (decompress, validate, normalise domains, resolve topics,
  merge duplicates, COPY into a staging table, index, swap in as the week's partition); its peak RSS is reported.
- Baseline: `COPY ... FROM STDIN (FORMAT csv)` of the same rows, already decompressed and reduced to the four
  stored columns (week, domain, topic_id, score), into a plain 4-column table: the floor for getting them in at all.
- CPU seconds beside the wall times (the ingest process's own, and the PostgreSQL cluster's: its processes and the
  parallel workers it reaped; "n/a" when the server is not on this machine): on a shared machine the wall times
  are inflated by the load, CPU seconds much less.
- The 60M-row day: extrapolated from this run's rate unless the run itself has >= 60M rows
  (`P360_BENCH_BOMBORA_ROWS=60000000`: then it is measured; it needs ~15 GB of free disk for the file, the baseline
  CSV, the kept copy of the file, the table with its index and the WAL, and about 3x the 20M run's time).
"""

from __future__ import annotations

import gzip
import json
import os
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import Row, cpu_text, fmt_s, goal_text, own_cpu_s, server_cpu_s

ORDER = 45
SCALE = float(os.environ.get("P360_BENCH_SCALE", "1"))
ROWS = int(os.environ.get("P360_BENCH_BOMBORA_ROWS", str(max(100_000, int(20_000_000 * SCALE)))))
DAY_ROWS = 60_000_000  # the goal's daily file: extrapolated from this run's per-row rate (not loaded here)
TOPICS_PER_DOMAIN = 20
BLOCK = 500_000
FILE_NAME = "Output_MasterSurgeFile_20200106.csv.gz"  # a week far from real data; dropped afterwards
WEEK = "2020-01-06"
ROOT = Path(__file__).resolve().parents[1]


TOPICS = 2000


def _generate(tmp: Path) -> tuple[Path, Path]:
    """(the gzipped Master Surge file, the 4-column CSV of the same rows for the baseline)."""
    import polars as pl

    surge, plain = tmp / FILE_NAME, tmp / "baseline.csv"
    with gzip.open(surge, "wb", compresslevel=1) as out, plain.open("wb") as base:
        for start in range(0, ROWS, BLOCK):
            n = min(BLOCK, ROWS - start)
            idx = pl.int_range(start, start + n, eager=True)
            domain_no = idx // TOPICS_PER_DOMAIN
            frame = pl.DataFrame({"i": idx, "d": domain_no}).with_columns(
                pl.format("company {}", pl.col("d")).alias("company"),
                pl.format("d{}.example.com", pl.col("d").cast(pl.String).str.zfill(9)).alias("domain"),
                pl.lit("51-200 employees").alias("size"),
                pl.lit("software").alias("industry"),
                pl.lit("technology").alias("category"),
                ((pl.col("i") * 7 + pl.col("d") * 13) % TOPICS).alias("t"),
                ((pl.col("i") * 37 + pl.col("d")) % 101).alias("score"),
            )
            frame = frame.with_columns(
                pl.format("Bench Topic {}", pl.col("t").cast(pl.String).str.zfill(4)).alias("topic"),
                pl.format("greater boston area[{}]|[77]", pl.col("score")).alias("metros"),
                pl.lit("United States").alias("country"),
            )
            frame.select(
                "company", "domain", "size", "industry", "category", "topic", "score", "metros", "country"
            ).write_csv(out, include_header=False)
            frame.select(pl.lit(WEEK).alias("week"), "domain", (pl.col("t") + 1).alias("topic_id"), "score").write_csv(
                base, include_header=False
            )
    return surge, plain


def _raw_copy_seconds(path: Path) -> tuple[float, float | None, float]:
    """(wall seconds, PostgreSQL CPU seconds or None, this process's CPU seconds) of the raw COPY."""

    server_before = server_cpu_s()
    own_before = own_cpu_s()
    wall = _raw_copy_wall(path)
    server_after = server_cpu_s()
    server = server_after - server_before if server_before is not None and server_after is not None else None
    return wall, server, own_cpu_s() - own_before


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _raw_copy_wall(path: Path) -> float:
    from django.db import connection

    table = f"bench_bombora_raw_{secrets.token_hex(3)}"
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE public.{table} (week date, domain text, topic_id integer, score smallint)")
        try:
            start = time.perf_counter()
            with cursor.copy(f"COPY public.{table} FROM STDIN (FORMAT csv)") as copy, path.open("rb") as handle:  # type: ignore[attr-defined]
                while block := handle.read(1 << 20):
                    copy.write(block)
            return time.perf_counter() - start
        finally:
            cursor.execute(f"DROP TABLE public.{table}")


def _cleanup() -> None:
    import datetime as dt

    from django.db import connection

    from bombora.models import BomboraTopic, BomboraWeek
    from bombora.store import domain_partition_name, partition_name
    from ingestion.models import IngestionRun
    from p360.core.jobs.models import Job

    week = dt.date.fromisoformat(WEEK)
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS public.{partition_name(week)}")
        cursor.execute(f"DROP TABLE IF EXISTS public.{domain_partition_name(week)}")
    BomboraWeek.objects.filter(week=week).delete()
    from django.core.files.storage import default_storage

    bench_runs = IngestionRun.objects.filter(source="bombora", file_name=FILE_NAME)
    for stored in bench_runs.exclude(file_path="").values_list("file_path", flat=True):
        default_storage.delete(stored)  # the run's kept copy of the 20M-row file
    runs = list(bench_runs.values_list("pk", flat=True))
    Job.objects.filter(kind="ingestion.run_global", params__run_id__in=runs).delete()
    IngestionRun.objects.filter(pk__in=runs).delete()
    BomboraTopic.objects.filter(name__startswith="Bench Topic ").delete()


def run() -> list[Row]:
    from django.conf import settings

    tmp = Path(tempfile.mkdtemp(prefix="p360-bench-bombora-"))
    try:
        _cleanup()
        surge, plain = _generate(tmp)
        baseline, baseline_server, baseline_own = _raw_copy_seconds(plain)
        env = {
            **os.environ,
            "P360_DB_NAME": str(settings.DATABASES["default"]["NAME"]),
            "P360_BOMBORA_HISTORY_WEEKS": "100000",  # the bench week is old: keep it while it is measured
        }
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        children_before, server_before = _children_cpu_s(), server_cpu_s()
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), "ingest", "bombora", str(surge), "--json"],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        seconds = time.perf_counter() - start
        ingest_cpu, server_after = _children_cpu_s() - children_before, server_cpu_s()
        server = server_after - server_before if server_before is not None and server_after is not None else None
        peak_mb = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
        if done.returncode != 0:
            raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "ingest failed")
        result = json.loads(done.stdout)
        assert result["rows_loaded"] == ROWS, result
        share = baseline / seconds
        load = os.getloadavg()
        measured_day = ROWS >= DAY_ROWS
        day_estimate = seconds / ROWS * DAY_ROWS
        cpu_ratio = (
            f"; by CPU seconds {(baseline_own + baseline_server) / (ingest_cpu + server):.0%}"
            if server is not None and baseline_server is not None
            else ""
        )
        return [
            Row(
                workload="Bombora Master Surge week end to end (gzip, validate, COPY, index, swap)",
                size=f"{ROWS:,} rows, {surge.stat().st_size / 1e6:,.0f} MB gz / {plain.stat().st_size / 1e6:,.0f} MB 4-col CSV",
                p360=(
                    f"{fmt_s(seconds)} ({ROWS / seconds:,.0f} rows/s), peak RSS {peak_mb:,.0f} MB; "
                    f"CPU {cpu_text(ingest_cpu, server)}"
                ),
                baseline=(
                    f"{fmt_s(baseline)} raw COPY of the 4-col CSV ({ROWS / baseline:,.0f} rows/s), "
                    f"CPU {cpu_text(baseline_own, baseline_server)}; load avg {load[0]:.1f} / {load[1]:.1f}"
                ),
                ratio=f"{share:.0%} of raw COPY{cpu_ratio}",
                goal=goal_text(">= 30 % of raw COPY", share >= 0.30),
            ),
            Row(
                workload=(
                    "Bombora 60M-row day, MEASURED (the run above)"
                    if measured_day
                    else "Bombora 60M-row day, EXTRAPOLATED linearly from the run above (not loaded)"
                ),
                size=f"{DAY_ROWS:,} rows",
                p360=(
                    f"{seconds / 60:,.1f} min"
                    if measured_day
                    else f"~{day_estimate / 60:,.1f} min at {ROWS / seconds:,.0f} rows/s"
                ),
                baseline=f"~{baseline / ROWS * DAY_ROWS / 60:,.1f} min raw COPY at the same rate",
                ratio="-",
                goal=goal_text("< 10 min", day_estimate < 600) + ("" if measured_day else " (estimate)"),
            ),
        ]
    finally:
        _cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
