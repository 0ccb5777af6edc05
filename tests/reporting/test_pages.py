"""Marketer report pages: dashboard, drill-down, summaries page; figures, state, bad input, isolation."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from p360.core import formatting
from tests.reporting.helpers import aggregate, days, expected, generate_rows, load, shown

pytestmark = pytest.mark.django_db

RANGE = {"preset": "custom", "start": "2026-11-16", "end": "2026-11-22"}


@pytest.fixture
def rows(acme, tmp_path):
    generated = generate_rows(days("2026-11-09", 14), campaigns=4, creatives=8)
    load(acme, tmp_path, generated)
    return generated


def _kpi(html: str, key: str) -> str:
    match = re.search(
        rf'data-kpi="{key}">\s*<span class="kpi-label">[^<]*</span>\s*<span class="kpi-value">([^<]*)<', html
    )
    assert match, key
    return match.group(1).strip()


def test_dashboard_kpis_agree_with_a1_and_deltas_use_the_previous_equal_range(rows, acme, acme_marketer, login):
    response = login(acme_marketer).get(f"/o/{acme.slug}/reports/", RANGE)
    assert response.status_code == 200
    html = response.content.decode()
    want = expected(rows, dt.date(2026, 11, 16), dt.date(2026, 11, 22))
    for key in ("impressions", "clicks", "conversions", "conversion_revenue", "spend", "ctr", "cpa", "roas"):
        assert _kpi(html, key) == formatting.metric(key, want[key])  # issue 15: the one formatting layer
    assert _kpi(html, "spend").startswith("$") and re.fullmatch(r"\d+\.\d\d %", _kpi(html, "ctr"))
    assert re.fullmatch(r"[\d,]+\.\d %", _kpi(html, "roas")) and "," in _kpi(html, "impressions")
    data = response.context["data"]
    assert data["kpis"]["previous_start"] == "2026-11-09" and data["kpis"]["previous_end"] == "2026-11-15"
    assert data["kpis"]["previous"]["spend"] == expected(rows, dt.date(2026, 11, 9), dt.date(2026, 11, 15))["spend"]
    assert len(data["trend"]) == 7 and data["sources"][0]["source"] == "surfside"
    assert 'id="report-chart-data"' in html and "chart.umd.min.js" in html
    assert "Show as a table" in html  # text alternative of the charts


def test_dashboard_matches_metrics_api_for_every_campaign(rows, acme, acme_marketer, login):
    client = login(acme_marketer)
    page = client.get(f"/o/{acme.slug}/reports/", {**RANGE, "sort": "name", "dir": "asc"}).context["table"]
    api = client.get(
        f"/o/{acme.slug}/api/v1/metrics", {"start": RANGE["start"], "end": RANGE["end"], "group_by": "campaign"}
    ).json()["rows"]
    strip = ("campaign_source",)
    assert [{k: v for k, v in r.items() if k not in strip} for r in page.rows] == [
        {k: v for k, v in r.items() if k not in strip} for r in api
    ]


def test_tables_sort_search_and_paginate_server_side(rows, acme, acme_marketer, login):
    client = login(acme_marketer)
    url = f"/o/{acme.slug}/reports/"
    page = client.get(url, {**RANGE, "table": "creative", "sort": "clicks", "dir": "asc"}).context["table"]
    assert page.total == 32 and len(page.rows) == 25 and page.pages == 2
    clicks = [r["clicks"] for r in page.rows]
    assert clicks == sorted(clicks)
    second = client.get(url, {**RANGE, "table": "creative", "sort": "clicks", "dir": "asc", "page": 2}).context["table"]
    assert len(second.rows) == 7
    found = client.get(url, {**RANGE, "table": "creative", "q": "creative 2-"}).context["table"]
    assert found.total == 8 and all(r["creative"].startswith("Creative 2-") for r in found.rows)
    by_campaign = client.get(url, {**RANGE, "table": "creative", "q": "campaign 1"}).context["table"]
    assert by_campaign.total == 8  # the search also matches the row's campaign
    strategies = client.get(url, {**RANGE, "table": "strategy", "sort": "roas"}).context["table"]
    assert strategies.total == 8


def test_source_and_campaign_filters(rows, acme, acme_marketer, login):
    client = login(acme_marketer)
    with schema_context(acme.schema_name):
        from campaigns.models import Campaign

        cid = Campaign.objects.get(name="Campaign 2").pk
    response = client.get(f"/o/{acme.slug}/reports/", {**RANGE, "campaign": cid})
    want = expected(rows, dt.date(2026, 11, 16), dt.date(2026, 11, 22), campaign="Campaign 2")
    assert response.context["data"]["kpis"]["current"]["spend"] == want["spend"]
    assert f"campaign={cid}" in response.context["q"].params()  # kept by sort links and pager
    empty = client.get(f"/o/{acme.slug}/reports/", {**RANGE, "source": "facebook"})
    assert empty.status_code == 200 and "No metrics in this range" in empty.content.decode()


def test_presets_cover_the_expected_days(acme, acme_marketer, login, tmp_path):
    yesterday = timezone.now().date() - dt.timedelta(days=1)
    recent = generate_rows([yesterday - dt.timedelta(days=n) for n in range(10)], campaigns=1, creatives=2)
    load(acme, tmp_path, recent)
    client = login(acme_marketer)
    for preset, length in (("last7", 7), ("last30", 30), ("last90", 90)):
        q = client.get(f"/o/{acme.slug}/reports/", {"preset": preset}).context["q"]
        assert q.end == yesterday and (q.end - q.start).days + 1 == length
    body = client.get(f"/o/{acme.slug}/reports/", {"preset": "last7"}).context["data"]["kpis"]["current"]
    assert body["spend"] == expected(recent, yesterday - dt.timedelta(days=6), yesterday)["spend"]
    q = client.get(f"/o/{acme.slug}/reports/", {"preset": "last_month"}).context["q"]
    assert q.start.day == 1 and (q.end + dt.timedelta(days=1)).day == 1


def test_data_complete_up_to_comes_from_ingestion_runs(rows, acme, acme_marketer, login):
    html = login(acme_marketer).get(f"/o/{acme.slug}/reports/", RANGE).content.decode()
    assert "Data complete up to" in html and "Surfside 22 Nov 2026" in html


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"preset": "custom", "start": "2026-11-22", "end": "2026-11-16"}, "ends"),
        ({"preset": "custom", "start": "2020-01-01", "end": "2026-11-16"}, "at most 731 days"),
        ({"preset": "custom", "start": "2026-11-31", "end": "2026-12-02"}, "not a date"),
        ({"preset": "custom", "end": "2026-12-02"}, "start is required"),
        ({"preset": "forever"}, "unknown range"),
        ({"table": "planet"}, "unknown table"),
        ({"sort": "vibes"}, "unknown sort"),
        ({"source": "myspace"}, "unknown source"),
        ({"campaign": "x"}, "campaign must be"),
    ],
)
def test_bad_input_gives_a_clear_400_page(acme, acme_marketer, login, params, message):
    response = login(acme_marketer).get(f"/o/{acme.slug}/reports/", params)
    assert response.status_code == 400
    assert message.lower() in response.content.decode().lower()


def test_empty_org_says_what_to_do(globex, globex_marketer, login):
    html = login(globex_marketer).get(f"/o/{globex.slug}/reports/").content.decode()
    assert "No metrics yet" in html and "upload a Facebook export" in html


def test_campaign_drill_down(rows, acme, acme_marketer, login):
    client = login(acme_marketer)
    with schema_context(acme.schema_name):
        from campaigns.models import Campaign

        cid = Campaign.objects.get(name="Campaign 1").pk
    dashboard = client.get(f"/o/{acme.slug}/reports/", RANGE).content.decode()
    assert f"/o/{acme.slug}/reports/campaigns/{cid}/" in dashboard
    response = client.get(f"/o/{acme.slug}/reports/campaigns/{cid}/", RANGE)
    assert response.status_code == 200
    want = expected(rows, dt.date(2026, 11, 16), dt.date(2026, 11, 22), campaign="Campaign 1")
    assert response.context["data"]["kpis"]["current"] == {**want, "has_data": True}
    assert response.context["table"].level == "strategy" and response.context["table"].total == 2
    creatives = client.get(f"/o/{acme.slug}/reports/campaigns/{cid}/", {**RANGE, "table": "creative"}).context["table"]
    assert {r["creative"] for r in creatives.rows} == {f"Creative 1-{k}" for k in range(8)}
    assert client.get(f"/o/{acme.slug}/reports/campaigns/{cid}/", {**RANGE, "table": "campaign"}).status_code == 400


def test_summaries_page(rows, acme, acme_marketer, login):
    client = login(acme_marketer)
    assert "None stored yet" in client.get(f"/o/{acme.slug}/reports/summaries/").content.decode()
    aggregate("--org", "acme", "--period", "week", "--start", "2026-11-16")
    response = client.get(f"/o/{acme.slug}/reports/summaries/")
    html = response.content.decode()
    assert response.context["body"]["start"] == "2026-11-16" and "Top creatives by revenue" in html
    assert shown(expected(rows, dt.date(2026, 11, 16), dt.date(2026, 11, 22))["spend"]) in html
    not_stored = client.get(f"/o/{acme.slug}/reports/summaries/", {"period": "week", "start": "2026-11-09"})
    assert "Not stored yet" in not_stored.content.decode()
    bad = client.get(f"/o/{acme.slug}/reports/summaries/", {"period": "week", "start": "2026-11-10"})
    assert bad.status_code == 400 and "weeks start on a Monday" in bad.content.decode()
    month = client.get(f"/o/{acme.slug}/reports/summaries/", {"period": "month", "start": "2026-11-01"})
    assert month.status_code == 200 and month.context["body"]["end"] == "2026-11-30"


def test_report_pages_are_isolated(rows, acme, globex, globex_marketer, acme_marketer, login):
    client = login(globex_marketer)
    for path in ("", "summaries/", "campaigns/1/", "export.csv"):
        assert client.get(f"/o/{acme.slug}/reports/{path}", RANGE).status_code == 404
    # The same campaign PK in globex is globex's canary campaign, without acme's figures.
    with schema_context(globex.schema_name):
        from campaigns.models import Campaign

        canary = Campaign.objects.get(name="globex-canary-campaign-1")
    response = client.get(f"/o/{globex.slug}/reports/campaigns/{canary.pk}/", RANGE)
    assert response.status_code == 200 and "globex-canary-campaign-1" in response.content.decode()
    assert response.context["data"]["kpis"]["current"]["has_data"] is False
    with schema_context(acme.schema_name):
        acme_only = Campaign.objects.get(name="Campaign 3").pk
    if acme_only != canary.pk:
        with schema_context(globex.schema_name):
            exists = Campaign.objects.filter(pk=acme_only).exists()
        if not exists:
            assert client.get(f"/o/{globex.slug}/reports/campaigns/{acme_only}/", RANGE).status_code == 404
    assert "Campaign 0" not in client.get(f"/o/{globex.slug}/reports/", RANGE).content.decode()


def test_nav_link(acme, acme_marketer, login):
    assert f'href="/o/{acme.slug}/reports/"' in login(acme_marketer).get(f"/o/{acme.slug}/").content.decode()


def test_deleting_a_campaign_removes_it_from_the_dashboard_totals(rows, acme, acme_marketer, login):
    from campaigns.models import Campaign
    from campaigns.services import campaign_delete

    with schema_context(acme.schema_name):
        campaign_delete(campaign=Campaign.objects.get(name="Campaign 0"), actor=None)
    kpis = login(acme_marketer).get(f"/o/{acme.slug}/reports/", RANGE).context["data"]["kpis"]["current"]
    rest = [r for r in rows if r[1] != "Campaign 0"]
    assert kpis["spend"] == expected(rest, dt.date(2026, 11, 16), dt.date(2026, 11, 22))["spend"]


def test_dashboard_data_in_one_query_equals_the_separate_selectors(rows, acme):
    from reporting import selectors

    start, end = dt.date(2026, 11, 16), dt.date(2026, 11, 22)
    with schema_context(acme.schema_name):
        for filters in (
            selectors.Filters(),
            selectors.Filters(sources=("surfside",)),
            selectors.Filters(sources=("vibe",)),
        ):
            data = selectors.dashboard_data(start, end, filters)
            assert data["kpis"] == selectors.kpis(start, end, filters)
            assert data["trend"] == selectors.trend(start, end, filters)
            assert data["sources"] == selectors.by_source(start, end, filters)


def test_home_tells_same_named_campaigns_apart_by_source(acme, acme_marketer, login):
    """A campaign is unique per (name, source): the home's card shows the source beside an ingested campaign's
    name, so a manual "Q4" and Surfside's "Q4" do not read as a duplicate."""
    from campaigns.models import Campaign, MediaSource

    with schema_context(acme.schema_name):
        Campaign.objects.create(name="Q4 push", source=MediaSource.MANUAL)
        Campaign.objects.create(name="Q4 push", source=MediaSource.SURFSIDE)
    home = login(acme_marketer).get(f"/o/{acme.slug}/").content.decode()
    assert home.count(">Q4 push</a>") == 2
    assert home.count('title="Media source">Surfside</span>') == 1


def test_home_shows_budgets_and_dates_as_the_other_pages_do(acme, acme_marketer, login):
    """The home's campaigns card showed `125,000.00 USD` and `2026-10-01` while the programs and report pages show
    `$125,000.00` and `1 Oct 2026`: one formatting layer for every page."""
    from datetime import date
    from decimal import Decimal

    from campaigns.models import Campaign, MediaSource

    with schema_context(acme.schema_name):
        Campaign.objects.create(
            name="Formatted",
            source=MediaSource.MANUAL,
            budget=Decimal("125000"),
            currency="USD",
            start_date=date(2026, 10, 1),
            end_date=date(2026, 12, 31),
        )
    home = login(acme_marketer).get(f"/o/{acme.slug}/").content.decode()
    assert "$125,000.00" in home and "125,000.00 USD" not in home
    assert "1 Oct 2026" in home and "31 Dec 2026" in home


def test_an_empty_manual_campaign_says_why_it_has_no_figures(acme, acme_marketer, login):
    """It read "the campaign's data comes from Manual." (the source label dropped into a sentence)."""
    from campaigns.models import Campaign, MediaSource

    with schema_context(acme.schema_name):
        manual = Campaign.objects.create(name="Typed in", source=MediaSource.MANUAL)
        ingested = Campaign.objects.create(name="From Surfside", source=MediaSource.SURFSIDE)
    client = login(acme_marketer)
    body = client.get(f"/o/{acme.slug}/reports/campaigns/{manual.pk}/").content.decode()
    assert "No metrics for this campaign" in body and "entered by hand" in body and "comes from Manual" not in body
    other = client.get(f"/o/{acme.slug}/reports/campaigns/{ingested.pk}/").content.decode()
    assert "comes from Surfside" in other and "entered by hand" not in other


def test_sources_are_named_as_the_rest_of_the_portal_names_them(rows, acme, acme_marketer, login):
    """Session 13 walk: the dashboard's spend-by-source table, its chart and the campaign pills said `surfside`
    where the freshness line, the filters and the home say "Surfside"."""
    response = login(acme_marketer).get(f"/o/{acme.slug}/reports/", RANGE)
    html = response.content.decode()
    assert '<td class="source-name">Surfside</td>' in html and ">surfside</td>" not in html
    assert '<span class="pill">Surfside</span>' in html and '<span class="pill">surfside</span>' not in html
    chart = response.context["chart"]["sources"]
    assert chart[0]["source"] == "surfside" and chart[0]["label"] == "Surfside"  # the code stays for the filters
