"""Session 13's ingest paths (segments.events.FAST_COLUMNS): UTC timestamps parsed by numpy at once, the per-event
object check skipped when no event is odd, a batch of distinct ids stored without `unique`. The stored events, the
queue rows and the answers equal the previous path's, through the real API, for one body posted to two orgs."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django_tenants.utils import schema_context
from hypothesis import given, settings
from hypothesis import strategies as st

from segments import events as events_mod
from tests.segments.helpers import ago, event, iso, post_events, schema_of

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
TYPES = {"orders", "clicks", "addToCart", "installs"}


def _rows(slug: str, sql: str) -> list[tuple[Any, ...]]:
    with schema_context(schema_of(slug)), connection.cursor() as cursor:
        cursor.execute(sql)
        return list(cursor.fetchall())


def _mixed_batch() -> list[Any]:
    """Every timestamp shape the fast path takes or hands on, duplicates, odd fields and rejections."""
    base = ago(minutes=3)
    stamps = [
        iso(base),  # ...Z
        base.isoformat(),  # ...+00:00 with microseconds
        base.replace(microsecond=0).isoformat(),  # no fraction
        base.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.5Z"),  # one fractional digit
        base.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.123+00:00"),
        base.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+02:00"),  # another offset: the loop
        base.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"),  # naive: the loop (UTC)
        base.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ"),  # a space: the loop
        int(base.timestamp() * 1000),  # epoch milliseconds: validate()
        " " + iso(base),  # padded: validate()
        "2026-02-30T00:00:00Z",  # no such day: rejected
        "2101-01-01T00:00:00Z",  # outside 2000-2100: rejected
        (datetime.now(UTC) + timedelta(hours=1)).isoformat(),  # in the future: rejected
    ]
    batch: list[Any] = [
        {**event(f"u{i}", n=i), "timestamp": stamp, "session_id": f"s{i}" if i % 2 else None}
        for i, stamp in enumerate(stamps)
    ]
    batch.append({**event("dup"), "event_id": batch[0]["event_id"]})  # a duplicate inside the batch
    batch.append({**event(" padded "), "device_id": "d\u00e9"})  # non-ASCII: the regex path
    batch.append({**event("u-num"), "user_id": 12345})  # a number as an id: validate()
    batch.append("not an object")
    return batch


@pytest.mark.django_db
def test_the_fast_columns_store_and_queue_what_the_previous_path_did(
    acme, globex, acme_marketer, globex_marketer, login, settings, monkeypatch
):
    settings.SEGMENTS_EVALUATE_INLINE_MAX = 0  # keep the queue rows for comparison
    batch = _mixed_batch()
    answers = {}
    for slug, marketer, fast in (("acme", acme_marketer, True), ("globex", globex_marketer, False)):
        monkeypatch.setattr(events_mod, "FAST_COLUMNS", fast)
        client = login(marketer)
        answers[slug] = [post_events(client, batch, org=slug).json() for _ in range(2)]  # the second: all seen
    assert answers["acme"] == answers["globex"]
    first, again = answers["acme"]
    assert first["accepted"] == 12 and first["duplicates"] == 1
    assert [r["index"] for r in first["rejected"]] == [10, 11, 12, 16]
    assert (again["accepted"], again["duplicates"]) == (0, 13)
    events = (
        "SELECT event_id, user_id, event_type, event_time, attributes, session_id, device_id FROM segments_event "
        "ORDER BY event_id"
    )
    queue = (
        "SELECT size, xact IS NOT NULL, user_ids, event_types, event_ids, event_times, attributes FROM "
        "segments_pendingbatch ORDER BY id"
    )
    assert _rows("acme", events) == _rows("globex", events) and len(_rows("acme", events)) == 12
    assert _rows("acme", queue) == _rows("globex", queue) and len(_rows("acme", queue)) == 1


@pytest.mark.django_db
def test_an_impossible_day_in_a_utc_batch_is_rejected_alone(acme, acme_marketer, login):
    """numpy refuses the whole column for one day the calendar lacks: the loop then decides each event."""
    client = login(acme_marketer)
    good = [event(f"g{i}") for i in range(3)]
    bad = {**event("bad"), "timestamp": "2026-02-29T10:00:00Z"}  # 2026 is not a leap year
    body = post_events(client, [good[0], bad, *good[1:]]).json()
    assert body["accepted"] == 3 and [r["index"] for r in body["rejected"]] == [1]
    assert body["rejected"][0]["error"]["details"] == {"field": "timestamp"}


utc_like = st.builds(
    lambda y, mo, d, h, mi, s, frac, suffix: f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}{frac}{suffix}",
    st.integers(1998, 2102),
    st.integers(0, 13),
    st.integers(0, 32),
    st.integers(0, 24),
    st.integers(0, 60),
    st.integers(0, 61),
    st.sampled_from(["", ".5", ".123", ".123456", ".1234567", "."]),
    st.sampled_from(["Z", "+00:00", "-00:00", "+02:00", "", "z", "+0000"]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(utc_like, st.integers(-5, 10**13), st.none(), st.text(max_size=4)), max_size=8))
def test_the_timestamp_column_agrees_with_the_loop(stamps: list[Any]) -> None:
    ok = [True] * len(stamps)
    assert events_mod._event_micros_column(stamps, ok).to_list() == events_mod._event_micros(stamps, ok)


def test_the_fast_columns_validate_a_batch_as_the_previous_path(monkeypatch) -> None:
    raws = json.loads(json.dumps(_mixed_batch(), default=str))
    out = {}
    for fast in (True, False):
        monkeypatch.setattr(events_mod, "FAST_COLUMNS", fast)
        batch, rejected = events_mod.validate_columns(raws, types=TYPES, now=datetime.now(UTC), retention_days=365)
        out[fast] = (batch.frame.to_dicts(), [(r.index, r.code, r.message, r.field) for r in rejected])
    assert out[True] == out[False]


@pytest.mark.django_db
def test_the_bulk_load_decodes_lines_as_the_standard_library(acme, globex, tmp_path, capsys, monkeypatch):
    """segments_load with orjson per line (FAST_LINES) stores, rejects and reports what the standard library did."""
    from django.core.management import call_command

    from segments.management.commands import segments_load

    good = [event(f"u{i}", n=i) for i in range(4)]
    lines = [
        json.dumps(good[0]),
        "{broken",
        json.dumps({**good[1], "attributes": {"big": 10**30}}),  # beyond 64 bits: the standard library decodes
        json.dumps(good[2]).replace('"n": 2', '"n": NaN'),  # not JSON, read as NaN: the event is rejected
        json.dumps({**good[3], "attributes": {"t": "\ud800"}}),  # a lone surrogate: rejected
        json.dumps({**event("nul"), "attributes": {"t": "a\u0000b"}}),  # NUL: rejected
        '{"a": ' + "[" * 2_000 + "]" * 2_000 + "}",  # deeper than orjson reads: the standard library decides
        json.dumps(good[0]),  # a duplicate
        json.dumps({**event("late"), "eventId": "camel"}),
    ]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n")
    outputs = {}
    for slug, fast in (("acme", True), ("globex", False)):
        monkeypatch.setattr(segments_load, "FAST_LINES", fast)
        rejects = tmp_path / f"rejects-{slug}.jsonl"
        call_command("segments_load", str(path), "--org", slug, "--rejects", str(rejects))
        captured = capsys.readouterr()
        outputs[slug] = (captured.out.split(": ", 1)[1], captured.err, rejects.read_text())
    assert outputs["acme"] == outputs["globex"]
    assert outputs["acme"][0].startswith("3 accepted, 1 duplicate(s), 5 rejected")
    stored = "SELECT event_id, user_id, event_type, event_time, attributes FROM segments_event ORDER BY event_id"
    assert _rows("acme", stored) == _rows("globex", stored) and len(_rows("acme", stored)) == 3


@pytest.mark.django_db
def test_the_decoded_body_is_dropped_before_the_collector_is_back_on(acme, acme_marketer, login, monkeypatch):
    """segments.api.views.FORGET_BODY: the events are freed while the collector is off (never traversed by it); the
    answer is the same either way."""
    import gc

    from segments.api import views

    client = login(acme_marketer)
    answers = []
    for forget in (True, False):
        monkeypatch.setattr(views, "FORGET_BODY", forget)
        response = post_events(client, [event(f"f{forget}-{i}") for i in range(3)])
        drf_request = response.renderer_context["request"]
        assert (drf_request._full_data == {}) is forget and gc.isenabled()
        answers.append(response.json())
    assert answers[0] == answers[1] == {"accepted": 3, "duplicates": 0, "rejected": []}
