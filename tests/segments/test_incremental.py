"""Incremental window state (segments.evaluator): a state brought forward by adding a claimed batch's events must be
exactly the state a whole read of the window gives, and the memberships exactly the rules' verdicts.

The incremental path needs batches stored and evaluated in transactions of their own (inside one test transaction
every batch shares the state's transaction and is read whole), so this module works in a committed organisation,
like the JetStream tests. A simulated clock moves forward round by round: windows slide, states expire, batches are
re-sent, one is loaded without evaluation, a rule changes, and after each round every (segment, user) is compared
with a Python reference computed from the stored events."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django_tenants.utils import schema_context

from tests.segments.helpers import committed_org_with_rules

pytestmark = [pytest.mark.slow, pytest.mark.django_db]
ROOT = Path(__file__).resolve().parents[2]
RULES = [  # name, event_type, attribute, property, operator, value, window minutes
    ("cnt", "orders", "count", "value", "gt", 2, 60),
    ("sum", "orders", "sum", "value", "gte", 10, 30),
    ("min", "orders", "min", "value", "lt", 3, 60),
    ("max", "orders", "max", "value", "gt", 5, 10),
    ("avg", "orders", "avg", "value", "gte", 4, 60),
    ("dst", "orders", "distinct", "sku", "gte", 2, 60),
    ("clk", "clicks", "count", "value", "eq", 1, 5),
    ("neg", "clicks", "sum", "value", "lt", 0, 20),
    ("top", "clicks", "max", "value", "gt", 3, 20),  # shares neg's window (one state for both, brought forward)
]
USERS = [f"u{i}" for i in range(5)]


@pytest.fixture(scope="module")
def inc_org(django_db_setup: Any, django_db_blocker: Any) -> Iterator[Any]:
    with django_db_blocker.unblock(), committed_org_with_rules("inc", "Incremental", RULES) as org:
        yield org


def _reference(now: datetime) -> tuple[dict[tuple[str, str], bool], dict[tuple[str, str], tuple[int, Decimal | None]]]:
    """Every (segment name, user): does the rule hold at `now`, and (events in window, aggregate), from the events."""
    from segments.models import Segment

    with connection.cursor() as cursor:
        cursor.execute("SELECT user_id, event_type, event_time, attributes::text FROM segments_event")
        events = [(u, t, when, json.loads(text, parse_float=Decimal)) for u, t, when, text in cursor.fetchall()]
    holds: dict[tuple[str, str], bool] = {}
    aggregates: dict[tuple[str, str], tuple[int, Decimal | None]] = {}
    for seg in Segment.objects.filter(kind="independent", active=True):
        window = timedelta(minutes=seg.window_minutes or 1)
        for user in USERS:
            inside = [
                attrs
                for u, t, when, attrs in events
                if u == user and t == seg.event_type and now - window < when <= now
            ]
            raw = [a.get(seg.property) for a in inside]
            values = [Decimal(v) for v in raw if isinstance(v, int | Decimal) and not isinstance(v, bool)]
            aggregate: Decimal | None
            if seg.attribute == "count":
                aggregate = Decimal(len(inside))
            elif seg.attribute == "sum":
                aggregate = sum(values, Decimal(0))
            elif seg.attribute == "avg":
                aggregate = sum(values, Decimal(0)) / len(values) if values else None
            elif seg.attribute == "min":
                aggregate = min(values) if values else None
            elif seg.attribute == "max":
                aggregate = max(values) if values else None
            else:
                aggregate = Decimal(len({json.dumps(v) if not isinstance(v, str) else v for v in raw if v is not None}))
            target = seg.value or Decimal(0)
            ok = (
                aggregate is not None
                and {
                    "gt": aggregate > target,
                    "gte": aggregate >= target,
                    "lt": aggregate < target,
                    "lte": aggregate <= target,
                    "eq": aggregate == target,
                    "neq": aggregate != target,
                }[seg.operator]
            )
            holds[(seg.name, user)] = ok
            aggregates[(seg.name, user)] = (len(inside), aggregate)
    return holds, aggregates


def _members() -> set[tuple[str, str]]:
    from segments.models import Membership

    return set(Membership.objects.values_list("segment__name", "user_id"))


def _states() -> dict[tuple[str, str], tuple[int, Decimal | None, str, int]]:
    """Each (segment, user) with its window's state (shared by the rules that read the same window): events in the
    window, the segment's aggregate as the state keeps it (sum, min, max; None for the others), snapshot, writer."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT s.name, w.user_id, w.events_in_window, CASE s.attribute WHEN 'sum' THEN w.total "
            "WHEN 'min' THEN w.low WHEN 'max' THEN w.high END, w.snapshot, coalesce(w.writer, 0) "
            "FROM segments_windowstate w JOIN segments_segment s ON s.active AND s.kind = 'independent' "
            "AND s.event_type = w.event_type AND s.window_minutes = w.window_minutes "
            "AND coalesce(nullif(s.property, ''), 'value') = w.property"
        )
        return {(name, user): (n, value, snap, writer) for name, user, n, value, snap, writer in cursor.fetchall()}


def _event(rng: random.Random, now: datetime, seq: int) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    pick = rng.random()
    if pick < 0.6:
        attributes["value"] = rng.randint(-3, 9)
    elif pick < 0.8:
        attributes["value"] = round(rng.uniform(-2, 8), 3)
    elif pick < 0.9:
        attributes["value"] = "7"  # not a number: counted, never summed
    if rng.random() < 0.7:
        attributes["sku"] = rng.choice(["a", "b", "c"])
    return {
        "event_id": f"inc-{seq}",
        "user_id": rng.choice(USERS),
        "event_type": rng.choice(["orders", "orders", "clicks"]),
        # mostly recent, some older than the shorter windows, a few a little ahead (they enter later)
        "timestamp": (now - timedelta(seconds=rng.randint(-200, 70 * 60))).isoformat(),
        "attributes": attributes,
    }


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_brought_forward_states_equal_whole_reads(inc_org: Any, seed: int) -> None:
    # In a process of its own: every batch and evaluation commits in a transaction of its own (this test's
    # connection sits in the test transaction, where all batches would share the states' transaction).
    env = {
        **{k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"},
        "P360_DB_NAME": connection.settings_dict["NAME"],
        "SEGMENTS_EVALUATE_INLINE_MAX": "3",  # larger batches queue; small ones are evaluated inline
        "DJANGO_SETTINGS_MODULE": "p360.settings",
    }
    code = (
        "import django; django.setup(); from tests.segments.test_incremental import _run; "
        f"_run({inc_org.schema_name!r}, {seed})"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]


def _crash_after_first_chunk(now: datetime) -> bool:
    """The evaluator dies after a claim's first chunk committed: the batches stay queued with their progress mark,
    and the next claim must evaluate only the buckets after it (a brought-forward state never adds a batch twice)."""
    from segments import evaluator

    real = evaluator._finish_chunk
    calls = 0

    def dying(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("killed between chunks")
        return real(*args, **kwargs)

    evaluator._finish_chunk = dying  # type: ignore[assignment]
    try:
        evaluator.evaluate_pending(now=now)
    except RuntimeError:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM segments_pendingbatch WHERE done_buckets >= 0")
            assert cursor.fetchone()[0] > 0  # the first chunk committed its mark
        return True
    finally:
        evaluator._finish_chunk = real  # type: ignore[assignment]
    return False  # the claim had a single chunk


def _run(schema: str, seed: int) -> None:
    from segments import evaluator
    from segments.evaluator import evaluate_pending, run_timers
    from segments.services import ingest_events, segment_update

    # seeds 1 and 2: the opt-in chunked claims (many chunks of user buckets, a crash between two of them);
    # seed 3: the default, one transaction per claim
    chunked = seed != 3
    evaluator.CHUNK_COMMITS = chunked
    evaluator.PENDING_CHUNK_PAIRS = 2
    crashes = 0
    rng = random.Random(seed)
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=seed)
    seq = seed * 100_000
    forwarded = 0
    sent: list[list[dict[str, Any]]] = []
    with schema_context(schema):
        with connection.cursor() as cursor:  # each seed starts from nothing
            cursor.execute(
                "TRUNCATE segments_event, segments_event_id, segments_windowstate, segments_membership, "
                "segments_pendingbatch, segments_transition CASCADE"
            )
        for step in range(14):
            now = start + timedelta(minutes=4 * step + rng.randint(0, 3))
            before = _states()
            batch = []
            for _ in range(rng.randint(1, 25)):
                seq += 1
                batch.append(_event(rng, now, seq))
            if step == 7:  # after the unevaluated load: every user's every type re-read
                for user in USERS:
                    for event_type in ("orders", "clicks"):
                        seq += 1
                        batch.append({**_event(rng, now, seq), "user_id": user, "event_type": event_type})
            no_evaluate = step == 6
            if step in (4, 9) and sent:  # a batch sent again (and one mixing old and new events)
                batch = sent[-1] + batch[:3]
            ingest_events(raws=batch, now=now, evaluate=not no_evaluate)
            sent.append(batch)
            if step == 8:  # a changed threshold: the shared window state stays valid, the members are re-judged
                from segments.models import Segment

                seg = Segment.objects.get(name="sum")
                segment_update(
                    segment=seg,
                    data={"rule": {**_rule_of(seg), "value": 12}},
                    actor=None,
                )
            if step % 3 == 2:  # several queued batches evaluated together
                continue
            if step in (4, 5, 10, 11):
                crashes += chunked and _crash_after_first_chunk(now)
            evaluate_pending(now=now)
            run_timers(now=now)
            if no_evaluate:  # stored unevaluated events show only once their users are re-read (step 7)
                continue
            holds, aggregates = _reference(now)
            after = _states()
            expected = {pair for pair, ok in holds.items() if ok}
            assert _members() == expected, f"seed {seed} step {step}"
            # every state is current (the timers took those that were due): its count and aggregate are the window's
            for pair, (n, value, snap, writer) in after.items():
                ref_n, ref_value = aggregates[pair]
                assert n == ref_n, (seed, step, pair, n, ref_n)
                if pair[0] in ("sum", "neg"):
                    assert value == (ref_value or Decimal(0)), (seed, step, pair, value)
                if pair[0] in ("min", "max", "top"):
                    assert value == ref_value, (seed, step, pair, value)
                if pair in before and snap and before[pair][3] == writer and before[pair][:2] != (n, value):
                    forwarded += 1  # changed without a whole read: brought forward
    assert forwarded > 0  # the incremental path was taken
    assert crashes > 0 or not chunked  # a claim died between its chunks and was resumed


def _rule_of(seg: Any) -> dict[str, Any]:
    return {
        "event_type": seg.event_type,
        "attribute": seg.attribute,
        "property": seg.property,
        "operator": seg.operator,
        "value": float(seg.value),
        "window_minutes": seg.window_minutes,
    }
