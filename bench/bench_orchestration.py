"""Orchestration (issue 14): pacing of 1,000 line items over 90 days of spend; budget-guarded concurrent edits.

Data: one org, one program, 100 campaigns x 10 line items = 1,000 line items; each line item's spend
comes from one strategy named by its external id (the REDS link, resolved at read time), one daily
metric row per strategy and day over 90 days = 90,000 `campaigns_dailymetric` rows (COPY-free SQL
`generate_series` insert). `P360_BENCH_ORCH_SCALE` (default 1) scales the line items.

1. Pacing: `program_pacing` (the API's body: program, 100 campaigns, 1,000 line items with expected,
   projected and status, read from the running spend totals `campaigns_spendtotal`) p50/p95 over 20 runs,
   against the baseline measured in the same run: the naive way, one SQL aggregation over the daily rows
   per line item (1,000 queries), 3 runs. Also shown: the previous design (one query over all daily rows,
   `tree_figures_from_daily_rows`, checked equal to ours) and the time to build the totals of all 90 days
   (what the ETL's hook does per load, for the days loaded and after).
2. Budget guard: 200 edits from 20 threads (each its own PostgreSQL connection) on 10 campaigns whose
   line items are nearly full (random increases, decreases and new line items: many must be refused).
   Violations (children above a parent after every edit committed) must be 0; throughput in edits/s.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import secrets
import sys
import threading
import time
from decimal import Decimal

from bench.common import Row, fmt_ms, fmt_ratio, goal_text, percentile, time_many

ORDER = 75
SLUG_PREFIX = "bench-orch-"
DAYS = 90
FIRST_DAY = dt.date(2026, 8, 1)
AS_OF = FIRST_DAY + dt.timedelta(days=DAYS - 1)
PER_CAMPAIGN = 10
GOAL_MS = 200
EDITS, THREADS = 200, 20


def _scale() -> float:
    return float(os.environ.get("P360_BENCH_ORCH_SCALE") or "1")


def _drop_old() -> None:
    from p360.core.jobs.models import Job
    from tenants.models import Organization

    for org in Organization.objects.filter(slug__startswith=SLUG_PREFIX):
        Job.objects.filter(org=org).delete()
        org.domains.all().delete()
        org.delete(force_drop=True)


def _load(campaigns: int) -> int:
    """The tree and 90 days of daily rows; returns the program id."""
    from django.db import connection

    from campaigns.models import Program

    program = Program.objects.create(
        name="Bench IO",
        budget=Decimal(campaigns) * 10_000,
        start_date=FIRST_DAY,
        end_date=FIRST_DAY + dt.timedelta(days=119),
    )
    items = campaigns * PER_CAMPAIGN
    with connection.cursor() as cursor:
        cursor.execute(
            """INSERT INTO campaigns_campaign (id, program_id, name, source, external_id, status, budget, currency,
                   created_at, updated_at)
               SELECT c, %s, 'Campaign ' || c, 'reds', 'cmp' || c, 'active', 10000, 'USD', now(), now()
               FROM generate_series(1, %s) c""",
            [program.pk, campaigns],
        )
        cursor.execute(
            """INSERT INTO campaigns_lineitem (id, campaign_id, name, external_id, status, budget, currency, bid,
                   pricing_model, pacing, creatives, auto_pause_at_budget, ttd_ad_group_id, ttd_synced_hash,
                   created_at, updated_at)
               SELECT l, 1 + (l - 1) / %s, 'Line item ' || l, 'li' || l, 'active', 1000, 'USD', 2.5,
                   'cpm', CASE WHEN l %% 5 = 0 THEN 'asap' ELSE 'even' END, '', false, '', '', now(), now()
               FROM generate_series(1, %s) l""",
            [PER_CAMPAIGN, items],
        )
        cursor.execute(
            """INSERT INTO campaigns_strategy (id, campaign_id, name, created_at)
               SELECT l, 1 + (l - 1) / %s, 'li' || l, now() FROM generate_series(1, %s) l""",
            [PER_CAMPAIGN, items],
        )
        cursor.execute(
            """INSERT INTO campaigns_dailymetric (date, campaign_id, strategy_id, placement_id, creative_id, source,
                   impressions, clicks, conversions, conversion_revenue, cpm, spend, media_cost, run_id, loaded_at)
               SELECT %s::date + d, 1 + (l - 1) / %s, l, 1, 1, 'reds', i, i / 200, i / 2000, 0, 10,
                   i * 10 / 1000.0, i * 0.002, 0, now()
               FROM generate_series(1, %s) l, generate_series(0, %s) d,
                    LATERAL (SELECT 200 + ((l * 7919 + d * 104729) %% 1000) AS i) x""",
            [FIRST_DAY, PER_CAMPAIGN, items, DAYS - 1],
        )
        for table in ("campaign", "lineitem", "strategy"):
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('campaigns_{table}', 'id'), "
                f"(SELECT max(id) FROM campaigns_{table}))"
            )
        for table in ("dailymetric", "strategy", "lineitem", "campaign", "program"):
            cursor.execute(f"ANALYZE campaigns_{table}")  # what autovacuum does after a load
    return program.pk


def _totals() -> float:
    """What the ETL's "metrics_loaded" hook does after a load, here for all 90 days at once (seconds)."""
    from django.db import connection

    from campaigns.spend_totals import rebuild

    started = time.perf_counter()
    rebuild()
    elapsed = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE campaigns_spendtotal")
    return elapsed


def _cpu_ms(fn: object, runs: int) -> float | None:
    """CPU time per call, this process plus its PostgreSQL backend (from /proc: the embedded server runs here),
    in ms: a figure the machine's load does not inflate the way wall time is. None if /proc is not readable."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]

    def backend() -> float:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()  # noqa: SIM115
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    try:
        before = time.process_time() + backend()
    except OSError:
        return None
    for _ in range(runs):
        fn()  # type: ignore[operator]
    return (time.process_time() + backend() - before) / runs * 1000


def _naive(program_id: int) -> int:
    """One aggregation over the daily rows per line item, each with its own flight (the naive baseline)."""
    from django.db import connection

    from campaigns.models import LineItem

    found = 0
    with connection.cursor() as cursor:
        for li_id, campaign_id, external_id, name in LineItem.objects.filter(
            campaign__program_id=program_id
        ).values_list("id", "campaign_id", "external_id", "name"):
            cursor.execute(
                """SELECT sum(d.spend), sum(d.media_cost), sum(d.impressions), sum(d.clicks), sum(d.conversions),
                       sum(d.conversion_revenue)
                   FROM campaigns_dailymetric d
                   WHERE d.campaign_id = %s AND d.date BETWEEN %s AND %s AND d.strategy_id IN (
                       SELECT s.id FROM campaigns_strategy s
                       WHERE s.campaign_id = %s AND (s.line_item_id = %s OR s.name IN (%s, %s)))""",
                [campaign_id, FIRST_DAY, AS_OF, campaign_id, li_id, external_id, name],
            )
            found += cursor.fetchone()[0] is not None
    return found


def _pacing_rows(campaigns: int) -> tuple[list[Row], int]:
    from campaigns.models import Program
    from campaigns.pacing import (
        line_item_rows,
        program_pacing,
        same_tree,
        tree_figures,
        tree_figures_from_daily_rows,
    )

    program_id = _load(campaigns)
    rebuild_s = _totals()
    program = Program.objects.get(pk=program_id)
    body = program_pacing(program, AS_OF)
    tree = list(program.campaigns.select_related("program").order_by("name", "pk"))
    items_rows = line_item_rows([c.pk for c in tree])
    assert same_tree(
        tree_figures(program, tree, items_rows, AS_OF), tree_figures_from_daily_rows(program, tree, items_rows, AS_OF)
    ), "the running totals disagree with the daily rows"
    one_query = time_many(lambda: tree_figures_from_daily_rows(program, tree, items_rows, AS_OF), runs=5)
    items = sum(len(c["line_items"]) for c in body["campaigns"])
    assert items == campaigns * PER_CAMPAIGN and all(
        li["spent"] != "0.00" for c in body["campaigns"] for li in c["line_items"]
    )
    ours = time_many(lambda: program_pacing(program, AS_OF), runs=20, warmup=2)
    assert _naive(program_id) == items
    naive = time_many(lambda: _naive(program_id), runs=3)
    p95, naive_p95 = percentile(ours, 95), percentile(naive, 95)
    cpu = _cpu_ms(lambda: program_pacing(program, AS_OF), 10)
    cpu_old = _cpu_ms(lambda: tree_figures_from_daily_rows(program, tree, items_rows, AS_OF), 5)
    cpu_text = f"; CPU {cpu:.0f} ms per call (client + database)" if cpu is not None else ""
    cpu_old_text = f" (CPU {cpu_old:.0f} ms)" if cpu_old is not None else ""
    row = Row(
        workload="pacing (program > campaigns > line items)",
        size=f"{items:,} line items x {DAYS} days ({items * DAYS:,} daily rows)",
        p360=f"p50 {fmt_ms(percentile(ours, 50))} / p95 {fmt_ms(p95)}{cpu_text}",
        baseline=f"naive SQL per line item p95 {fmt_ms(naive_p95)}; one SQL over the daily rows (the previous "
        f"design) p95 {fmt_ms(percentile(one_query, 95))}{cpu_old_text}; totals rebuilt from {items * DAYS:,} rows in "
        f"{fmt_ms(rebuild_s)}",
        ratio=fmt_ratio(naive_p95, p95).replace("x", "x faster: ", 1) if p95 else "n/a",
        goal=goal_text(f"p95 < {GOAL_MS} ms", p95 * 1000 < GOAL_MS),
    )
    return [row], program_id


def _concurrency_row(schema: str) -> Row:
    from django.db import connection
    from django_tenants.utils import schema_context

    from campaigns.models import Campaign, LineItem
    from campaigns.services import BudgetExceeded, line_item_save

    targets = list(Campaign.objects.order_by("pk").values_list("pk", flat=True)[:10])
    # nearly full: 9,900 of 10,000 allocated per campaign
    LineItem.objects.filter(campaign_id__in=targets).update(budget=990)
    counts = {"saved": 0, "refused": 0, "errors": 0}
    failures: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(THREADS)

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        try:
            barrier.wait(30)
            with schema_context(schema):
                for n in range(EDITS // THREADS):
                    campaign_id = rng.choice(targets)
                    try:
                        existing = LineItem.objects.filter(campaign_id=campaign_id).order_by("?").first()
                        if existing is None or rng.random() < 0.3:
                            li = LineItem(campaign_id=campaign_id, name=f"t{seed}-{n}", budget=str(rng.randint(1, 80)))
                        else:
                            li = existing
                            li.budget = Decimal(max(li.budget + rng.randint(-40, 60), Decimal(0)))
                        line_item_save(line_item=li, actor=None)
                        result = "saved"
                    except BudgetExceeded:
                        result = "refused"
                    except Exception as exc:
                        result = "errors"
                        with lock:
                            failures.append(f"{type(exc).__name__}: {exc}"[:300])
                    with lock:
                        counts[result] += 1
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    elapsed = time.perf_counter() - started
    violations = 0
    for campaign in Campaign.objects.filter(pk__in=targets):
        if sum(campaign.line_items.values_list("budget", flat=True), Decimal(0)) > campaign.budget:
            violations += 1
    done = sum(counts.values())
    for failure in failures[:3]:
        print(f"bench_orchestration: edit failed: {failure}", file=sys.stderr)
    return Row(
        workload="budget-guarded concurrent edits",
        size=f"{done} edits, {THREADS} connections, 10 parents",
        p360=f"{done / elapsed:.0f} edits/s; {counts['saved']} saved, {counts['refused']} refused, "
        f"{counts['errors']} errors",
        baseline="-",
        ratio="-",
        goal=goal_text("0 violations", violations == 0 and counts["errors"] == 0),
    )


def run() -> list[Row]:
    from django.db import connection
    from django_tenants.utils import schema_context

    from tenants.services import org_create

    _drop_old()
    org = org_create(slug=f"{SLUG_PREFIX}{secrets.token_hex(3)}", name="Bench orchestration")
    campaigns = max(1, int(100 * _scale()))
    try:
        with schema_context(org.schema_name):
            rows, _ = _pacing_rows(campaigns)
            rows.append(_concurrency_row(org.schema_name))
        load = os.getloadavg()
        for row in rows:
            row["size"] += f" (load {load[0]:.1f})"
        return rows
    finally:
        connection.set_schema_to_public()  # type: ignore[attr-defined]
        _drop_old()


if __name__ == "__main__":  # python -m bench.bench_orchestration: this module alone, without the demo data
    import django

    from bench.common import _allow_test_client_host, _configure_environment, format_table

    _configure_environment()
    django.setup()
    from django.core.management import call_command

    _allow_test_client_host()
    call_command("migrate_schemas", verbosity=0)
    print(format_table(run()))
