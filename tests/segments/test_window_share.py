"""One window state per (user, event type, window, property), shared by the rules that read it (segments.evaluator):
one row for all its readers, every reader judged whenever the row is rewritten (or a reader would lose its timer),
and a window no active rule reads goes when it is due."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django_tenants.utils import schema_context

from tests.segments.helpers import ago, create_segment, event, independent, post_events, schema_of, user_segments

pytestmark = pytest.mark.django_db


def _states(slug: str = "acme") -> list[tuple[str, str, int, str, int]]:
    with schema_context(schema_of(slug)), connection.cursor() as cursor:
        cursor.execute(
            "SELECT user_id, event_type, window_minutes, property, events_in_window FROM segments_windowstate "
            "ORDER BY 1, 2, 3, 4"
        )
        return [tuple(row) for row in cursor.fetchall()]


def _ledger(slug: str = "acme") -> list[tuple[str, str, str, str]]:
    from segments.models import Transition

    with schema_context(schema_of(slug)):
        return [
            (seg, user, kind, reason.split(":")[0])
            for seg, user, kind, reason in Transition.objects.order_by("id").values_list(
                "segment__name", "user_id", "kind", "reason"
            )
        ]


def test_rules_on_one_window_share_one_state_and_each_is_judged(acme, acme_marketer, login):
    from segments.evaluator import run_timers

    client = login(acme_marketer)
    create_segment(client, independent("Repeat", attribute="count", operator="gt", value=1, prop="value"))
    create_segment(client, independent("Big", attribute="sum", operator="gte", value=5, prop="value"))
    create_segment(client, independent("Small", attribute="max", operator="lt", value=3, prop="value"))
    create_segment(client, independent("Short", attribute="count", operator="gte", value=1, window=5))
    post_events(client, [event("u1", when=ago(minutes=10), value=2), event("u1", value=4)])
    post_events(client, [event("u2", value=1)])

    assert user_segments(client, "u1") == ["Big", "Repeat", "Short"]
    assert user_segments(client, "u2") == ["Short", "Small"]
    # one state per window: the 60-minute window of `value` for the three rules, the 5-minute one for `Short`
    assert _states() == [
        ("u1", "orders", 5, "value", 1),
        ("u1", "orders", 60, "value", 2),
        ("u2", "orders", 5, "value", 1),
        ("u2", "orders", 60, "value", 1),
    ]

    with schema_context(schema_of("acme")):
        outcome = run_timers(now=ago(minutes=-61))
    assert sorted((t.user_id, t.kind) for t in outcome.transitions) == [("u1", "exit")] * 3 + [("u2", "exit")] * 2
    assert user_segments(client, "u1") == [] and user_segments(client, "u2") == []
    assert _states() == []
    assert {reason for *_, kind, reason in _ledger() if kind == "exit"} == {"window slid past"}


def test_a_reader_added_later_keeps_the_others_timer(acme, acme_marketer, login):
    """A new rule re-reads a shared window whole and moves its due time: the rules already reading it are judged in
    the same pass, or one whose event left the window would never be told."""
    from segments.evaluator import evaluate_segment_users
    from segments.models import Segment

    client = login(acme_marketer)
    create_segment(client, independent("Repeat", attribute="count", operator="gt", value=1, prop="value"))
    post_events(client, [event("u1", when=ago(minutes=58), value=1), event("u1", value=1)])
    assert user_segments(client, "u1") == ["Repeat"]

    later = ago(minutes=-3)  # the first event has left the window; no timer pass has run yet
    create_segment(client, independent("Any", attribute="count", operator="gte", value=1, prop="value"))
    with schema_context(schema_of("acme")):
        seg = Segment.objects.get(name="Any")
        evaluate_segment_users(seg.pk, "orders", since=later - timedelta(minutes=60), now=later)
    assert user_segments(client, "u1") == ["Any"]  # Repeat exited in the same pass
    assert ("Repeat", "u1", "exit", "count of orders over 60 min = 1 > 1") in _ledger()


def test_a_window_without_readers_goes_when_due_and_a_shared_one_stays(acme, acme_marketer, login):
    from segments.evaluator import run_timers
    from segments.models import Segment

    client = login(acme_marketer)
    create_segment(client, independent("Repeat", attribute="count", operator="gt", value=1, prop="value"))
    create_segment(client, independent("Big", attribute="sum", operator="gte", value=5, prop="value"))
    create_segment(client, independent("Clicky", event_type="clicks", operator="gte", value=1, window=30))
    post_events(client, [event("u1", value=3), event("u1", value=3), event("u1", "clicks")])
    assert user_segments(client, "u1") == ["Big", "Clicky", "Repeat"]
    assert len(_states()) == 2

    for name in ("Big", "Clicky"):
        with schema_context(schema_of("acme")):
            pk = Segment.objects.get(name=name).pk
        response = client.patch(
            f"/o/acme/api/v1/segments/{pk}/status", {"active": False}, content_type="application/json"
        )
        assert response.status_code == 200, response.content
    with schema_context(schema_of("acme")):
        # both states stay until due (the orders window still has a reader); at 31 minutes the clicks window has
        # none and is due: it goes, and nothing is evaluated for it
        assert len(_states()) == 2
        outcome = run_timers(now=ago(minutes=-31))
        assert outcome.transitions == []
    assert _states() == [("u1", "orders", 60, "value", 2)]
    assert user_segments(client, "u1") == ["Repeat"]
