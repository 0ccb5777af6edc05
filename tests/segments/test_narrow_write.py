"""The narrow window-state write (segments.evaluator.NARROW_WRITE, session 12 step 2: the write's input carries no
snapshot text, the statement's snapshot is taken once, and a state brought forward whose aggregates and due_at did
not change is not written) decides and stores exactly what the previous write did: the same entries and exits,
memberships and window states (aggregates, due_at, whether a snapshot is known), and leaves the unchanged states
alone. Committed transactions (a subprocess, as tests/segments/test_incremental.py): within one test transaction
every batch shares the states' transaction and no state is ever brought forward."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django_tenants.utils import schema_context

from tests.segments.helpers import committed_org_with_rules

pytestmark = [pytest.mark.slow, pytest.mark.django_db]
ROOT = Path(__file__).resolve().parents[2]
RULES = [  # two rules sharing the orders window (count and sum of value), one on clicks
    ("two orders", "orders", "count", "", "gt", 1, 60),
    ("big spenders", "orders", "sum", "value", "gte", 6, 60),
    ("clickers", "clicks", "count", "", "gt", 0, 60),
]
STATES = (
    "SELECT user_id, event_type, window_minutes, property, events_in_window, due_at, total, low, high, "
    "snapshot <> '' AS known, xmin::text AS version FROM segments_windowstate"
)


@pytest.fixture(scope="module")
def narrow_org(django_db_setup: Any, django_db_blocker: Any) -> Iterator[Any]:
    with django_db_blocker.unblock(), committed_org_with_rules("narrow", "Narrow write", RULES) as org:
        yield org


def test_the_narrow_write_stores_what_the_wide_write_stored(narrow_org: Any) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"},
        "P360_DB_NAME": connection.settings_dict["NAME"],
        "SEGMENTS_EVALUATE_INLINE_MAX": "0",  # every batch queued: claims bring states forward
        "DJANGO_SETTINGS_MODULE": "p360.settings",
    }
    code = (
        "import django; django.setup(); from tests.segments.test_narrow_write import _compare; "
        f"_compare({narrow_org.schema_name!r})"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]


def _event(seq: int, user: str, event_type: str, when: datetime, value: int | None = None) -> dict[str, Any]:
    return {
        "event_id": f"nw-{seq}",
        "user_id": user,
        "event_type": event_type,
        "timestamp": when.isoformat(),
        "attributes": {} if value is None else {"value": value},
    }


def _claims(now: datetime) -> list[list[dict[str, Any]]]:
    """Three claims: users entering and staying out, an event a little ahead (due), then a claim whose events
    change nothing in u1's orders window (one long before it: new to the state, never in the window) and add to
    u2's."""
    at = now - timedelta(minutes=1)
    return [
        [_event(1, "u1", "orders", at, 5), _event(2, "u2", "orders", at, 1), _event(3, "u3", "clicks", at)],
        [_event(4, "u1", "orders", at, 7), _event(5, "u2", "clicks", at), _event(6, "u1", "orders", now + FUTURE)],
        [_event(7, "u1", "orders", now - timedelta(hours=10), 9), _event(8, "u2", "orders", at, 4)],
    ]


FUTURE = timedelta(seconds=30)


def _states() -> dict[tuple[Any, ...], tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(STATES)
        return {row[:4]: row[4:] for row in cursor.fetchall()}


def _one_run(narrow: bool, now: datetime) -> dict[str, Any]:
    from segments import evaluator
    from segments.models import Membership, Transition
    from segments.services import ingest_events

    with connection.cursor() as cursor:  # each run starts from nothing
        cursor.execute(
            "TRUNCATE segments_event, segments_event_id, segments_windowstate, segments_membership, "
            "segments_pendingbatch, segments_transition, segments_userprofile CASCADE"
        )
    evaluator.NARROW_WRITE = narrow
    before: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    for batch in _claims(now):
        ingest_events(raws=batch, now=now)
        before = _states()
        evaluator.evaluate_pending(now=now)
    after = _states()
    return {
        "ledger": sorted(Transition.objects.values_list("segment__name", "user_id", "kind", "event_id", "reason")),
        "members": sorted(Membership.objects.values_list("segment__name", "user_id")),
        "states": {key: row[:-1] for key, row in after.items()},
        "rewritten": {key for key, row in after.items() if before.get(key, (None,))[-1] != row[-1]},
    }


def _compare(schema: str) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    with schema_context(schema):
        wide = _one_run(False, now)
        narrow = _one_run(True, now)
    rewritten = narrow.pop("rewritten"), wide.pop("rewritten")
    assert narrow == wide, (narrow, wide)
    states = narrow["states"]
    assert states and all(row[-1] for row in states.values())  # every state knows its snapshot
    u1_orders = {key for key in states if key[:2] == ("u1", "orders")}
    u2_orders = {key for key in states if key[:2] == ("u2", "orders")}
    assert u1_orders and u2_orders
    assert u1_orders <= rewritten[1]  # the previous write rewrote every touched state
    assert not u1_orders & rewritten[0]  # nothing changed in u1's orders window: not written
    assert u2_orders <= rewritten[0]  # u2's did change
    assert ("two orders", "u1") in narrow["members"] and ("big spenders", "u1") in narrow["members"]
