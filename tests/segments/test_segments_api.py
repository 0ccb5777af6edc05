"""Segments through the API and the evaluator: entry on ingest, exit by timer, derived logic, cycles,
dependencies, activation, versions, members/history, backtest, profiles, and tenant isolation."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from tests.segments.helpers import ago, api, create_segment, event, independent, iso, post_events, user_segments

pytestmark = pytest.mark.django_db


@pytest.fixture
def client(acme, acme_marketer, login):
    return login(acme_marketer)


def test_user_enters_when_count_rule_holds_and_it_is_visible_at_once(client):
    seg = create_segment(client, independent("heavy buyers", value=2)).json()
    assert seg["id"] and seg["version"] == 1 and seg["rule"]["operator"] == "gt"
    post_events(client, [event("u1"), event("u1"), event("u2")])
    assert user_segments(client, "u1") == [] and user_segments(client, "u2") == []
    post_events(client, [event("u1")])
    body = client.get(f"{api()}/users/u1/segments").json()
    assert body["user_id"] == "u1" and [s["name"] for s in body["segments"]] == ["heavy buyers"]
    assert body["segments"][0]["entered_at"]
    history = client.get(f"{api()}/segments/{seg['id']}/history").json()["results"]
    assert len(history) == 1 and history[0]["kind"] == "enter" and history[0]["rule_version"] == 1
    assert history[0]["event_id"] and "count of orders over 60 min = 3 > 2" in history[0]["reason"]


def test_sum_rule_over_a_property_and_camel_case_rule(client):
    body = {
        "name": "big carts",
        "type": "independent",
        "rule": {
            "eventType": "addToCart",
            "attribute": "sum",
            "property": "price",
            "operator": "gte",
            "value": 200,
            "windowMinutes": 1440,
        },
    }
    assert create_segment(client, body).status_code == 201
    post_events(
        client,
        [
            event("u1", "addToCart", price=150),
            event("u1", "addToCart", price="999"),
            event("u2", "addToCart", price=120),
            event("u2", "addToCart", price=80.5),
        ],
    )
    assert user_segments(client, "u1") == []  # a string price is not a number
    assert user_segments(client, "u2") == ["big carts"]


def test_exit_when_the_window_slides_past_with_no_new_event(client):
    seg = create_segment(client, independent("recent", value=0, window=60)).json()
    post_events(client, [event("u1", when=ago(minutes=59))])
    assert user_segments(client, "u1") == ["recent"]
    # nothing is due yet
    call_command("segments_timers", "--once", "--org", "acme")
    assert user_segments(client, "u1") == ["recent"]
    later = iso(timezone.now() + timedelta(minutes=2))
    call_command("segments_timers", "--once", "--org", "acme", "--at", later)
    assert user_segments(client, "u1") == []
    rows = client.get(f"{api()}/segments/{seg['id']}/history?user_id=u1").json()["results"]
    assert [r["kind"] for r in rows] == ["exit", "enter"]
    assert rows[0]["entered_at"] == rows[1]["entered_at"] and rows[0]["exited_at"]
    assert rows[0]["reason"].startswith("window slid past")
    # running the timers again changes nothing (no timer left, no double exit)
    call_command("segments_timers", "--once", "--org", "acme", "--at", later)
    assert len(client.get(f"{api()}/segments/{seg['id']}/history").json()["results"]) == 2


def test_resending_a_batch_doubles_no_entry(client):
    seg = create_segment(client, independent("any order", value=0)).json()
    batch = [event("u1"), event("u2")]
    post_events(client, batch)
    post_events(client, batch)
    assert client.get(f"{api()}/segments/{seg['id']}/history").json()["count"] == 2


def test_derived_and_or_not(client):
    a = create_segment(client, independent("orders", value=0)).json()["id"]
    b = create_segment(client, independent("clickers", "clicks", value=0)).json()["id"]
    both = create_segment(
        client,
        {"name": "both", "type": "derived", "expression": {"op": "and", "children": [{"segment": a}, {"segment": b}]}},
    )
    assert both.status_code == 201, both.content
    create_segment(
        client,
        {"name": "either", "type": "derived", "expression": {"op": "or", "children": [{"segment": a}, {"segment": b}]}},
    )
    create_segment(
        client,
        {
            "name": "orders not clicks",
            "type": "derived",
            "expression": {"op": "and", "children": [{"segment": a}, {"op": "not", "children": [{"segment": b}]}]},
        },
    )
    post_events(client, [event("u1"), event("u2", "clicks"), event("u3"), event("u3", "clicks")])
    assert user_segments(client, "u1") == ["either", "orders", "orders not clicks"]
    assert user_segments(client, "u2") == ["clickers", "either"]
    assert user_segments(client, "u3") == ["both", "clickers", "either", "orders"]
    post_events(client, [event("u1", "clicks")])  # u1 leaves "orders not clicks", joins "both"
    assert user_segments(client, "u1") == ["both", "clickers", "either", "orders"]


def test_unknown_segments_and_cycles_are_400(client):
    a = create_segment(client, independent("a", value=0)).json()["id"]
    unknown = create_segment(
        client, {"name": "x", "type": "derived", "expression": {"op": "or", "children": [{"segment": 999999}]}}
    )
    assert unknown.status_code == 400 and unknown.json()["error"]["code"] == "unknown_segment"
    d1 = create_segment(
        client, {"name": "d1", "type": "derived", "expression": {"op": "or", "children": [{"segment": a}]}}
    ).json()["id"]
    d2 = create_segment(
        client, {"name": "d2", "type": "derived", "expression": {"op": "not", "children": [{"segment": d1}]}}
    ).json()["id"]
    cycle = client.patch(
        f"{api()}/segments/{d1}",
        {"expression": {"op": "or", "children": [{"segment": d2}]}},
        content_type="application/json",
    )
    assert cycle.status_code == 400 and cycle.json()["error"]["code"] == "cycle"
    itself = client.patch(
        f"{api()}/segments/{d1}",
        {"expression": {"op": "or", "children": [{"segment": d1}]}},
        content_type="application/json",
    )
    assert itself.status_code == 400
    for bad in [
        {"name": "w", **independent("w", window=0)},
        independent("v", value="lots"),
        independent("o", operator="between"),
        {"name": "t", "type": "weird"},
        {"name": "n", "type": "derived", "expression": {"op": "not", "children": [{"segment": a}] * 2}},
    ]:
        response = create_segment(client, bad)
        assert response.status_code == 400, bad
        assert {"timestamp", "trace_id"} <= set(response.json()["error"])


def test_delete_with_dependents_is_409_naming_them(client):
    a = create_segment(client, independent("base", value=0)).json()["id"]
    create_segment(
        client, {"name": "uses base", "type": "derived", "expression": {"op": "or", "children": [{"segment": a}]}}
    )
    response = client.delete(f"{api()}/segments/{a}")
    assert response.status_code == 409
    assert "uses base" in response.json()["error"]["message"]
    assert response.json()["error"]["details"]["dependents"][0]["name"] == "uses base"
    lonely = create_segment(client, independent("lonely", value=0)).json()["id"]
    assert client.delete(f"{api()}/segments/{lonely}").status_code == 204
    assert client.get(f"{api()}/segments/{lonely}").status_code == 404


def test_deactivate_exits_members_and_reactivate_refills(client):
    seg = create_segment(client, independent("buyers", value=0)).json()
    post_events(client, [event("u1")])
    assert user_segments(client, "u1") == ["buyers"]
    off = client.patch(f"{api()}/segments/{seg['id']}", {"active": False}, content_type="application/json")
    assert off.status_code == 200 and off.json()["active"] is False
    assert user_segments(client, "u1") == []
    post_events(client, [event("u1")])
    assert user_segments(client, "u1") == []
    client.patch(f"{api()}/segments/{seg['id']}/status", {"active": True}, content_type="application/json")
    assert user_segments(client, "u1") == ["buyers"]


def test_definition_change_is_a_new_version(client):
    seg = create_segment(client, independent("buyers", value=0)).json()
    post_events(client, [event("u1"), event("u2"), event("u2")])
    changed = client.patch(
        f"{api()}/segments/{seg['id']}", independent("buyers", value=1), content_type="application/json"
    ).json()
    assert changed["version"] == 2
    assert user_segments(client, "u1") == [] and user_segments(client, "u2") == ["buyers"]
    rows = client.get(f"{api()}/segments/{seg['id']}/history?user_id=u2").json()["results"]
    assert [(r["kind"], r["rule_version"]) for r in rows] == [("enter", 2), ("exit", 1), ("enter", 1)]
    from django_tenants.utils import schema_context

    from segments.models import SegmentVersion
    from tests.segments.helpers import schema_of

    with schema_context(schema_of("acme")):
        assert list(SegmentVersion.objects.filter(segment_id=seg["id"]).values_list("version", flat=True)) == [2, 1]


def test_members_paginated_and_csv_and_statistics(client):
    seg = create_segment(client, independent("buyers", value=0)).json()
    odd = ["=cmd", "+uid2/Ab==", "-x", "@y", 'a,"b"']
    post_events(client, [event(f"user{i:02d}") for i in range(12)] + [event(u) for u in odd])
    everyone = [m["user_id"] for m in client.get(f"{api()}/segments/{seg['id']}/members?limit=100").json()["results"]]
    assert sorted(everyone) == sorted([f"user{i:02d}" for i in range(12)] + odd)  # exact ids in the JSON too
    page = client.get(f"{api()}/segments/{seg['id']}/members?limit=5&offset=5").json()
    assert page["count"] == 17 and [m["user_id"] for m in page["results"]] == everyone[5:10]
    response = client.get(f"{api()}/segments/{seg['id']}/members?format=csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == ["user_id", "entered_at", "rule_version"] and len(rows) == 18
    # a machine file (docs/trust.md): every id exactly as stored, no spreadsheet prefix
    assert set(odd) <= {r[0] for r in rows[1:]} and not any(r[0].startswith("'") for r in rows[1:])
    stats = client.get(f"{api()}/segments/{seg['id']}").json()["statistics"]
    assert stats["members"] == 17 and stats["entries"] == 17 and stats["per_hour"][0]["entries"] == 17


def test_backtest_estimates_before_activation(client):
    post_events(
        client,
        [
            event("u1", when=ago(hours=30)),
            event("u1", when=ago(hours=30, minutes=-10)),
            event("u2", when=ago(minutes=5)),
            event("u2", when=ago(minutes=3)),
            event("u3"),
        ],
    )
    body = client.post(
        f"{api()}/segments/backtest",
        {"rule": independent("x", value=1)["rule"], "days": 3},
        content_type="application/json",
    ).json()
    assert body["users_with_events"] == 3 and body["users_matched"] == 2 and body["holding_now"] == 1
    bad = client.post(f"{api()}/segments/backtest", {"rule": {}, "days": 3}, content_type="application/json")
    assert bad.status_code == 400


def test_profile_get_and_put(client):
    assert client.get(f"{api()}/users/u1/profile").status_code == 404
    post_events(client, [event("u1")])
    profile = client.get(f"{api()}/users/u1/profile").json()
    assert profile["user_id"] == "u1" and profile["last_active_at"]
    put = client.put(
        f"{api()}/users/u1/profile",
        {
            "email": "u1@example.com",
            "phone": "+14155550100",
            "deviceTokens": ["tok-1"],
            "attributes": {"first_name": "Ann"},
        },
        content_type="application/json",
    )
    assert put.status_code == 200 and put.json()["device_tokens"] == ["tok-1"]
    assert (
        client.put(f"{api()}/users/u1/profile", {"email": "nope"}, content_type="application/json").status_code == 400
    )


def test_one_orgs_events_never_reach_another_orgs_segments(acme, globex, acme_marketer, globex_marketer, login):
    acme_client, globex_client = login(acme_marketer), login(globex_marketer)
    a = create_segment(acme_client, independent("acme buyers", value=0)).json()
    g = create_segment(globex_client, independent("globex buyers", value=0), org="globex").json()
    assert a["name"] != g["name"]
    post_events(globex_client, [event("shared-user")], org="globex")
    assert user_segments(acme_client, "shared-user") == []
    assert user_segments(globex_client, "shared-user", org="globex") == ["globex buyers"]
    assert acme_client.get(f"{api()}/segments/{a['id']}/members").json()["count"] == 0
    # and globex's marketer cannot read acme's segments at all
    assert globex_client.get(f"{api('acme')}/segments/{a['id']}/members").status_code in (403, 404)


def test_hostile_paging_and_nesting_are_400s_with_the_error_body(client):
    """The issue-15 rules on the segments API: a bad limit/offset or a 10,000-level body is a 400, not a 500."""
    seg = create_segment(client, independent("buyers", value=0)).json()
    for path in ("members", "history"):
        for query in ("offset=99999999999999999999", "limit=-1", "offset=x"):
            response = client.get(f"{api()}/segments/{seg['id']}/{path}?{query}")
            assert response.status_code == 400, (path, query, response.status_code)
            assert response.json()["error"]["details"], (path, query)
        assert client.get(f"{api()}/segments/{seg['id']}/{path}?limit=99999").status_code == 200  # capped at 1000
    deep = '{"events": ' + "[" * 10_000 + "]" * 10_000 + "}"
    for path in ("events", "segments", "segments/backtest"):
        response = client.post(f"{api()}/{path}", deep, content_type="application/json")
        assert response.status_code == 400, (path, response.status_code)
        assert response.json()["error"]["code"] == "invalid_json", path
