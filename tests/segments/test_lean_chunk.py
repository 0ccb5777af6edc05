"""The lean chunk (segments.evaluator.LEAN_CHUNK, session 13: the window state updated and an emptied one deleted by
the address the statement read it at, each (user, type)'s trigger by a hash aggregate, a claim's users locked and
counted in one statement) decides exactly what the previous paths decided: the same entries and exits with the same
triggers and reasons, the same derived segments, the same window states (aggregates, due times, whether a snapshot
is kept), the same pair counts, through claims that bring states forward, read them whole, empty them (a claim
after the events left their windows) and timers."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, transaction
from django.utils import timezone
from django_tenants.utils import schema_context

from tests.segments.helpers import (
    ago,
    create_segment,
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
    """Four queued batches: users entering and staying out, two rules sharing one window (count and sum of `value`),
    a max on a short window, a rule on another type, a user whose only event is of a type no rule reads, events
    outside the window, one slightly in the future, several events of one (user, type) in one claim (the trigger is
    the latest), and a user with events of two types."""
    return [
        [event("u1", value=5), event("u2", value=1), event("u3", "installs"), event("u4", when=ago(minutes=90))],
        [event("u1", value=7), event("u2", "clicks"), event("u5", "clicks"), event("u1", when=ago(seconds=-30))],
        [event("u2", value=2), event("u2", value=3), event("u5", "clicks"), event("u6", value=50, amount=9)],
        [event("u6", value=1), event("u7", "clicks"), event("u7", value=4), event("u1", value=-2)],
        [event("u1", when=ago(minutes=200))],  # evaluated an hour and a half later (see _run)
    ]


def _states() -> list[tuple[Any, ...]]:
    """Every window state's key, aggregates (columns the model does not name) and whether it keeps a snapshot."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT user_id, event_type, window_minutes, property, events_in_window, due_at, total, low, high, "
            "snapshot <> '', writer IS NOT NULL FROM segments_windowstate ORDER BY 1, 2, 3, 4"
        )
        return cursor.fetchall()


def _run(client: Any, batches: list[list[dict[str, Any]]], lean: bool) -> dict[str, Any]:
    from segments import evaluator

    schema = schema_of("acme")
    empty_event_tables(schema)
    saved = evaluator.LEAN_CHUNK
    evaluator.LEAN_CHUNK = lean
    try:
        pairs, states = 0, []
        # the second claim brings the first one's states forward; the third (two batches) too
        for claim in (batches[:1], batches[1:2], batches[2:4]):
            for batch in claim:
                assert post_events(client, batch).status_code == 202
            with schema_context(schema):
                pairs += evaluator.evaluate_pending().pairs
                states.append(_states())
        # an hour and a half later: the orders' events left their windows; a claim of an old order of u1 reads its
        # windows whole and finds them empty (dropped), and the timers exit the rest
        assert post_events(client, batches[4]).status_code == 202
        with schema_context(schema):
            later = timezone.now() + timedelta(minutes=90)
            pairs += evaluator.evaluate_pending(now=later).pairs
            states.append(_states())
            timers = evaluator.run_timers(now=later)
            pairs += timers.pairs
            return {
                "pairs": pairs,
                **decisions(),
                "states": [*states, _states()],  # after each claim and after the timers
            }
    finally:
        evaluator.LEAN_CHUNK = saved


def test_the_lean_chunk_decides_what_the_previous_paths_decided(acme, acme_marketer, login, queued):
    client = login(acme_marketer)
    rules_and_their_negation(
        client,
        [
            independent("two orders", value=1),
            independent("big spenders", attribute="sum", prop="value", value=6),
            independent("small max", attribute="max", operator="lt", prop="value", value=6, window=30),
            independent("clickers", "clicks", value=0),
        ],
        negated="two orders",
    )
    batches = _batches()

    previous = _run(client, batches, lean=False)
    lean = _run(client, batches, lean=True)

    assert lean == previous
    kinds = {(name, user, kind) for name, user, kind, *_ in lean["ledger"]}
    assert {("two orders", "u1", "enter"), ("big spenders", "u1", "enter"), ("clickers", "u5", "enter")} <= kinds
    assert ("two orders", "u1", "exit") in kinds  # the window slid past u1's orders (claim or timer)
    assert ("not two orders", "u4", "enter") in kinds  # its only order is outside the window
    assert all(lean["states"][:3]), "no window state kept: the comparison would prove little"
    assert len(lean["states"][2]) > len(lean["states"][3]), "no state emptied and dropped"
    assert lean["pairs"] > 20


def test_the_claim_locks_the_buckets_lock_users_locks(acme, acme_marketer, login, queued):
    """lock_touched computes bucket() in SQL (crc32 of the UTF-8 bytes): the same advisory locks as lock_users, for
    ASCII and non-ASCII user ids, and the same (user, type) and pair counts as the rows counted in Python."""
    from segments import evaluator

    client = login(acme_marketer)
    for body in (independent("two orders", value=1), independent("sum", attribute="sum", prop="value", value=6)):
        assert create_segment(client, body).status_code == 201
    users = ["u1", "user-17", "ünïcødé-ö", "用户-3", "x" * 150]
    assert post_events(client, [event(u) for u in users] + [event("u1", "clicks")]).status_code == 202
    schema = schema_of("acme")

    def held() -> set[int]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT objid::int FROM pg_locks WHERE locktype = 'advisory' AND classid = %s "
                "AND pid = pg_backend_pid()",
                [evaluator.LOCK_NAMESPACE],
            )
            return {row[0] for row in cursor.fetchall()}

    with schema_context(schema), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT id FROM segments_pendingbatch")
        ids = [row[0] for row in cursor.fetchall()]
        cursor.execute(evaluator.TOUCHED_TABLE)
        cursor.execute(evaluator.FILL_TOUCHED_SQL, {"ids": ids})
        fresh, pairs = evaluator.lock_touched(cursor)
        in_sql = held()
        cursor.execute(f"SELECT user_id, event_type FROM {evaluator.TOUCHED} GROUP BY user_id, event_type")
        touched = cursor.fetchall()
        in_python = evaluator._pair_count(touched)
    assert in_sql == {evaluator.bucket(u) for u in users}
    assert fresh == len(touched) == 6
    assert pairs == in_python == 10  # 5 users x 2 rules on orders; clicks: no rule
