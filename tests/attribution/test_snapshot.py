"""Session 12: one attribution run reads one snapshot, so events committed while it runs are in none of its slices.

The slices of users are separate queries. Each run here gets its own thread (its own connection, outside the
test's transaction, as a request or a command has): the events are committed for real and removed at the end.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.db import connection
from django_tenants.utils import schema_context

from reporting.attribution import paths
from tests.attribution.helpers import Ev, conv, imp, insert_events

pytestmark = pytest.mark.django_db

# A day no other test writes (these rows are committed); hours are counted from BASE in helpers, so from 2024-02-29.
DAY = dt.date(2024, 2, 29)
HOURS = (dt.datetime.combine(DAY, dt.time(10), tzinfo=dt.UTC) - dt.datetime(2026, 11, 10, 12, tzinfo=dt.UTC)) / (
    dt.timedelta(hours=1)
)


def _in_thread(work: Callable[[], Any]) -> Any:
    """`work()` on a thread of its own (its own connection, autocommit), closed afterwards."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SET lock_timeout = '20s'")  # a lock wait fails the test instead of hanging it
            box["value"] = work()
        except BaseException as exc:  # handed to the test's thread
            box["error"] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=120)
    assert not thread.is_alive(), "the thread did not finish"
    if "error" in box:
        raise box["error"]
    return box.get("value")


def _events(prefix: str, key: str) -> list[Ev]:
    return [event for n in range(20) for event in (imp(HOURS, key, f"{prefix}{n}"), conv(HOURS + 1, f"{prefix}{n}"))]


def _attribution(acme: Any) -> dict[str, Any]:
    def run() -> dict[str, Any]:
        out = io.StringIO()
        call_command(
            "attribution", "--org", acme.slug, "--start", DAY.isoformat(), "--end", DAY.isoformat(),
            "--model", "last_touch", "--json", stdout=out,
        )  # fmt: skip
        return dict(json.loads(out.getvalue())["results"]["last_touch"])

    return dict(_in_thread(run))


@pytest.fixture
def committed_day(acme: Any) -> Iterator[None]:
    _in_thread(lambda: insert_events(acme, _events("seed-", "c-seed")))
    yield

    def clean() -> None:
        with schema_context(acme.schema_name), connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS ingestion_store_redsevent_p{DAY:%Y%m%d}")

    _in_thread(clean)
    cache.clear()


def test_events_committed_between_slices_are_in_none_of_them(
    acme: Any, committed_day: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    read_events = paths.read_events
    isolation: list[str] = []

    def read_then_insert(**kwargs: Any) -> Any:
        frame = read_events(**kwargs)
        with connection.cursor() as cursor:
            cursor.execute("SHOW transaction_isolation")
            isolation.append(cursor.fetchone()[0])
        if kwargs["part"][0] == 0:  # after the first slice: 20 new converting users, spread over both slices
            _in_thread(lambda: insert_events(acme, _events("new-", "c-new"), partitions=False))
        return frame

    monkeypatch.setattr(paths, "read_slices", lambda **kwargs: 2)
    monkeypatch.setattr(paths, "read_events", read_then_insert)
    cache.clear()
    during = _attribution(acme)
    keys = {row["key"] for row in during["rows"]}
    assert during["totals"]["conversions"] == 20 and keys == {"c-seed"}, during["totals"]  # the run's snapshot
    assert isolation == ["repeatable read", "repeatable read"]

    monkeypatch.setattr(paths, "read_events", read_events)
    after = _attribution(acme)  # the new events are real: the next run (a new data stamp) sees them
    assert after["totals"]["conversions"] == 40 and {row["key"] for row in after["rows"]} == {"c-seed", "c-new"}
