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


def _sent_to(client, users):
    """A segment, an email campaign on entry and one delivered email per user (Django's test mail backend)."""
    from django.core.management import call_command

    from tests.segments.helpers import api

    seg = create_segment(client, independent("buyers", value=0)).json()
    for user in users:
        body = {"email": f"{user}@example.com", "attributes": {"first_name": user}}
        assert client.put(f"{api()}/users/{user}/profile", body, content_type="application/json").status_code == 200
    campaign = {"name": "thanks", "segment": seg["id"], "channel": "email", "template": "Hi", "subject": "Hi"}
    assert client.post(f"{api()}/trigger-campaigns", campaign, content_type="application/json").status_code == 201
    post_events(client, [event(user) for user in users])
    call_command("segments_deliver", "--once", "--org", "acme")
    return seg


def test_send_history_filters_pages_and_links_to_the_user(client, monkeypatch):
    from segments import views

    _sent_to(client, ["ann", "bob", "cy"])
    page = client.get(f"{BASE}campaigns/").content.decode()
    assert "3 sends, newest first" in page and f'href="{BASE}users/?q=ann"' in page
    assert 'href="?campaign=' in page and "on entry" in page  # a campaign's name filters the history to its sends
    assert "3 sends match" in client.get(f"{BASE}campaigns/?status=sent&channel=email").content.decode()
    nothing = client.get(f"{BASE}campaigns/?status=failed").content.decode()
    assert "No send matches these filters" in nothing and "users/?q=ann" not in nothing
    junk = client.get(f"{BASE}campaigns/?status=zzz&channel=fax&campaign=x&page=-4")
    assert junk.status_code == 200 and "3 sends, newest first" in junk.content.decode()  # junk filters are ignored
    monkeypatch.setattr(views, "SENDS_PER_PAGE", 2)
    first = client.get(f"{BASE}campaigns/?status=sent").content.decode()
    assert "Page 1 of 2" in first and "status=sent&amp;page=2" in first
    second = client.get(f"{BASE}campaigns/?status=sent&page=2").content.decode()
    assert "Page 2 of 2" in second and "← Newer" in second


def test_user_lookup_opens_on_the_latest_changes_and_has_an_empty_state(client):
    assert b"No user has entered a segment yet" in client.get(f"{BASE}users/").content
    create_segment(client, independent("buyers", value=0))
    post_events(client, [event("recent-1"), event("recent-2")])
    page = client.get(f"{BASE}users/").content.decode()
    assert "Latest entries and exits" in page and 'href="?q=recent-2"' in page and "buyers" in page


def test_home_has_segment_and_destination_cards_of_its_own_org_only(client, globex, globex_marketer, login):
    _sent_to(client, ["ann", "bob"])
    home = client.get("/o/acme/").content.decode()
    assert "Event segments" in home and "2 users in a segment now" in home and 'href="/o/acme/segments/"' in home
    assert "Destinations" in home and "none set up yet" in home
    other = login(globex_marketer).get("/o/globex/").content.decode()
    assert "Event segments" in other and "none active yet" in other and "2 users" not in other


def test_users_in_segments_stops_counting_at_its_cap(client, acme):
    from django_tenants.utils import schema_context

    from segments.selectors import users_in_segments

    create_segment(client, independent("buyers", value=0))
    post_events(client, [event("cap-1"), event("cap-2"), event("cap-3")])
    with schema_context(acme.schema_name):
        assert users_in_segments() == (3, False)
        assert users_in_segments(cap=2) == (2, True)  # the home page shows "2+"
