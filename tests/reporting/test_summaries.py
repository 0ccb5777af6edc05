"""Summaries: the aggregate command, the summaries API, A.1 agreement, idempotence, late data."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.core.management.base import CommandError
from django_tenants.utils import schema_context

from tests.reporting.helpers import aggregate, days, expected, generate_rows, load

pytestmark = pytest.mark.django_db

WEEK = dt.date(2026, 11, 16)  # a Monday
PREV = dt.date(2026, 11, 9)


@pytest.fixture
def rows(acme, tmp_path):
    generated = generate_rows(days("2026-11-09", 14))
    load(acme, tmp_path, generated)
    return generated


def _week_end(start: dt.date) -> dt.date:
    return start + dt.timedelta(days=6)


def test_summary_api_agrees_with_appendix_a1_and_the_metrics_api(rows, acme, acme_marketer, login):
    client = login(acme_marketer)
    body = client.get(f"/o/{acme.slug}/api/v1/summaries", {"period": "week", "start": "2026-11-16"}).json()
    assert body["stored"] is False
    assert body["totals"] == expected(rows, WEEK, _week_end(WEEK))
    assert body["previous_totals"] == expected(rows, PREV, _week_end(PREV))
    metrics = client.get(f"/o/{acme.slug}/api/v1/metrics", {"start": "2026-11-16", "end": "2026-11-22"}).json()
    assert metrics["totals"] == body["totals"]
    # deltas: absolute at the figure's precision, percent 2 places (half up), against the previous week
    cur, prev = body["totals"], body["previous_totals"]
    assert body["deltas"]["impressions"]["abs"] == cur["impressions"] - prev["impressions"]
    spend_diff = Decimal(cur["spend"]) - Decimal(prev["spend"])
    assert body["deltas"]["spend"]["abs"] == str(spend_diff)
    pct = (spend_diff * 100 / Decimal(prev["spend"])).quantize(Decimal("0.01"), rounding="ROUND_HALF_UP")
    assert body["deltas"]["spend"]["pct"] == str(pct)


def test_top_lists_and_underperformers(rows, acme, acme_marketer, login, settings):
    settings.P360_UNDERPERFORMER_MAX_CTR = "100"
    settings.P360_UNDERPERFORMER_MIN_SPEND = "0"
    body = (
        login(acme_marketer).get(f"/o/{acme.slug}/api/v1/summaries", {"period": "week", "start": "2026-11-16"}).json()
    )
    by_conv = body["top_campaigns"]["by_conversions"]
    names = sorted({row[1] for row in rows})
    reference = sorted(
        ((expected(rows, WEEK, _week_end(WEEK), campaign=n), n) for n in names),
        key=lambda item: (-item[0]["conversions"], -Decimal(item[0]["conversion_revenue"])),
    )
    assert [r["campaign"] for r in by_conv] == [n for e, n in reference if e["conversions"] > 0]
    first = by_conv[0]
    assert {k: first[k] for k in reference[0][0]} == reference[0][0]
    by_rev = body["top_creatives"]["by_revenue"]
    revenues = [Decimal(r["conversion_revenue"]) for r in by_rev]
    assert revenues == sorted(revenues, reverse=True) and len(by_rev) <= 5
    creative = by_rev[0]
    assert {k: creative[k] for k in expected(rows, WEEK, WEEK)} == expected(
        rows, WEEK, _week_end(WEEK), creative=creative["creative"]
    )
    # thresholds: with CTR < 100 % and spend >= 0 every creative with impressions qualifies, by spend desc
    spends = [Decimal(r["spend"]) for r in body["underperformers"]]
    assert spends == sorted(spends, reverse=True) and len(spends) == 10
    assert body["thresholds"] == {"max_ctr": "100", "min_spend": "0"}


def test_aggregate_stores_then_api_serves_stored_and_rerun_replaces(rows, acme, acme_marketer, login):
    from reporting.models import Summary

    first = aggregate("--org", "acme", "--period", "week", "--start", "2026-11-16")
    assert first["stored"][0]["totals"] == expected(rows, WEEK, _week_end(WEEK))
    second = aggregate("--org", "acme", "--period", "week", "--start", "2026-11-16")
    assert second["stored"][0]["totals"] == first["stored"][0]["totals"]
    with schema_context(acme.schema_name):
        assert Summary.objects.filter(period="week", start=WEEK).count() == 1
    body = (
        login(acme_marketer).get(f"/o/{acme.slug}/api/v1/summaries", {"period": "week", "start": "2026-11-16"}).json()
    )
    assert body["stored"] is True and body["totals"] == first["stored"][0]["totals"]


def test_monthly_summary(rows, acme):
    result = aggregate("--org", "acme", "--period", "month", "--start", "2026-11-01")
    assert result["end"] == "2026-11-30"
    assert result["stored"][0]["totals"] == expected(rows, dt.date(2026, 11, 1), dt.date(2026, 11, 30))


def test_all_orgs_skips_orgs_without_data(rows, acme, globex):
    result = aggregate("--all-orgs", "--period", "week", "--start", "2026-11-16")
    assert [s["org"] for s in result["stored"]] == ["acme"]
    assert any(s["org"] == "globex" and "no metrics" in s["reason"] for s in result["skipped"])


def test_late_data_regenerates_the_stored_summary(rows, acme, tmp_path, django_capture_on_commit_callbacks):
    from reporting.models import Summary

    aggregate("--org", "acme", "--period", "week", "--start", "2026-11-09")
    aggregate("--org", "acme", "--period", "week", "--start", "2026-11-16")
    late = [["2026-11-10", "Campaign 9", "Strategy 9", "Placement 9", "Creative 9", 10000, 100, 10, "1000.00"]]
    # Surfside replaces whole days: a corrected file for the 10th carries that day's rows plus the late one
    corrected = [r for r in rows if r[0] == "2026-11-10"] + late
    with django_capture_on_commit_callbacks(execute=True):
        load(acme, tmp_path, corrected, name="late.csv")
    with schema_context(acme.schema_name):
        week = Summary.objects.get(period="week", start=PREV)
        following = Summary.objects.get(period="week", start=WEEK)
    assert week.generated_by == "late data"
    assert week.totals == expected(rows + late, PREV, _week_end(PREV))
    assert following.previous == week.totals  # the next week's deltas compare against the corrected week


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"period": "week"}, "start"),
        ({"period": "fortnight", "start": "2026-11-16"}, "period"),
        ({"period": "week", "start": "2026-11-18"}, "start"),
        ({"period": "month", "start": "2026-11-02"}, "start"),
        ({"period": "week", "start": "2026-02-30"}, "start"),
    ],
)
def test_bad_summary_parameters_give_400(acme, acme_marketer, login, params, field):
    response = login(acme_marketer).get(f"/o/{acme.slug}/api/v1/summaries", params)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid" and field in error["details"]["fields"]


def test_period_without_data_is_a_400_not_a_zero(rows, acme, acme_marketer, login):
    response = login(acme_marketer).get(f"/o/{acme.slug}/api/v1/summaries", {"period": "week", "start": "2025-01-06"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "no_data"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--org", "acme", "--period", "week", "--start", "2026-11-18"], "weeks start on a Monday"),
        (["--org", "acme", "--period", "week", "--start", "yesterday"], "not a date"),
        (["--org", "nope", "--period", "week", "--start", "2026-11-16"], "unknown or inactive"),
        (["--org", "acme", "--period", "week", "--start", "2025-01-06"], "no metrics"),
    ],
)
def test_aggregate_bad_input_is_one_line_error(acme, args, message):
    from reporting.models import Summary

    with pytest.raises(CommandError, match=message):
        aggregate(*args)
    with schema_context(acme.schema_name):
        assert not Summary.objects.exists()


def test_summaries_are_isolated(rows, acme, globex, globex_marketer, login):
    aggregate("--org", "acme", "--period", "week", "--start", "2026-11-16")
    client = login(globex_marketer)
    assert client.get(f"/o/{acme.slug}/api/v1/summaries", {"period": "week", "start": "2026-11-16"}).status_code == 404
    response = client.get(f"/o/{globex.slug}/api/v1/summaries", {"period": "week", "start": "2026-11-16"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "no_data"


def test_schedule_periods():
    from reporting.tasks import scheduled_periods

    monday_first = dt.date(2026, 6, 1)  # a Monday and the 1st
    assert scheduled_periods(monday_first) == [
        ("month", dt.date(2026, 5, 1)),
        ("week", dt.date(2026, 5, 25)),
        ("week", dt.date(2026, 6, 1)),
        ("month", dt.date(2026, 6, 1)),
    ]
    assert scheduled_periods(dt.date(2026, 6, 3)) == [("week", dt.date(2026, 6, 1)), ("month", dt.date(2026, 6, 1))]


def test_daily_schedule_stores_each_orgs_periods(rows, acme, globex):
    from reporting.models import Summary
    from reporting.tasks import daily_aggregate

    assert daily_aggregate("2026-11-23") >= 2  # a Monday: previous week + this week + this month, per org
    with schema_context(acme.schema_name):
        stored = set(Summary.objects.values_list("period", "start", "generated_by"))
    assert ("week", WEEK, "schedule") in stored and ("month", dt.date(2026, 11, 1), "schedule") in stored
    with schema_context(globex.schema_name):
        assert not Summary.objects.exists()  # no data: nothing stored, nothing failed


def test_new_data_for_unstored_periods_regenerates_nothing(rows, acme, tmp_path, django_capture_on_commit_callbacks):
    from reporting.models import Summary
    from reporting.tasks import days_changed, stale_periods

    with schema_context(acme.schema_name):
        assert stale_periods([dt.date(2026, 11, 20)]) == []
        assert days_changed(["2026-11-20"]) == []
        assert not Summary.objects.exists()
    with django_capture_on_commit_callbacks() as callbacks:
        load(acme, tmp_path, [r for r in rows if r[0] == "2026-11-20"], name="again.csv")
    assert callbacks == []  # nothing stored covers the day: no task enqueued
    aggregate("--org", "acme", "--period", "month", "--start", "2026-11-01")
    with schema_context(acme.schema_name):
        assert stale_periods([dt.date(2026, 11, 20)]) == [("month", dt.date(2026, 11, 1))]
        assert stale_periods([dt.date(2026, 10, 20)]) == [("month", dt.date(2026, 11, 1))]  # the next month's deltas


def test_the_schedule_exists():
    from django_q.models import Schedule

    from p360.core.jobs.schedules import ensure_schedules

    ensure_schedules()
    schedule = Schedule.objects.get(name="p360: summary aggregation")
    assert schedule.func == "reporting.tasks.daily_aggregate" and schedule.cron == "0 7 * * *"
