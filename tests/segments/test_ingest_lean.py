"""Session 10's ingest paths: odd types and huge values rejected per event (never a 500), duplicates inside a batch,
a re-sent batch, the flat statement's queue row (request order, this transaction, jsonb attributes) equal to the
joined statement's, the collector restored after a request, and the JSON depth scan against a plain reference."""

from __future__ import annotations

import gc
import json
from itertools import accumulate
from typing import Any

import pytest
from django.db import connection
from django_tenants.utils import schema_context
from hypothesis import given, settings
from hypothesis import strategies as st

from p360.core.api_parsers import _ALL_BUT_QUOTES_AND_BRACKETS, json_depth
from tests.segments.helpers import ago, api, event, iso, post_events, schema_of

pytestmark = pytest.mark.django_db

ODD = [["x"], {"a": 1}, 5, 1.5, True, None]


def _rows(slug: str, sql: str) -> list[tuple[Any, ...]]:
    with schema_context(schema_of(slug)), connection.cursor() as cursor:
        cursor.execute(sql)
        return list(cursor.fetchall())


def test_odd_types_in_every_field_are_rejected_with_index_and_field(acme, acme_marketer, login):
    client = login(acme_marketer)
    batch: list[Any] = [event("good-0")]
    expected: list[tuple[int, str]] = []
    for name in ("event_id", "user_id", "event_type", "timestamp", "session_id", "device_id", "attributes"):
        for value in ODD:
            if value is None and name in ("session_id", "device_id", "attributes"):
                continue  # absent: fine
            if name == "attributes" and isinstance(value, dict):
                continue  # an object is what attributes are
            if name in ("event_id", "user_id", "session_id", "device_id") and type(value) is int:
                continue  # a whole number is taken as its text (document 003's ids may be numeric)
            expected.append((len(batch), name))
            batch.append({**event(f"odd-{len(batch)}"), name: value})
    batch.append(event("good-1"))
    response = post_events(client, batch)
    assert response.status_code == 202
    body = response.json()
    assert body["accepted"] == 2 and body["duplicates"] == 0
    assert [(r["index"], r["error"]["details"].get("field")) for r in body["rejected"]] == expected
    assert all(r["error"]["code"] in ("invalid_event", "unknown_event_type") for r in body["rejected"])


def test_numeric_ids_are_taken_as_text(acme, acme_marketer, login):
    client = login(acme_marketer)
    body = post_events(client, [{**event("x"), "event_id": 12345, "user_id": 678, "session_id": 9}]).json()
    assert body == {"accepted": 1, "duplicates": 0, "rejected": []}
    assert _rows("acme", "SELECT event_id, user_id, session_id FROM segments_event") == [("12345", "678", "9")]


def test_huge_and_edge_values(acme, acme_marketer, login):
    client = login(acme_marketer)
    when = iso(ago(seconds=3))
    batch = [
        {**event("u0"), "event_id": "x" * 200},  # the longest id: accepted
        {**event("u1"), "event_id": "y" * 201},  # one longer: rejected
        {**event("u2"), "user_id": " padded "},  # trimmed by the reference: accepted as "padded"
        {**event("u3"), "attributes": {"big": "x" * 17_000}},  # over 16 KB: rejected
        {**event("u4"), "attributes": {"n": 10**30}},  # beyond 64 bits: the standard library decodes the body
        {**event("u5"), "timestamp": 1e20},  # epoch milliseconds out of range
        {**event("u6"), "event_type": "x" * 10_000},  # unknown type
        {**event("u7"), "device_id": "tab\there"},  # a control character: the reference decides (accepted)
        {**event("u8"), "timestamp": when.replace("Z", "+05:30")},  # another offset: accepted
    ]
    response = client.post(f"{api()}/events", json.dumps({"events": batch}), content_type="application/json")
    assert response.status_code == 202
    body = response.json()
    assert [(r["index"], r["error"]["details"].get("field")) for r in body["rejected"]] == [
        (1, "event_id"),
        (3, "attributes"),
        (5, "timestamp"),
        (6, "event_type"),
    ]
    assert body["accepted"] == 5
    stored = dict(_rows("acme", "SELECT user_id, attributes::text FROM segments_event"))
    assert set(stored) == {"u0", "padded", "u4", "u7", "u8"}
    assert stored["u4"] == '{"n": 1000000000000000000000000000000}'


def test_duplicates_inside_a_batch_keep_the_first_and_queue_once(acme, acme_marketer, login, settings):
    settings.SEGMENTS_EVALUATE_INLINE_MAX = 0  # keep the queue row for inspection
    client = login(acme_marketer)
    first = event("u1", amount=1)
    second = {**event("u2"), "event_id": first["event_id"], "attributes": {"amount": 2}}
    body = post_events(client, [first, event("u3"), second]).json()
    assert (body["accepted"], body["duplicates"]) == (2, 1)
    assert _rows("acme", "SELECT user_id, attributes->>'amount' FROM segments_event WHERE user_id <> 'u3'") == [
        ("u1", "1")
    ]
    (row,) = _rows("acme", "SELECT size, event_ids, user_ids FROM segments_pendingbatch")
    assert row == (2, [first["event_id"], row[1][1]], ["u1", "u3"])


def test_a_resent_batch_stores_and_queues_nothing(acme, acme_marketer, login, settings):
    settings.SEGMENTS_EVALUATE_INLINE_MAX = 0
    client = login(acme_marketer)
    batch = [event(f"u{i}", when=ago(seconds=10 + i)) for i in range(5)]
    assert post_events(client, batch).json()["accepted"] == 5
    again = post_events(client, batch).json()
    assert (again["accepted"], again["duplicates"], again["rejected"]) == (0, 5, [])
    assert _rows("acme", "SELECT count(*) FROM segments_event") == [(5,)]
    assert _rows("acme", "SELECT count(*), sum(size) FROM segments_pendingbatch") == [(1, 5)]


@pytest.mark.parametrize("seen_id", [False, True])
def test_the_queue_row_is_in_request_order_with_this_transaction(acme, acme_marketer, login, settings, seen_id):
    """Both statements write the same queue row: the flat one (every id new) and the one with the conflict clause
    (an id seen before): the new events' arrays in request order (not id order), the storing transaction,
    attributes as jsonb."""
    settings.SEGMENTS_EVALUATE_INLINE_MAX = 0
    client = login(acme_marketer)
    seen = {**event("old"), "event_id": "s"}
    assert post_events(client, [seen]).json()["accepted"] == 1
    batch = [event(user, when=ago(seconds=s), n=s) for user, s in (("zed", 5), ("amy", 9), ("kim", 1))]
    batch[0]["event_id"], batch[1]["event_id"], batch[2]["event_id"] = "c", "a", "b"
    if seen_id:
        batch.insert(2, seen)
    assert post_events(client, batch).json()["accepted"] == 3
    ((ids, users, types, n_values, xact, size),) = _rows(
        "acme",
        "SELECT event_ids, user_ids, event_types, ARRAY(SELECT a->>'n' FROM unnest(attributes) a), xact IS NOT NULL, "
        "size FROM segments_pendingbatch ORDER BY id DESC LIMIT 1",
    )
    assert (ids, users, types, n_values, xact, size) == (
        ["c", "a", "b"],
        ["zed", "amy", "kim"],
        ["orders"] * 3,
        ["5", "9", "1"],
        True,
        3,
    )


def test_the_collector_is_back_on_after_an_events_request(acme, acme_marketer, login):
    client = login(acme_marketer)
    assert gc.isenabled()
    assert post_events(client, [event("u1")]).status_code == 202
    assert gc.isenabled()
    bad = client.post(f"{api()}/events", '{"events": 5}', content_type="application/json")
    assert bad.status_code == 400 and gc.isenabled()


def _reference_depth(raw: bytes) -> int:
    """The JSON depth by splitting on every quote (the scan before session 10)."""
    if b"\\" in raw:
        raw = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    kept = raw.translate(None, _ALL_BUT_QUOTES_AND_BRACKETS)
    brackets = b"".join(kept.split(b'"')[::2])
    return max(accumulate(1 if byte in b"[{" else -1 for byte in brackets), default=0)


json_values = st.recursive(
    st.none() | st.integers() | st.text(alphabet='[]{}"\\ax', max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(alphabet='[]{}"a', max_size=3), inner),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_json_depth_matches_the_reference(value: Any) -> None:
    raw = json.dumps(value).encode()
    assert json_depth(raw) == _reference_depth(raw)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=24).map(lambda b: bytes(b'"[]{}\\a'[x % 7] for x in b)))
def test_json_depth_of_any_bracket_soup_matches_the_reference(raw: bytes) -> None:
    assert json_depth(raw) == _reference_depth(raw)


def test_the_id_table_compares_ids_byte_by_byte(acme):
    """Migration 0011: the id table's key (and its unique index) in the "C" collation."""
    assert _rows(
        "acme",
        "SELECT a.attcollation::regcollation::text FROM pg_attribute a "
        "WHERE a.attrelid = 'segments_event_id'::regclass AND a.attname = 'event_id'",
    ) == [('"C"',)]
