"""Reads around attribution: display names of keys, the data stamp, the default date range."""

from __future__ import annotations

import datetime as dt

from django.db import connection
from django.utils import timezone

from audiences.models import Audience
from campaigns.models import Campaign, Strategy
from reporting.attribution.paths import EVENTS

NO_VALUE = {"campaign": "(no campaign)", "line_item": "(no line item)", "audience": "(no audience)"}


def key_names(group_by: str, keys: list[str]) -> dict[str, str]:
    """Display names: campaigns by TTD campaign id (external id), line items from the strategies REDS
    creates (strategy name = line item id; the campaign's name is added), audiences by id; else the raw id."""

    names = {key: key or NO_VALUE[group_by] for key in keys}
    wanted = [key for key in keys if key]
    if group_by == "campaign":
        for external_id, name in (
            Campaign.objects.filter(external_id__in=wanted).order_by("-id").values_list("external_id", "name")
        ):
            names[external_id] = name  # the oldest campaign wins when two share an id (ordered newest first)
    elif group_by == "line_item":
        found: dict[str, list[str]] = {}
        for strategy, campaign in (
            Strategy.objects.filter(name__in=wanted).order_by("campaign__name").values_list("name", "campaign__name")
        ):
            found.setdefault(strategy, []).append(campaign)
        for strategy, campaigns in found.items():
            names[strategy] = f"{strategy} ({', '.join(campaigns)})"
    elif group_by == "audience":
        ids = [int(key) for key in wanted if key.isdigit() and len(key) < 18]
        for pk, name in Audience.objects.filter(pk__in=ids).values_list("pk", "name"):
            names[str(pk)] = name
    return names


def data_stamp() -> str:
    """Changes whenever REDS events are written in this schema: every insert draws from the events'
    sequence (sequences never roll back), and a re-load rewrites its file row."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT last_value, is_called FROM {EVENTS}_id_seq")
        last_value, is_called = cursor.fetchone()
        cursor.execute("SELECT count(*), max(loaded_at) FROM ingestion_store_redsfile")
        files, loaded = cursor.fetchone()
    return f"{last_value}:{int(is_called)}:{files}:{loaded.isoformat() if loaded else ''}"


def latest_event_day() -> dt.date | None:
    """The newest day holding REDS events (the page's default range ends there)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT max(event_date) FROM {EVENTS}")
        row = cursor.fetchone()
    return row[0] if row and row[0] else None


def default_range(days: int = 30) -> tuple[dt.date, dt.date]:
    end = latest_event_day() or timezone.now().date()
    return end - dt.timedelta(days=days - 1), end
