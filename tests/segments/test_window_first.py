"""The window-first claim (segments.evaluator.WINDOW_FIRST, session 12: a claim's windows built straight from its
events, no (segment, user) pair rows) decides exactly what the pairs path decided: the same entries and exits, the
same triggers (a user's latest claimed event of the type), the same derived segments (only users with an event of a
type some rule reads are re-judged), the same window states and pair counts."""

from __future__ import annotations

from typing import Any

import pytest
from django_tenants.utils import schema_context

from tests.segments.helpers import (
    ago,
    decisions,
    empty_event_tables,
    event,
    independent,
    post_events,
    rules_and_their_negation,
    schema_of,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def queued(settings):
    settings.SEGMENTS_EVALUATE_INLINE_MAX = 0  # every batch goes to the queue
    return settings


def _batches() -> list[list[dict[str, Any]]]:
    """Three queued batches: users entering and staying out, two rules sharing one window (count and sum of
    `value`), a rule on another type, a user whose only event is of a type no rule reads, events outside the
    window and one slightly in the future."""
    return [
        [event("u1", value=5), event("u2", value=1), event("u3", "installs"), event("u4", when=ago(minutes=90))],
        [event("u1", value=7), event("u2", "clicks"), event("u5", "clicks"), event("u1", when=ago(seconds=-30))],
        [event("u2", value=2), event("u2", value=3), event("u5", "clicks"), event("u6", value=50)],
    ]


def _run(client: Any, batches: list[list[dict[str, Any]]], window_first: bool) -> dict[str, Any]:
    from segments import evaluator
    from segments.models import WindowState

    schema = schema_of("acme")
    empty_event_tables(schema)
    saved = evaluator.WINDOW_FIRST
    evaluator.WINDOW_FIRST = window_first
    try:
        pairs = 0
        for claim in (batches[:1], batches[1:]):  # the second claim brings the first one's states forward
            for batch in claim:
                assert post_events(client, batch).status_code == 202
            with schema_context(schema):
                pairs += evaluator.evaluate_pending().pairs
        with schema_context(schema):
            return {
                "pairs": pairs,
                **decisions(),
                "states": sorted(
                    WindowState.objects.values_list(
                        "user_id", "event_type", "window_minutes", "property", "events_in_window", "due_at"
                    )
                ),
            }
    finally:
        evaluator.WINDOW_FIRST = saved


def test_the_window_first_claim_decides_what_the_pairs_claim_decided(acme, acme_marketer, login, queued):
    client = login(acme_marketer)
    rules_and_their_negation(
        client,
        [
            independent("two orders", value=1),
            independent("big spenders", attribute="sum", prop="value", value=6),
            independent("clickers", "clicks", value=0),
        ],
        negated="two orders",
    )
    batches = _batches()

    pairs_path = _run(client, batches, window_first=False)
    window_first = _run(client, batches, window_first=True)

    assert window_first == pairs_path
    entered = {(name, user) for name, user, kind, *_ in window_first["ledger"] if kind == "enter"}
    assert {("two orders", "u1"), ("two orders", "u2"), ("big spenders", "u1"), ("clickers", "u5")} <= entered
    assert ("not two orders", "u3") not in entered  # installs: no rule reads it, so no derived judgement either
    assert ("not two orders", "u4") in entered  # its only order is outside the window
    # claim 1: (u1, u2, u4) x 2 rules on orders; claim 2: (u1, u2, u6) x 2 + (u2, u5) x 1 on clicks
    assert window_first["pairs"] == 14
