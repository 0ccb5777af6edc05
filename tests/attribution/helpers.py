"""Helpers for attribution tests: write REDS events straight into an org's day partitions."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache
from django.db import connection
from django_tenants.utils import schema_context

from ingestion.reds import _ensure_partitions

BASE = dt.datetime(2026, 11, 10, 12, 0, tzinfo=dt.UTC)
DAY = BASE.date()


@dataclass
class Ev:
    """One REDS event: `at` is hours after BASE (negative = before)."""

    at: float
    kind: str  # impression | click | conversion
    key: str = ""  # campaign id
    user: str = "u1"
    value: float | None = None
    cost: float = 0.0
    line_item: str = "li"
    audience: str = ""

    @property
    def ts(self) -> dt.datetime:
        return BASE + dt.timedelta(hours=self.at)


def imp(at: float, key: str, user: str = "u1", cost: float = 0.0, **kw: Any) -> Ev:
    return Ev(at, "impression", key, user, cost=cost, **kw)


def clk(at: float, key: str, user: str = "u1", cost: float = 0.0, **kw: Any) -> Ev:
    return Ev(at, "click", key, user, cost=cost, **kw)


def conv(at: float, user: str = "u1", value: float | None = 100.0, key: str = "cx", **kw: Any) -> Ev:
    return Ev(at, "conversion", key, user, value=value, **kw)


def insert_events(org: Any, events: list[Ev], *, partitions: bool = True) -> None:
    """Insert in list order (the event id, the tie-breaker for equal timestamps, follows it). `partitions=False`
    when the day partitions exist (creating one locks the events table, which a reader may hold)."""
    with schema_context(org.schema_name):
        if partitions:
            _ensure_partitions(sorted({e.ts.date() for e in events}))
        rows = [
            (
                e.ts.date(),
                e.ts,
                org.ttd_advertiser_id,
                e.key,
                e.line_item,
                e.kind,
                e.cost,
                e.audience,
                e.user,
                "UID2" if e.user else "",
                e.value,
                0,
                n,
            )
            for n, e in enumerate(events, 1)
        ]
        with connection.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO ingestion_store_redsevent (event_date, event_timestamp, advertiser_id, campaign_id, "
                "line_item_id, event_type, cost_usd, audience_id, user_id, user_id_type, conversion_value, file_id, "
                "line_no) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                rows,
            )
    cache.clear()
