"""The queue between ingestion and evaluation (segments_pendingbatch): a batch larger than
SEGMENTS_EVALUATE_INLINE_MAX is durable when the API answers and evaluated by the `segments_timers` loop."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.db import connection
from django_tenants.utils import schema_context

from tests.segments.helpers import create_segment, event, independent, post_events, schema_of, user_segments

pytestmark = pytest.mark.django_db


def _queued(slug: str) -> int:
    with schema_context(schema_of(slug)), connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM segments_pendingbatch")
        return cursor.fetchone()[0]


def _ledger(slug: str) -> list[tuple[str, str, str]]:
    from segments.models import Transition

    with schema_context(schema_of(slug)):
        return list(Transition.objects.order_by("id").values_list("user_id", "kind", "event_id"))


@pytest.fixture
def small_inline(settings):
    settings.SEGMENTS_EVALUATE_INLINE_MAX = 2
    return settings


def test_a_large_batch_is_durable_at_once_and_evaluated_by_the_loop(acme, acme_marketer, login, small_inline):
    client = login(acme_marketer)
    assert create_segment(client, independent("Buyers", value=2)).status_code == 201
    batch = [event("u1"), event("u1"), event("u2"), event("u1")]
    body = post_events(client, batch).json()
    assert body == {"accepted": 4, "duplicates": 0, "rejected": []}
    assert user_segments(client, "u1") == []  # not evaluated by the request
    assert _queued("acme") == 1

    call_command("segments_timers", "--once", "--org", "acme")

    assert user_segments(client, "u1") == ["Buyers"]
    assert user_segments(client, "u2") == []
    assert _queued("acme") == 0
    # the trigger is the user's latest event of the batch; the profile exists
    assert _ledger("acme") == [("u1", "enter", batch[3]["event_id"])]
    from segments.models import UserProfile

    with schema_context(schema_of("acme")):
        assert set(UserProfile.objects.values_list("user_id", flat=True)) == {"u1", "u2"}


def test_resending_a_queued_batch_queues_and_doubles_nothing(acme, acme_marketer, login, small_inline):
    client = login(acme_marketer)
    create_segment(client, independent("Buyers", value=2))
    batch = [event("u1"), event("u1"), event("u1")]
    post_events(client, batch)
    assert post_events(client, batch).json() == {"accepted": 0, "duplicates": 3, "rejected": []}
    assert _queued("acme") == 1  # nothing new: no second queue row
    call_command("segments_timers", "--once", "--org", "acme")
    post_events(client, batch)
    call_command("segments_timers", "--once", "--org", "acme")
    assert [kind for _, kind, _ in _ledger("acme")] == ["enter"]


def test_queued_batches_are_evaluated_together(acme, acme_marketer, login, small_inline):
    from segments.evaluator import evaluate_pending

    client = login(acme_marketer)
    create_segment(client, independent("Buyers", value=2))
    for _ in range(3):
        post_events(client, [event("u1"), event("u2"), event("u3")])
    assert _queued("acme") == 3
    with schema_context(schema_of("acme")):
        outcome = evaluate_pending()
    assert outcome.pairs == 3  # each (user, rule) once, not once per batch
    assert sorted(t.user_id for t in outcome.transitions) == ["u1", "u2", "u3"]
    assert _queued("acme") == 0


def test_a_failed_evaluation_leaves_the_batch_queued(acme, acme_marketer, login, monkeypatch):
    from segments import evaluator
    from segments.services import ingest_events

    client = login(acme_marketer)
    create_segment(client, independent("Buyers", value=2))

    def broken(*args, **kwargs):
        raise RuntimeError("evaluator down")

    with schema_context(schema_of("acme")):
        monkeypatch.setattr(evaluator, "_finish_chunk", broken)
        ingested = ingest_events(raws=[event("u1"), event("u1"), event("u1")])  # logged, not raised
        monkeypatch.undo()
    assert ingested.result.accepted == 3 and ingested.outcome is None
    assert _queued("acme") == 1  # the events are stored and still queued
    call_command("segments_timers", "--once", "--org", "acme")
    assert user_segments(client, "u1") == ["Buyers"]
    assert _queued("acme") == 0


def test_the_loop_evaluates_each_org_in_its_own_schema(
    acme, globex, acme_marketer, globex_marketer, login, small_inline
):
    a, g = login(acme_marketer), login(globex_marketer)
    create_segment(a, independent("Buyers", value=2))
    create_segment(g, independent("Buyers", value=2))
    post_events(a, [event("same"), event("same"), event("same")], org="acme")
    post_events(g, [event("same")], org="globex")
    call_command("segments_timers", "--once")
    assert user_segments(a, "same", org="acme") == ["Buyers"]
    assert user_segments(g, "same", org="globex") == []
    assert _queued("acme") == 0 and _queued("globex") == 0
