"""Test data for activation: REDS events straight into the org's day partitions."""

from __future__ import annotations

import datetime as dt

from django.db import connection

from ingestion.reds import ensure_event_partitions


def add_reds_events(rows: list[tuple[dt.datetime, str, str, str]]) -> None:
    """(timestamp, audience_id, user_id, user_id_type) impressions in the current org."""
    ensure_event_partitions(sorted({ts.date() for ts, *_ in rows}))
    with connection.cursor() as cursor:
        for n, (ts, audience_id, user_id, kind) in enumerate(rows):
            cursor.execute(
                "INSERT INTO ingestion_store_redsevent (event_date, event_timestamp, advertiser_id, campaign_id, "
                "line_item_id, event_type, cost_usd, audience_id, user_id, user_id_type, file_id, line_no) "
                "VALUES (%s, %s, 'adv', 'c', 'l', 'impression', 0, %s, %s, %s, 0, %s)",
                [ts.date(), ts, audience_id, user_id, kind, n],
            )
