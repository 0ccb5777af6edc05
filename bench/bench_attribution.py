"""Attribution over 10M REDS events: all six models end to end (COPY read + paths + credits).

Data: 10,000,000 events (x P360_BENCH_SCALE) over 60 days in one org's day partitions, written with
COPY: 1M users (scaled), 40 campaigns, 94 % impressions, 5 % clicks, 1 % conversions with a value.
Attribution covers the last 30 days of conversions with a 30-day lookback, so every event is read.
Baselines measured in the same run on the same database:
- the raw `COPY (SELECT the same columns ...) TO STDOUT` of the same events, discarded (the floor
  for getting the events out of PostgreSQL at all);
- one SQL last-touch query (a LATERAL index probe per conversion for its latest touch in the
  window, grouped by campaign) next to the engine's last-touch model alone.
The six-model run happens in a child process (`python -m bench.bench_attribution --child ...`), so its peak RSS
is the run's own (Django + read + paths + models), not the generator's. CPU seconds are printed beside the wall
time: the child's own CPU and the PostgreSQL cluster's (its processes and reaped parallel workers; "n/a" when the
server is not on this machine): on a shared machine wall time is inflated by the load, CPU seconds are not.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import resource
import secrets
import subprocess
import sys
import time
from pathlib import Path

from bench.common import Row, cpu_text, fmt_ratio, fmt_s, goal_text, own_cpu_s, server_cpu_s

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


ROOT = Path(__file__).resolve().parents[1]


def _peak_rss_mb() -> float:
    """This process's own peak RSS. ru_maxrss is not: Linux carries the parent's peak across fork and exec, so a
    child started by a big parent reports the parent's figure. VmHWM belongs to the address space exec created."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux; not Linux: no /proc


def _child(spec: dict[str, str]) -> dict[str, object]:
    """The six-model run measured alone in this (child) process: wall, timings, CPU, peak RSS, a few counts."""
    import psutil
    from django_tenants.utils import schema_context

    from reporting.attribution import engine, paths

    # A scaled run reads as many user slices as the full-size one (slices follow the partitions' bytes); "one slice"
    # is the same-run baseline of reading every event at once (before issue 17's slices).
    paths.READ_SLICE_BYTES = 1 << 62 if spec.get("one_slice") else max(1 << 20, int(paths.READ_SLICE_BYTES * SCALE))
    with schema_context(spec["schema"]):
        params = engine.Params(
            start=dt.date.fromisoformat(spec["start"]),
            end=dt.date.fromisoformat(spec["end"]),
            lookback_days=int(spec["lookback"]),
        )
        # The current RSS, not the peak: a child's peak starts at its parent's RSS at fork (Linux keeps it across exec).
        rss_before = psutil.Process().memory_info().rss / (1 << 20)
        server_before, own_before = server_cpu_s(), own_cpu_s()
        # The peak up to the models (read + paths), taken when the slices' paths are merged.
        merge, paths_peak = paths.merge, [0.0]

        def merged(parts: list[paths.Paths]) -> paths.Paths:
            paths_peak[0] = _peak_rss_mb()
            return merge(parts)

        paths.merge = merged  # type: ignore[assignment]
        slices = paths.read_slices(start=params.start, end=params.end, lookback_days=params.lookback_days)
        timings = engine.Timings()
        began = time.perf_counter()
        result = engine.compute(params, timings)
        total = time.perf_counter() - began
        own, server_after = own_cpu_s() - own_before, server_cpu_s()
    server = server_after - server_before if server_before is not None and server_after is not None else None
    return {
        "total": total,
        "read": timings.read_s,
        "paths": timings.paths_s,
        "models": timings.models_s,
        "cpu": own,
        "server_cpu": server,
        "peak_mb": _peak_rss_mb(),
        "rss_before_mb": rss_before,
        "slices": slices,
        "paths_peak_mb": paths_peak[0],
        "conversions": result["totals"]["conversions"],
        "non_converting": result["paths"]["non_converting"],
    }


def _run_child(
    schema: str, start: dt.date, end: dt.date, lookback: int, *, one_slice: bool = False
) -> dict[str, object]:
    from django.conf import settings

    spec = {"schema": schema, "start": start.isoformat(), "end": end.isoformat(), "lookback": str(lookback)}
    if one_slice:
        spec["one_slice"] = "1"
    env = {**os.environ, "P360_DB_NAME": str(settings.DATABASES["default"]["NAME"])}
    done = subprocess.run(
        [sys.executable, "-m", "bench.bench_attribution", "--child", json.dumps(spec)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "attribution child failed")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


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
            server_before, own_before = server_cpu_s(), own_cpu_s()
            read_baseline = _raw_copy_read(start, end, lookback)
            baseline_cpu = own_cpu_s() - own_before
            server_after = server_cpu_s()
            baseline_server = (
                server_after - server_before if server_before is not None and server_after is not None else None
            )
            child = _run_child(org.schema_name, start, end, lookback)
            total = float(child["total"])  # type: ignore[arg-type]
            load = os.getloadavg()
            whole = _run_child(org.schema_name, start, end, lookback, one_slice=True)
            whole_load = os.getloadavg()
            sql_s, sql_attributed = _sql_last_touch(start, end, lookback)
            last = engine.Timings()
            began = time.perf_counter()
            engine.compute(engine.Params(start=start, end=end, lookback_days=lookback, models=("last_touch",)), last)
            last_total = time.perf_counter() - began
        models_s = ", ".join(f"{name} {seconds:.2f}" for name, seconds in child["models"].items())  # type: ignore[attr-defined]
        peak = float(child["peak_mb"])  # type: ignore[arg-type]
        size = f"{EVENTS:,} events, {USERS:,} users, {DAYS} days"
        rows.append(
            Row(
                workload="Attribution: six models end to end (read + paths + credits), run in a child process",
                size=size,
                p360=(
                    f"{fmt_s(total)} (read {child['read']:.2f}, paths {child['paths']:.2f}, {models_s} s); "
                    f"CPU {cpu_text(child['cpu'], child['server_cpu'])}; "
                    f"{child['conversions']:,} attributed conv., {child['non_converting']:,} non-converting paths; "
                    f"{child['slices']} user slices; peak RSS {peak:,.0f} MB (the child: {child['rss_before_mb']:,.0f} MB resident before the run)"
                ),
                baseline=(
                    f"{fmt_s(read_baseline)} raw COPY read of the same events, CPU "
                    f"{cpu_text(baseline_cpu, baseline_server)} (load avg {load[0]:.1f} / {load[1]:.1f})"
                ),
                ratio=fmt_ratio(total, read_baseline),
                goal=goal_text("< 60 s and < 1.5 GB", total < 60 and peak < 1536),
            )
        )
        whole_total, whole_peak = float(whole["total"]), float(whole["peak_mb"])  # type: ignore[arg-type]
        rows.append(
            Row(
                workload="Attribution: six models, user slices vs every event read at once (same run, same data)",
                size=size,
                p360=(
                    f"{child['slices']} slices: {fmt_s(total)}, CPU {cpu_text(child['cpu'], child['server_cpu'])}, "
                    f"peak RSS {peak:,.0f} MB ({child['paths_peak_mb']:,.0f} MB up to the models)"
                ),
                baseline=(
                    f"1 slice: {fmt_s(whole_total)} (read {whole['read']:.2f}, paths {whole['paths']:.2f} s), "
                    f"CPU {cpu_text(whole['cpu'], whole['server_cpu'])}, peak RSS {whole_peak:,.0f} MB ({whole['paths_peak_mb']:,.0f} MB up to the models) "
                    f"(load avg {whole_load[0]:.1f} / {whole_load[1]:.1f})"
                ),
                ratio=f"x{total / whole_total:.2f} time, x{peak / whole_peak:.2f} memory",
                goal="-",
            )
        )
        rows.append(
            Row(
                workload="Attribution: last touch alone vs one SQL last-touch query",
                size=size,
                p360=f"{fmt_s(last_total)} ({child['conversions']:,} conv.)",
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


if __name__ == "__main__":  # python -m bench.bench_attribution: this module alone (or, with --child, one run)
    if sys.argv[1:2] == ["--child"]:
        from bench.common import _configure_environment

        _configure_environment()
        import django

        django.setup()
        print(json.dumps(_child(json.loads(sys.argv[2]))))
    else:
        from bench.common import format_table, setup_database

        setup_database()
        print(format_table(run()))
