"""Pacing reads running spend totals (campaigns.SpendTotal) kept by the ETL's "metrics_loaded" hook: they must
agree with the daily rows exactly, for any flights, days loaded in any order, late files for past days and
retention. The reference engine is `tree_figures_from_daily_rows` (one aggregation over the daily rows)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection, transaction
from django_tenants.utils import schema_context
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from campaigns import spend_totals
from campaigns.models import Campaign, LineItem, Program, SpendTotal, Strategy
from campaigns.pacing import line_item_rows, program_pacing, same_tree, tree_figures, tree_figures_from_daily_rows
from tests.ingestion.helpers import SURFSIDE_HEADER, api_metrics, ingest, set_cpm, write_csv
from tests.orchestration.helpers import api

pytestmark = pytest.mark.django_db
DAY0 = dt.date(2026, 9, 1)


class _Rollback(Exception):
    pass


def _insert_day(day: dt.date, rows: list[tuple[int, int, int, str]]) -> None:
    """Replace the daily metrics of `day` (as a load does), then tell the hook."""
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM campaigns_dailymetric WHERE date = %s", [day])
        for n, (campaign_id, strategy_id, impressions, cost) in enumerate(rows):
            cursor.execute(
                """INSERT INTO campaigns_dailymetric (date, campaign_id, strategy_id, placement_id, creative_id, source,
                       impressions, clicks, conversions, conversion_revenue, cpm, spend, media_cost, run_id, loaded_at)
                   VALUES (%s, %s, %s, %s, 1, 'reds', %s, %s, %s, 0, 10, %s, %s, 0, now())""",
                [
                    day,
                    campaign_id,
                    strategy_id,
                    n + 1,
                    impressions,
                    impressions // 50,
                    impressions // 400,
                    Decimal(impressions) / 100,
                    Decimal(cost),
                ],
            )
    spend_totals.metrics_loaded([day])


flight = st.one_of(st.none(), st.tuples(st.integers(0, 20), st.integers(0, 20)).map(lambda t: (min(t), max(t))))
day_load = st.tuples(
    st.integers(0, 20),  # the day
    st.lists(st.tuples(st.integers(0, 3), st.integers(0, 5000), st.sampled_from(["0.5", "0.003", "1.25"])), max_size=4),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    program_flight=flight,
    campaign_flights=st.lists(flight, min_size=2, max_size=2),
    item_flights=st.lists(flight, min_size=3, max_size=3),
    loads=st.lists(day_load, min_size=1, max_size=12),
    as_of=st.integers(-1, 22),
)
def test_running_totals_agree_with_the_daily_rows(
    acme: Any, program_flight: Any, campaign_flights: Any, item_flights: Any, loads: Any, as_of: int
) -> None:
    def day(n: int) -> dt.date:
        return DAY0 + dt.timedelta(days=n)

    def dates(f: Any) -> tuple[dt.date | None, dt.date | None]:
        return (None, None) if f is None else (day(f[0]), day(f[1]))

    with schema_context(acme.schema_name):
        try:
            with transaction.atomic():
                p_start, p_end = dates(program_flight)
                program = Program.objects.create(name="Prop", budget=100, start_date=p_start, end_date=p_end)
                campaigns = []
                for i, f in enumerate(campaign_flights):
                    start, end = dates(f)
                    campaigns.append(
                        Campaign.objects.create(program=program, name=f"C{i}", start_date=start, end_date=end)
                    )
                strategies = []
                for i, f in enumerate(item_flights):  # line items 0, 1 in C0; 2 in C1; strategy 3 unlinked
                    campaign = campaigns[0 if i < 2 else 1]
                    start, end = dates(f)
                    LineItem.objects.create(
                        campaign=campaign, name=f"L{i}", external_id=f"li{i}", start_date=start, end_date=end
                    )
                    strategies.append(Strategy.objects.create(campaign=campaign, name=f"li{i}"))
                strategies.append(Strategy.objects.create(campaign=campaigns[1], name="unlinked"))
                for n, rows in loads:  # in the order drawn: late days for past dates included
                    _insert_day(
                        day(n),
                        [(strategies[s].campaign_id, strategies[s].pk, imps, cost) for s, imps, cost in rows],
                    )
                items = line_item_rows([c.pk for c in campaigns])
                tree = list(program.campaigns.select_related("program").order_by("name", "pk"))
                ours = tree_figures(program, tree, items, day(as_of))
                reference = tree_figures_from_daily_rows(program, tree, items, day(as_of))
                assert same_tree(ours, reference), (ours, reference)

                # every day's "latest total on or before it" equals the daily rows summed up to it, and a full
                # rebuild reads the same (the incremental path may keep a total on a day that lost its rows)
                def latest_totals() -> dict[tuple[int, int], Any]:
                    out = {}
                    for strategy in strategies:
                        for n in range(-1, 22):
                            row = (
                                SpendTotal.objects.filter(strategy_id=strategy.pk, date__lte=day(n))
                                .order_by("-date")
                                .values_list("spend", "impressions", "media_cost")
                                .first()
                            )
                            out[(strategy.pk, n)] = row or (Decimal(0), 0, Decimal(0))
                    return out

                incremental = latest_totals()
                for (sid, n), (spend, impressions, _) in incremental.items():
                    with connection.cursor() as cursor:
                        cursor.execute(
                            "SELECT coalesce(sum(spend), 0), coalesce(sum(impressions), 0) FROM campaigns_dailymetric"
                            " WHERE strategy_id = %s AND date <= %s",
                            [sid, day(n)],
                        )
                        assert cursor.fetchone() == (spend, impressions), (sid, n)
                spend_totals.rebuild()
                assert latest_totals() == incremental
                assert same_tree(tree_figures(program, tree, items, day(as_of)), reference)
                raise _Rollback
        except _Rollback:
            pass


def test_late_data_and_a_new_day_keep_pacing_equal_to_the_metrics_api(acme, manager, login, tmp_path):
    """A late file replaces a past day (different figures) and a new day arrives: pacing, read from the running
    totals, still equals the metrics API (read from reporting's rollup) to the cent, at every level."""
    from campaigns.services import campaign_save, line_item_save, program_save

    set_cpm(acme, "10")
    with schema_context(acme.schema_name):
        p = program_save(
            program=Program(
                name="Late IO", budget="1000.00", start_date=dt.date(2026, 11, 1), end_date=dt.date(2026, 11, 30)
            ),
            actor=None,
        )
        c = campaign_save(
            campaign=Campaign(program=p, name="Brand", source="surfside", budget="600.00", status="active"), actor=None
        )
        line_item_save(
            line_item=LineItem(
                campaign=c, name="Display", budget="300.00", status="active", start_date=dt.date(2026, 11, 3)
            ),
            actor=None,
        )
        line_item_save(line_item=LineItem(campaign=c, name="Video", budget="200.00", status="active"), actor=None)

    def load(name: str, rows: list[list[Any]]) -> None:
        ingest("surfside", str(write_csv(tmp_path / name, SURFSIDE_HEADER, rows)), "--org", "acme")

    load(
        "a.csv",
        [
            [f"2026-11-{d:02d}", "Brand", s, "P", "C", 1000 + d * 7, 3, 1, "0"]
            for d in range(1, 9)
            for s in ("Display", "Video")
        ],
    )
    load(
        "late.csv",
        [
            ["2026-11-02", "Brand", "Display", "P", "C", 333, 0, 0, "0"],
            ["2026-11-04", "Brand", "Video", "P", "C", 12345, 9, 2, "0"],
        ],
    )
    load("new.csv", [["2026-11-09", "Brand", "Video", "P", "C", 777, 0, 0, "0"]])
    client = login(manager)
    as_of = "2026-11-09"
    body = api(client, acme, "get", "pacing", program=p.pk, as_of=as_of).json()
    [campaign] = body["campaigns"]
    items = {li["name"]: li for li in campaign["line_items"]}
    by_strategy = {
        r["strategy"]: r["spend"]
        for r in api_metrics(client, acme, start="2026-11-03", end=as_of, group_by="strategy").json()["rows"]
    }
    assert items["Display"]["spent"] == by_strategy["Display"]  # its own flight: from the 3rd
    whole = {
        r["strategy"]: r["spend"]
        for r in api_metrics(client, acme, start="2026-11-01", end=as_of, group_by="strategy").json()["rows"]
    }
    assert items["Video"]["spent"] == whole["Video"]
    program_row = api_metrics(client, acme, start="2026-11-01", end=as_of, group_by="program", program=p.pk).json()
    assert campaign["spent"] == body["program"]["spent"] == program_row["totals"]["spend"]
    with schema_context(acme.schema_name):
        tree = list(Program.objects.get(pk=p.pk).campaigns.select_related("program"))
        rows = line_item_rows([c.pk])
        program = Program.objects.get(pk=p.pk)
        day = dt.date(2026, 11, 9)
        assert same_tree(tree_figures(program, tree, rows, day), tree_figures_from_daily_rows(program, tree, rows, day))
        assert program_pacing(program, day) == body


def test_retention_and_campaign_delete_keep_the_totals_equal_to_the_daily_rows(acme, tmp_path):
    from campaigns.retention import metrics_step
    from campaigns.services import campaign_delete

    set_cpm(acme, "10")
    rows = [[f"2026-11-{d:02d}", name, "S", "P", "C", 1000, 0, 0, "0"] for d in range(1, 6) for name in ("A", "B")]
    ingest("surfside", str(write_csv(tmp_path / "r.csv", SURFSIDE_HEADER, rows)), "--org", "acme")
    with schema_context(acme.schema_name):
        before = SpendTotal.objects.count()
        metrics_step(acme, cutoff=dt.date(2026, 11, 3), dry_run=False)
        with connection.cursor() as cursor:
            cursor.execute("SELECT strategy_id, sum(spend) FROM campaigns_dailymetric GROUP BY strategy_id")
            daily = dict(cursor.fetchall())
        latest = {t.strategy_id: t.spend for t in SpendTotal.objects.order_by("strategy_id", "date")}
        assert latest == daily and SpendTotal.objects.count() < before  # restarted from the oldest day kept
        campaign_delete(campaign=Campaign.objects.get(name="A"), actor=None)
        assert set(SpendTotal.objects.values_list("campaign_id", flat=True)) == {Campaign.objects.get(name="B").pk}
