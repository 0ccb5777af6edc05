"""Marketer pages and the org admin for segments: editor, live counts (SSE), lookup, campaigns, isolation."""

from __future__ import annotations

import pytest

from tests.segments.helpers import create_segment, event, independent, post_events

pytestmark = pytest.mark.django_db
BASE = "/o/acme/segments/"


@pytest.fixture
def client(acme, acme_marketer, login):
    return login(acme_marketer)


def test_editor_creates_and_edits_a_segment_and_shows_errors(client):
    page = client.get(f"{BASE}new/")
    assert page.status_code == 200 and b"segments/backtest" in page.content
    form = {
        "name": "heavy",
        "type": "independent",
        "event_type": "orders",
        "attribute": "count",
        "operator": "gt",
        "value": "2",
        "window_minutes": "60",
    }
    response = client.post(f"{BASE}new/", form)
    assert response.status_code == 302
    detail = client.get(response["Location"])
    assert b"heavy" in detail.content and b"v1" in detail.content
    bad = client.post(f"{BASE}new/", {**form, "name": "bad", "window_minutes": "5000"})
    assert bad.status_code == 400 and b"window_minutes" in bad.content
    derived = client.post(f"{BASE}new/", {"name": "d", "type": "derived", "expression": "{not json"})
    assert derived.status_code == 400 and b"not valid JSON" in derived.content


def test_list_detail_toggle_and_live_counts_over_sse(client):
    seg = create_segment(client, independent("buyers", value=0)).json()
    post_events(client, [event("u1"), event("u2")])
    assert b"buyers" in client.get(BASE).content
    assert client.get(f"{BASE}live/?seconds=x")["Content-Type"] == "text/event-stream"  # junk: the default, no 500
    live = client.get(f"{BASE}live/?seconds=1")
    assert live["Content-Type"] == "text/event-stream"
    body = b"".join(live.streaming_content).decode()
    assert "event: counts" in body and f'"{seg["id"]}": 2' in body
    assert client.post(f"{BASE}{seg['id']}/toggle/").status_code == 302
    assert b"Activate" in client.get(f"{BASE}{seg['id']}/").content


def test_user_lookup_and_campaign_pages(client):
    create_segment(client, independent("buyers", value=0))
    post_events(client, [event("lookup-me")])
    page = client.get(f"{BASE}users/?q=lookup-me").content
    assert b"buyers" in page and b"lookup-me" in page
    assert b"Did you mean" in client.get(f"{BASE}users/?q=lookup").content
    assert client.get(f"{BASE}campaigns/").status_code == 200


def test_pages_are_per_org(acme, globex, globex_marketer, login):
    other = login(globex_marketer)
    assert other.get(BASE).status_code in (403, 404)
    assert other.get(f"{BASE}live/").status_code in (403, 404)


def test_org_admin_lists_segments_campaigns_and_sends(acme, manager, login):
    client = login(manager)
    create_segment(client, independent("admin-visible", value=0))
    for model in ("segment", "triggercampaign", "send", "transition", "userprofile"):
        response = client.get(f"/o/acme/admin/segments/{model}/")
        assert response.status_code == 200, model
    page = client.get("/o/acme/admin/segments/segment/")
    assert b"admin-visible" in page.content
    # the sidebar entries are registered by segments/registrations.py through the p360.core registry
    for title, model in (
        ("Event segments", "segment"),
        ("Trigger campaigns", "triggercampaign"),
        ("Trigger sends", "send"),
    ):
        assert title.encode() in page.content, title
        assert f'href="/o/acme/admin/segments/{model}/"'.encode() in page.content, model


def test_members_csv_button_downloads_the_peoples_csv(client, acme, globex_marketer, login):
    import csv
    import io

    from django_tenants.utils import schema_context

    from p360.core.audit.models import AuditEvent

    seg = create_segment(client, independent("csv-people", value=0)).json()
    post_events(client, [event(u) for u in ("=cmd", "+uid2/Ab==", "@y", "-12", "plain", "-x")])
    page = client.get(f"{BASE}{seg['id']}/").content.decode()
    assert f'href="{BASE}{seg["id"]}/members.csv"' in page and 'members?format=csv">' not in page
    response = client.get(f"{BASE}{seg['id']}/members.csv")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert f"segment-{seg['id']}-members.csv" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    ids = {r[0] for r in rows[1:]}
    # p360.core.exports' rule for files people open: what a spreadsheet would evaluate gets a leading '
    assert ids == {"'=cmd", "'+uid2/Ab==", "'@y", "-12", "plain", "'-x"}  # a plain number stays a number
    with schema_context("public"):
        assert AuditEvent.objects.filter(action="segment.exported", entity_id=str(seg["id"]), org_id=acme.pk).exists()
    assert login(globex_marketer).get(f"{BASE}{seg['id']}/members.csv").status_code in (403, 404)


def test_definitions_read_as_sentences_and_the_hours_chart_has_every_hour(client):
    buyers = create_segment(client, independent("buyers", value=2)).json()
    carts = create_segment(
        client,
        {
            "name": "carts",
            "type": "independent",
            "rule": {"event_type": "addToCart", "attribute": "sum", "property": "price", "operator": "gte",
                     "value": 200.5, "window_minutes": 1440},
        },
    ).json()  # fmt: skip
    both = create_segment(
        client,
        {
            "name": "both",
            "type": "derived",
            "expression": {"op": "and", "children": [{"segment": buyers["id"]}, {"op": "not", "children": [{"segment": carts["id"]}]}]},
        },
    ).json()  # fmt: skip
    post_events(client, [event("u1"), event("u1"), event("u1")])
    listing = client.get(BASE).content.decode()
    assert "count of orders: more than 2 in the last hour" in listing
    assert "sum of price of addToCart: at least 200.5 in the last 24 hours" in listing
    assert "all of (“buyers”, not “carts”)" in listing
    detail = client.get(f"{BASE}{buyers['id']}/")
    assert "count of orders: more than 2 in the last hour" in detail.content.decode()
    series = detail.context["series"]
    assert len(series) == 48 and series[-1]["entries"] == 1 and sum(row["entries"] for row in series) == 1
    assert b'id="segment-hours"' in detail.content  # the chart, with the table behind "Show as a table"
    assert client.get(f"{BASE}{both['id']}/").context["stats"]["members"] == 1  # buyers and not carts
    quiet = client.get(f"{BASE}{carts['id']}/")
    assert b'id="segment-hours"' not in quiet.content and b"No entries or exits" in quiet.content
