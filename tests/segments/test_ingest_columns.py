"""The column-wise event validator agrees with the reference one (per event), the membership read keeps the
org rule for tokens and sessions alike, and a large re-evaluation runs as a job."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client
from django.test.utils import override_settings
from django_tenants.utils import schema_context
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from p360.core.api_parsers import loads
from segments import events as events_mod
from tests.segments.helpers import api, event, post_events

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
TYPES = {"orders", "clicks", "addToCart", "installs", "custom-1"}

texts = st.one_of(
    st.sampled_from(
        ["u1", "e-1", " padded ", "", "x" * 200, "x" * 201, "caf\u00e9", "nul\x00", "\u00a0u", "12", "u\ud800"]
    ),
    st.text(max_size=8),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=True),
    st.lists(st.integers(), max_size=2),  # unhashable: `v in types` was a TypeError (a 500) before session 10
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
)
stamps = st.one_of(
    st.sampled_from(
        [
            "2026-12-06T11:59:00Z",
            "2026-12-06T11:59:00+02:00",
            "2026-12-06 11:59:00",
            "2026-12-06",
            " 2026-12-06T11:00:00Z",
            "2026-12-06T12:04:59Z",
            "2026-12-06T12:05:01Z",
            "1999-12-31T23:00:00-02:00",
            "2025-11-01T00:00:00Z",
            "yesterday",
            "2026-02-30T00:00:00Z",
        ]
    ),
    st.integers(min_value=-1, max_value=2 * 10**12),
    st.floats(allow_nan=True),
    st.none(),
)
values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=8,
)
attributes = st.one_of(
    st.none(),
    st.dictionaries(st.text(max_size=4), values, max_size=4),
    st.just({"big": "x" * 9000}),
    st.just({"big": "\u00e9" * 5000}),
    st.lists(st.integers(), max_size=2),
    st.sampled_from([0, "", [], {}, "text", 5]),
)
names = st.sampled_from(["event_id", "user_id", "event_type", "timestamp", "attributes", "session_id", "device_id"])
raw_events = st.one_of(
    st.fixed_dictionaries(
        {
            "event_id": texts,
            "user_id": texts,
            "event_type": st.sampled_from([*sorted(TYPES), "teleport", ""]) | texts,
            "timestamp": stamps,
        },
        optional={"attributes": attributes, "session_id": texts, "device_id": texts, "eventId": texts},
    ),
    st.dictionaries(names, texts, max_size=3),
    st.sampled_from(["not an object", 5, None, []]),
)


def _reference(raws: list[Any]) -> tuple[list[tuple[Any, ...]], list[tuple[int, str, str, str]]]:
    valid, rejected = events_mod.validate_batch(raws, types=TYPES, now=NOW, retention_days=365)
    return _shape(valid), [(r.index, r.code, r.message, r.field) for r in rejected]


def _shape(events: list[events_mod.Event]) -> list[tuple[Any, ...]]:
    return [
        (
            e.event_id,
            e.user_id,
            e.event_type,
            events_mod.micros(e.event_time),
            json.loads(e.attributes_json or "{}"),
            e.session_id,
            e.device_id,
        )
        for e in events
    ]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(raw_events, max_size=12))
def test_columns_agree_with_the_reference_validator(raws: list[Any]) -> None:
    expected_valid, expected_rejected = _reference(raws)
    for strict, nul in ((False, True), (True, True), (True, False)):
        body = json.dumps(raws, allow_nan=True).encode()
        if strict:  # what the API does: the parser says whether orjson decoded it and whether NUL may occur
            decoded, strict_json = loads(body)
            if decoded != raws and not strict_json:  # NaN != NaN: the standard library's own result is the input
                decoded = raws
            nul = b"\\u0000" in body
        else:
            decoded, strict_json = raws, False
        batch, rejected = events_mod.validate_columns(
            decoded, types=TYPES, now=NOW, retention_days=365, strict_json=strict_json, may_hold_nul=nul
        )
        assert [(r.index, r.code, r.message, r.field) for r in rejected] == expected_rejected
        assert _shape(batch.events()) == expected_valid


@pytest.mark.django_db
def test_membership_read_keeps_the_org_rule_for_tokens(acme, globex, acme_marketer, globex_marketer, login):
    from tenants.services import api_token_create

    acme_client = login(acme_marketer)
    seg = acme_client.post(
        f"{api()}/segments",
        {"name": "any order", "type": "independent", "rule": _rule(value=0)},
        content_type="application/json",
    )
    assert seg.status_code == 201, seg.content
    post_events(acme_client, [event("shared")])
    _, raw = api_token_create(user=acme_marketer, name="reader")
    token_client = Client(HTTP_AUTHORIZATION=f"Token {raw}")
    body = token_client.get(f"{api()}/users/shared/segments").json()
    assert [s["name"] for s in body["segments"]] == ["any order"]
    _, other = api_token_create(user=globex_marketer, name="outsider")
    outsider = Client(HTTP_AUTHORIZATION=f"Token {other}")
    assert outsider.get(f"{api()}/users/shared/segments").status_code == 404
    assert outsider.get(f"{api('globex')}/users/shared/segments").json()["segments"] == []
    assert Client().get(f"{api()}/users/shared/segments").status_code == 401
    bad = Client(HTTP_AUTHORIZATION="Token nope").get(f"{api()}/users/shared/segments")
    assert bad.status_code == 401 and bad.json()["error"]["code"] == "authentication_failed"


def _rule(value: float = 0, window: int = 60) -> dict[str, Any]:
    return {"event_type": "orders", "attribute": "count", "operator": "gt", "value": value, "window_minutes": window}


@pytest.mark.django_db
def test_large_reevaluation_runs_as_a_job_with_progress(acme, acme_marketer, login):
    from p360.core.jobs.models import Job
    from p360.core.jobs.services import run_job

    client = login(acme_marketer)
    post_events(client, [event(f"u{i}") for i in range(30)])
    with override_settings(SEGMENTS_REEVALUATE_INLINE_MAX=10):
        created = client.post(
            f"{api()}/segments",
            {"name": "late", "type": "independent", "rule": _rule(value=0)},
            content_type="application/json",
        ).json()
    job_id = created["reevaluation_job"]
    job = Job.objects.get(pk=job_id)
    assert job.kind == "segments.reevaluate" and job.org_id == acme.pk
    run_job(job_id)  # what the task cluster does
    job.refresh_from_db()
    assert job.status == "succeeded", (job.status, job.error)
    assert job.result["entered"] == 30 and job.progress_done == job.progress_total
    with schema_context(acme.schema_name):
        from segments.models import Membership

        assert Membership.objects.filter(segment_id=created["id"]).count() == 30
    # deactivating exits all 30 in one statement, each with its ledger row
    client.patch(f"{api()}/segments/{created['id']}", {"active": False}, content_type="application/json")
    with schema_context(acme.schema_name):
        from segments.models import Membership, Transition

        assert not Membership.objects.filter(segment_id=created["id"]).exists()
        assert Transition.objects.filter(segment_id=created["id"], kind="exit").count() == 30


def test_oldest_and_newest_edges_are_the_references() -> None:
    """The window edges: exactly 5 minutes ahead is accepted, one microsecond more is not."""
    edge = (NOW + timedelta(minutes=5)).isoformat()
    past = (NOW + timedelta(minutes=5, microseconds=1)).isoformat()
    raws = [
        {"event_id": "a", "user_id": "u", "event_type": "orders", "timestamp": edge},
        {"event_id": "b", "user_id": "u", "event_type": "orders", "timestamp": past},
    ]
    batch, rejected = events_mod.validate_columns(raws, types=TYPES, now=NOW, retention_days=365)
    assert [e.event_id for e in batch.events()] == ["a"] and [r.index for r in rejected] == [1]
