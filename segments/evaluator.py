"""The incremental evaluator: one code path for both runtimes (embedded and JetStream).

For each (segment, user) pair an event or a timer touches, the aggregate of the user's events of
the rule's type with event time in (now - window, now] is computed in one SQL statement per chunk
(the events table, indexed by (user_id, event_type, event_time), is the window's contents), compared
with the rule, and compared with the current membership. A difference is a transition: written to
the current membership, to the append-only ledger (`Transition`) and, for campaigns listening, to
the send outbox, in the same transaction.

The window state row per pair keeps the aggregate and `due_at`, the next instant the aggregate
changes with no new event (the oldest counted event leaving the window, or a slightly-future event
arriving in it). The timer job evaluates only pairs whose `due_at` has passed.

Re-evaluating a pair is idempotent: the result depends only on the stored events and `now`, and a
transition is written only when the rule's result differs from the stored membership. Per-user
advisory locks (by bucket) serialise concurrent evaluators of one user, so redelivered JetStream
messages, concurrent timers and concurrent ingests never double an entry or exit.
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from segments import rules as rules_mod
from segments.events import FUTURE_SKEW, Event
from segments.models import Transition

LOCK_NAMESPACE = 13014
LOCK_BUCKETS = 1024
CHUNK_PAIRS = 20_000
MAX_STORED = Decimal("1e19")

AGGREGATE_SQL = """
SELECT p.segment_id, p.user_id,
       count(e.event_time) FILTER (WHERE e.event_time <= %(now)s),
       coalesce(sum(e.v) FILTER (WHERE e.event_time <= %(now)s), 0),
       avg(e.v) FILTER (WHERE e.event_time <= %(now)s),
       min(e.v) FILTER (WHERE e.event_time <= %(now)s),
       max(e.v) FILTER (WHERE e.event_time <= %(now)s),
       count(DISTINCT e.raw) FILTER (WHERE e.event_time <= %(now)s),
       least(min(e.event_time) FILTER (WHERE e.event_time > %(now)s),
             min(e.event_time + p.window_minutes * interval '1 minute') FILTER (WHERE e.event_time <= %(now)s))
FROM unnest(%(segs)s::bigint[], %(users)s::text[], %(types)s::text[], %(props)s::text[], %(windows)s::int[])
     AS p(segment_id, user_id, event_type, prop, window_minutes)
LEFT JOIN LATERAL (
    SELECT ev.event_time,
           ev.attributes ->> p.prop AS raw,
           CASE WHEN jsonb_typeof(ev.attributes -> p.prop) = 'number'
                THEN (ev.attributes ->> p.prop)::numeric END AS v
    FROM segments_event ev
    WHERE ev.user_id = p.user_id AND ev.event_type = p.event_type
      AND ev.event_time > %(now)s - p.window_minutes * interval '1 minute'
      AND ev.event_time <= %(horizon)s
) e ON true
GROUP BY p.segment_id, p.user_id
"""


@dataclass
class Outcome:
    transitions: list[Transition] = field(default_factory=list)
    pairs: int = 0

    @property
    def entries(self) -> int:
        return sum(1 for t in self.transitions if t.kind == Transition.Kind.ENTER)

    @property
    def exits(self) -> int:
        return sum(1 for t in self.transitions if t.kind == Transition.Kind.EXIT)


def bucket(user_id: str) -> int:
    return zlib.crc32(user_id.encode()) % LOCK_BUCKETS


def lock_users(users: Iterable[str]) -> None:
    """Serialise evaluators of the same users (sorted buckets: no deadlock between two batches)."""
    buckets = sorted({bucket(user) for user in users})
    if not buckets:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_advisory_xact_lock(%s, b)) FROM (SELECT b FROM unnest(%s::int[]) b ORDER BY b) s",
            [LOCK_NAMESPACE, buckets],
        )


def _aggregates(pairs: Sequence[tuple[rules_mod.Rule, str]], now: datetime) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(
            AGGREGATE_SQL,
            {
                "now": now,
                "horizon": now + FUTURE_SKEW,
                "segs": [rule.segment_id for rule, _ in pairs],
                "users": [user for _, user in pairs],
                "types": [rule.event_type for rule, _ in pairs],
                "props": [rule.property for rule, _ in pairs],
                "windows": [rule.window_minutes for rule, _ in pairs],
            },
        )
        return cursor.fetchall()


def _pick(rule: rules_mod.Rule, row: tuple[Any, ...]) -> Decimal | None:
    count, total, avg, low, high, distinct = row[2:8]
    value = {"count": count, "sum": total, "avg": avg, "min": low, "max": high, "distinct": distinct}[rule.attribute]
    return None if value is None else Decimal(value)


def _current(pairs: Sequence[tuple[int, str]]) -> dict[tuple[int, str], datetime]:
    if not pairs:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT m.segment_id, m.user_id, m.entered_at FROM segments_membership m "
            "JOIN unnest(%s::bigint[], %s::text[]) AS p(s, u) ON m.segment_id = p.s AND m.user_id = p.u",
            [[s for s, _ in pairs], [u for _, u in pairs]],
        )
        return {(row[0], row[1]): row[2] for row in cursor.fetchall()}


def _memberships_of(users: Sequence[str]) -> dict[str, dict[int, datetime]]:
    out: dict[str, dict[int, datetime]] = defaultdict(dict)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT user_id, segment_id, entered_at FROM segments_membership WHERE user_id = ANY(%s)", [list(users)]
        )
        for user, seg, entered in cursor.fetchall():
            out[user][seg] = entered
    return out


def _write(transitions: list[Transition]) -> None:
    """Apply transitions to the current membership, then append them to the ledger."""
    enters = [t for t in transitions if t.kind == Transition.Kind.ENTER]
    exits = [t for t in transitions if t.kind == Transition.Kind.EXIT]
    with connection.cursor() as cursor:
        if exits:
            cursor.execute(
                "DELETE FROM segments_membership m USING unnest(%s::bigint[], %s::text[]) AS d(s, u) "
                "WHERE m.segment_id = d.s AND m.user_id = d.u",
                [[t.segment_id for t in exits], [t.user_id for t in exits]],
            )
        if enters:
            cursor.execute(
                "INSERT INTO segments_membership (segment_id, user_id, entered_at, rule_version) "
                "SELECT * FROM unnest(%s::bigint[], %s::text[], %s::timestamptz[], %s::int[]) "
                "ON CONFLICT DO NOTHING",
                [
                    [t.segment_id for t in enters],
                    [t.user_id for t in enters],
                    [t.entered_at for t in enters],
                    [t.rule_version for t in enters],
                ],
            )
    Transition.objects.bulk_create(transitions, batch_size=5000)


def _save_states(rows: list[tuple[int, str, Decimal, int, datetime | None]], now: datetime) -> None:
    keep = [row for row in rows if row[3] > 0 or row[4] is not None]
    drop = [row for row in rows if not (row[3] > 0 or row[4] is not None)]
    with connection.cursor() as cursor:
        if keep:
            cursor.execute(
                "INSERT INTO segments_windowstate (segment_id, user_id, value, events_in_window, due_at, evaluated_at) "
                "SELECT s, u, v, n, d, %s FROM unnest(%s::bigint[], %s::text[], %s::numeric[], %s::int[], "
                "%s::timestamptz[]) AS x(s, u, v, n, d) "
                "ON CONFLICT (segment_id, user_id) DO UPDATE SET value = EXCLUDED.value, "
                "events_in_window = EXCLUDED.events_in_window, due_at = EXCLUDED.due_at, "
                "evaluated_at = EXCLUDED.evaluated_at",
                [
                    now,
                    [r[0] for r in keep],
                    [r[1] for r in keep],
                    [max(-MAX_STORED, min(MAX_STORED, r[2])) for r in keep],
                    [r[3] for r in keep],
                    [r[4] for r in keep],
                ],
            )
        if drop:  # nothing in the window and nothing due: the pair needs no state
            cursor.execute(
                "DELETE FROM segments_windowstate w USING unnest(%s::bigint[], %s::text[]) AS d(s, u) "
                "WHERE w.segment_id = d.s AND w.user_id = d.u",
                [[r[0] for r in drop], [r[1] for r in drop]],
            )


def _independent(
    defs: rules_mod.Definitions,
    pairs: Sequence[tuple[int, str]],
    now: datetime,
    triggers: dict[tuple[str, str], str],
    timer: bool,
) -> list[Transition]:
    rule_pairs = [(defs.rules[seg], user) for seg, user in pairs if seg in defs.rules]
    # A pair whose segment was deactivated or deleted since its timer was set: drop its state.
    stale: list[tuple[int, str, Decimal, int, datetime | None]] = [
        (seg, user, Decimal(0), 0, None) for seg, user in pairs if seg not in defs.rules
    ]
    rows = _aggregates(rule_pairs, now) if rule_pairs else []
    current = _current([(rule.segment_id, user) for rule, user in rule_pairs])
    transitions: list[Transition] = []
    states = stale
    for row in rows:
        seg, user = row[0], row[1]
        rule = defs.rules[seg]
        aggregate = _pick(rule, row)
        holds = rule.holds(aggregate)
        entered = current.get((seg, user))
        trigger = "" if timer else triggers.get((rule.event_type, user), "")
        if holds and entered is None:
            transitions.append(
                Transition(
                    segment_id=seg,
                    user_id=user,
                    kind=Transition.Kind.ENTER,
                    entered_at=now,
                    exited_at=None,
                    rule_version=rule.version,
                    event_id=trigger,
                    reason=rule.describe(aggregate)[:300],
                    recorded_at=now,
                )
            )
        elif not holds and entered is not None:
            why = ("window slid past: " if timer else "") + rule.describe(aggregate)
            transitions.append(
                Transition(
                    segment_id=seg,
                    user_id=user,
                    kind=Transition.Kind.EXIT,
                    entered_at=entered,
                    exited_at=now,
                    rule_version=rule.version,
                    event_id=trigger,
                    reason=why[:300],
                    recorded_at=now,
                )
            )
        states.append((seg, user, aggregate or Decimal(0), int(row[2]), row[8]))
    _save_states(states, now)
    return transitions


def _derived(defs: rules_mod.Definitions, users: Sequence[str], now: datetime) -> list[Transition]:
    """Re-evaluate every derived segment for users whose memberships just changed (dependency order)."""
    if not defs.derived or not users:
        return []
    memberships = _memberships_of(users)
    transitions: list[Transition] = []
    for user in users:
        mine = memberships.get(user, {})
        member_of = set(mine)
        for derived in defs.derived:
            holds = rules_mod.evaluate_expression(derived.expression, member_of)
            was = derived.segment_id in member_of
            if holds == was:
                continue
            names = ", ".join(defs.names.get(c, f"#{c}") for c in sorted(derived.children))
            op = derived.expression.get("op", "?")
            if holds:
                member_of.add(derived.segment_id)
                transitions.append(
                    Transition(
                        segment_id=derived.segment_id,
                        user_id=user,
                        kind=Transition.Kind.ENTER,
                        entered_at=now,
                        rule_version=derived.version,
                        reason=f"{op}({names}) holds"[:300],
                        recorded_at=now,
                    )
                )
            else:
                member_of.discard(derived.segment_id)
                transitions.append(
                    Transition(
                        segment_id=derived.segment_id,
                        user_id=user,
                        kind=Transition.Kind.EXIT,
                        entered_at=mine.get(derived.segment_id, now),
                        exited_at=now,
                        rule_version=derived.version,
                        reason=f"{op}({names}) no longer holds"[:300],
                        recorded_at=now,
                    )
                )
    return transitions


def evaluate_pairs(
    pairs: Iterable[tuple[int, str]],
    *,
    now: datetime | None = None,
    triggers: dict[tuple[str, str], str] | None = None,
    timer: bool = False,
) -> Outcome:
    """Evaluate (segment, user) pairs at `now`, chunk by chunk, each chunk one transaction."""
    from segments import triggers as campaign_triggers

    when = now or timezone.now()
    ordered = sorted(set(pairs), key=lambda p: (p[1], p[0]))
    outcome = Outcome(pairs=len(ordered))
    start = 0
    while start < len(ordered):
        chunk = ordered[start : start + CHUNK_PAIRS]
        # Never cut one user's pairs across chunks: derived segments read all of a user's memberships.
        end = start + len(chunk)
        while end < len(ordered) and ordered[end][1] == chunk[-1][1]:
            end += 1
        chunk = ordered[start:end]
        start = end
        users = sorted({user for _, user in chunk})
        with transaction.atomic():
            lock_users(users)
            defs = rules_mod.load()
            changed = _independent(defs, chunk, when, triggers or {}, timer)
            changed_users = sorted({t.user_id for t in changed})
            if not timer:
                # A user's first event can make a NOT/OR derived segment hold without an independent change.
                changed_users = users
            _write(changed)  # first: derived segments read the memberships it leaves
            derived = _derived(defs, changed_users, when)
            _write(derived)
            campaign_triggers.enqueue_sends(changed + derived, now=when)
        outcome.transitions.extend(changed)
        outcome.transitions.extend(derived)
    return outcome


def evaluate_events(events: Sequence[Event], *, now: datetime | None = None) -> Outcome:
    """Evaluate the rules the new events can change: their type's independent rules, for their users."""
    defs = rules_mod.load()
    pairs: set[tuple[int, str]] = set()
    triggers: dict[tuple[str, str], str] = {}
    for event in events:
        triggers[(event.event_type, event.user_id)] = event.event_id  # the latest of the batch
        for rule in defs.rules_by_type.get(event.event_type, ()):
            pairs.add((rule.segment_id, event.user_id))
    return evaluate_pairs(pairs, now=now, triggers=triggers)


def evaluate_derived_for(users: Sequence[str], *, now: datetime | None = None) -> Outcome:
    """Re-evaluate derived segments only (a derived segment was created or changed)."""
    from segments import triggers as campaign_triggers

    when = now or timezone.now()
    outcome = Outcome(pairs=len(users))
    ordered = sorted(set(users))
    for start in range(0, len(ordered), CHUNK_PAIRS):
        chunk = ordered[start : start + CHUNK_PAIRS]
        with transaction.atomic():
            lock_users(chunk)
            transitions = _derived(rules_mod.load(), chunk, when)
            _write(transitions)
            campaign_triggers.enqueue_sends(transitions, now=when)
        outcome.transitions.extend(transitions)
    return outcome


def due_pairs(now: datetime, limit: int) -> list[tuple[int, str]]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT segment_id, user_id FROM segments_windowstate WHERE due_at <= %s ORDER BY due_at LIMIT %s",
            [now, limit],
        )
        return [(row[0], row[1]) for row in cursor.fetchall()]


def run_timers(*, now: datetime | None = None, limit: int = 50_000) -> Outcome:
    """Evaluate the pairs whose window changes by itself now (the due-time index; never all users)."""
    when = now or timezone.now()
    total = Outcome()
    while True:
        pairs = due_pairs(when, limit)
        if not pairs:
            return total
        outcome = evaluate_pairs(pairs, now=when, timer=True)
        total.transitions.extend(outcome.transitions)
        total.pairs += outcome.pairs
        if len(pairs) < limit:
            return total
