"""POST /o/<slug>/api/v1/events: validation per UserEvent, partial acceptance, idempotency, partitions, errors."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.db import connection
from django_tenants.utils import schema_context

from tests.segments.helpers import ago, api, event, iso, post_events, schema_of

pytestmark = pytest.mark.django_db


def _count(slug: str, table: str = "segments_event") -> int:
    with schema_context(schema_of(slug)), connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table}")
        return cursor.fetchone()[0]


def test_single_event_and_camel_case_names(acme, acme_marketer, login):
    client = login(acme_marketer)
    body = {
        "eventId": "x1",
        "userId": "u1",
        "eventType": "addToCart",
        "timestamp": iso(ago(seconds=5)),
        "attributes": {"value": 12.5},
        "sessionId": "s1",
        "deviceId": "d1",
    }
    response = post_events(client, body)
    assert response.status_code == 202, response.content
    assert response.json() == {"accepted": 1, "duplicates": 0, "rejected": []}
    assert _count("acme") == 1


def test_bad_events_rejected_with_index_while_good_ones_are_accepted(acme, acme_marketer, login):
    client = login(acme_marketer)
    good = event("u1")
    batch = [
        good,
        {**event("u2"), "event_type": "teleport"},
        {**event("u3"), "timestamp": "yesterday"},
        {**event("u4"), "user_id": ""},
        "not an object",
        {**event("u5"), "attributes": [1, 2]},
        {**event("u6"), "timestamp": iso(ago(days=-1))},
        event("u7", "clicks"),
    ]
    body = post_events(client, batch).json()
    assert body["accepted"] == 2 and body["duplicates"] == 0
    assert [r["index"] for r in body["rejected"]] == [1, 2, 3, 4, 5, 6]
    assert body["rejected"][0]["error"]["code"] == "unknown_event_type"
    assert body["rejected"][1]["error"]["details"] == {"field": "timestamp"}
    assert "future" in body["rejected"][5]["error"]["message"]


def test_resending_a_batch_doubles_nothing(acme, acme_marketer, login):
    client = login(acme_marketer)
    batch = [event(f"u{i}", when=ago(days=i % 3, seconds=5)) for i in range(30)]
    batch.append(dict(batch[0]))  # a duplicate inside the batch too
    first = post_events(client, batch).json()
    assert (first["accepted"], first["duplicates"]) == (30, 1)
    again = post_events(client, batch).json()
    assert (again["accepted"], again["duplicates"]) == (0, 31)
    assert _count("acme") == 30
    # the same id with another timestamp is still the same event
    moved = {**batch[1], "timestamp": iso(ago(seconds=2))}
    assert post_events(client, [moved]).json()["duplicates"] == 1


def test_a_batch_mixing_seen_and_new_ids_stores_only_the_new_ones(acme, acme_marketer, login):
    """The plain insert of a batch of new ids fails on the seen one; the savepoint's fallback stores the others once,
    keeping the day partition created for them before the savepoint."""
    from segments import events as events_mod

    assert events_mod.FAST_STORE
    client = login(acme_marketer)
    seen = event("u1")
    assert post_events(client, [seen]).json()["accepted"] == 1
    old_day = event("u2", when=ago(days=9, seconds=5))
    body = post_events(client, [event("u3"), seen, old_day, event("u3", "clicks")]).json()
    assert body == {"accepted": 3, "duplicates": 1, "rejected": []}
    assert _count("acme") == 4
    assert _count("acme", "segments_event_id") == 4
    again = post_events(client, [old_day, event("u4")]).json()
    assert (again["accepted"], again["duplicates"]) == (1, 1)
    assert _count("acme") == 5


def test_events_land_in_day_partitions_created_on_demand(acme, acme_marketer, login):
    client = login(acme_marketer)
    post_events(client, [event("u1", when=ago(days=d, seconds=5)) for d in (0, 1, 2)])
    with schema_context(schema_of("acme")):
        from segments.events import existing_partitions

        days = [day for _, day in existing_partitions()]
    assert len(days) >= 3 and days == sorted(days)


def test_org_defined_event_types(acme, acme_marketer, login):
    from segments.services import event_type_create

    client = login(acme_marketer)
    assert post_events(client, [event("u1", "signup")]).json()["rejected"][0]["error"]["code"] == "unknown_event_type"
    with schema_context(schema_of("acme")):
        event_type_create(name="signup", actor=acme_marketer)
    assert post_events(client, [event("u1", "signup")]).json()["accepted"] == 1
    # globex did not define it
    globex_client = login(acme_marketer)
    assert globex_client is not None


def test_error_body_carries_timestamp_and_trace_id(acme, acme_marketer, login):
    client = login(acme_marketer)
    response = client.post(f"{api()}/events", "{not json", content_type="application/json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert {"code", "message", "details", "timestamp", "trace_id"} <= set(error)
    assert error["trace_id"] == response["X-Request-ID"]
    too_many = post_events(client, [event("u", when=ago(seconds=1))] * 10_001)
    assert too_many.status_code == 413 and too_many.json()["error"]["code"] == "too_many_events"
    assert post_events(client, []).status_code == 400


def test_events_are_per_org(acme, globex, acme_marketer, globex_marketer, login):
    post_events(login(acme_marketer), [event("same-user")])
    assert _count("acme") == 1 and _count("globex") == 0
    # globex's marketer cannot post into acme
    response = post_events(login(globex_marketer), [event("x")], org="acme")
    assert response.status_code in (403, 404)
    assert _count("acme") == 1


def test_retention_drops_old_partitions(acme, acme_marketer, login):
    client = login(acme_marketer)
    post_events(client, [event("old", when=ago(days=20)), event("new", when=ago(seconds=3))])
    with schema_context(schema_of("acme")):
        from segments.models import SegmentSettings

        SegmentSettings.objects.create(retention_days=10)
    call_command("segments_retention", "--org", "acme")
    assert _count("acme") == 1
    assert _count("acme", "segments_event_id") == 1


def test_hostile_values_are_rejected_per_event_never_a_500(acme, acme_marketer, login):
    client = login(acme_marketer)
    body = (
        '{"events": ['
        '{"event_id": "h1", "user_id": "u1", "event_type": "orders", "timestamp": "%s", "attributes": {"v": 1e400}},'
        '{"event_id": "h2", "user_id": "u\\ud800", "event_type": "orders", "timestamp": "%s"},'
        '{"event_id": "h3", "user_id": "u3", "event_type": "orders", "timestamp": "%s", "attributes": {"a": "x\\u0000"}},'
        '{"event_id": "h4", "user_id": "u4", "event_type": "orders", "timestamp": "%s"}'
        "]}"
    ) % ((iso(ago(seconds=1)),) * 4)
    # 1e400 is not JSON (no finite double): the whole body is refused (session 12), nothing stored
    response = client.post(f"{api()}/events", body, content_type="application/json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_json"
    assert "1e400" in response.json()["error"]["message"]
    body = body.replace("1e400", "1e300")  # valid JSON: each bad event is rejected by its index, the rest stored
    response = client.post(f"{api()}/events", body, content_type="application/json")
    assert response.status_code == 202
    result = response.json()
    assert result["accepted"] == 2 and [r["index"] for r in result["rejected"]] == [1, 2]
    bad_name = client.post(
        f"{api()}/segments", '{"name": "a\\u0000b", "type": "independent"}', content_type="application/json"
    )
    assert bad_name.status_code == 400
    huge_ref = client.post(
        f"{api()}/segments",
        {
            "name": "d",
            "type": "derived",
            "expression": {"op": "or", "children": [{"segment": "99999999999999999999999"}]},
        },
        content_type="application/json",
    )
    assert huge_ref.status_code == 400


def test_each_event_maintains_two_btrees_and_the_time_ranges_are_brin(acme, acme_marketer, login):
    """The write path's cost per event (issue 13): the id table's key and the evaluator's (user, type, time) lookup
    are the only B-trees an ingested event touches; retention and re-evaluation read time ranges through BRIN."""
    client = login(acme_marketer)
    assert post_events(client, [event("u1"), event("u2", "clicks")]).json()["accepted"] == 2
    with schema_context(schema_of("acme")), connection.cursor() as cursor:
        cursor.execute(
            "SELECT t.relname, am.amname, pg_get_indexdef(i.indexrelid) FROM pg_index i "
            "JOIN pg_class t ON t.oid = i.indrelid JOIN pg_class c ON c.oid = i.indexrelid "
            "JOIN pg_am am ON am.oid = c.relam "
            "WHERE t.relnamespace = current_schema()::regnamespace AND t.relkind = 'r' "
            "AND (t.relname = 'segments_event_id' OR t.relname LIKE 'segments\\_event\\_p%%')"
        )
        found = sorted(
            (table.startswith("segments_event_p"), method, "(" + ddl.split("(", 1)[1])
            for table, method, ddl in cursor.fetchall()
        )
        cursor.execute(
            "SELECT attname, attstorage FROM pg_attribute WHERE attrelid = 'segments_pendingbatch'::regclass "
            "AND attname IN ('user_ids', 'event_types', 'event_ids', 'event_times', 'attributes')"
        )
        storage = dict(cursor.fetchall())
    assert found == [
        (False, "brin", "(event_time)"),
        (False, "btree", "(event_id)"),
        (True, "brin", "(event_time)"),
        (True, "btree", "(user_id, event_type, event_time)"),
    ]
    assert set(storage.values()) == {"e"}, storage  # the queue row's arrays are not compressed (they live a second)


def test_profiles_are_created_and_last_active_only_moves_forward(acme, acme_marketer, login):
    from segments.models import UserProfile

    client = login(acme_marketer)
    first, older, newer = ago(seconds=30), ago(seconds=90), ago(seconds=2)
    post_events(client, [event("p1", when=first), event("p2", when=older)])
    with schema_context(schema_of("acme")):
        seen = dict(UserProfile.objects.values_list("user_id", "last_active_at"))
    assert seen == {"p1": first, "p2": older}
    post_events(client, [event("p1", when=older), event("p2", when=newer), event("p3", when=newer)])
    with schema_context(schema_of("acme")):
        seen = dict(UserProfile.objects.values_list("user_id", "last_active_at"))
    assert seen == {"p1": first, "p2": newer, "p3": newer}


def test_last_active_moves_only_by_more_than_the_slack(acme, acme_marketer, login):
    """last_active_at is kept to a minute (segments.evaluator.LAST_ACTIVE_SLACK): a newer event less than that later
    leaves it alone (no write per claim for a user active all day), one more than that later moves it."""
    from segments.evaluator import LAST_ACTIVE_SLACK
    from segments.models import UserProfile

    client = login(acme_marketer)
    start = ago(seconds=300)
    post_events(client, [event("q1", when=start), event("q2", when=start)])
    near, far = start + LAST_ACTIVE_SLACK / 2, start + LAST_ACTIVE_SLACK * 2
    post_events(client, [event("q1", when=near), event("q2", when=far)])
    with schema_context(schema_of("acme")):
        seen = dict(UserProfile.objects.values_list("user_id", "last_active_at"))
    assert seen == {"q1": start, "q2": far}
