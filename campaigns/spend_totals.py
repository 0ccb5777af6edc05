"""Running spend totals per strategy and day (`campaigns.SpendTotal`): what pacing reads.

Kept current by the ingestion ETL's "metrics_loaded" hook (registered in campaigns/registrations.py): inside the
loader's transaction, after it rewrote the daily metrics of some days, every total from the first of those days
on is rewritten from the daily metrics (a window function per strategy, carried on from the last total before
that day). A late file for a past day therefore rewrites the totals of the days after it too: the cost is the
daily rows from that day on, once per load, instead of every pacing read summing 90 days of rows.

`rebuild()` rewrites everything (the migration, retention after it deleted old days, and `pacing --rebuild`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from django.db import connection, transaction

_COLUMNS = "strategy_id, campaign_id, date, spend, media_cost, impressions, clicks, conversions, conversion_revenue"

# The daily rows from %(first)s on, summed per strategy and day, then accumulated per strategy on top of the
# strategy's last total before %(first)s (none: 0).
_REWRITE_FROM = f"""
WITH day_rows AS (
    SELECT strategy_id, min(campaign_id) AS campaign_id, date, sum(spend) AS spend,
        coalesce(sum(media_cost), 0) AS media_cost, sum(impressions) AS impressions, sum(clicks) AS clicks,
        sum(conversions) AS conversions, sum(conversion_revenue) AS conversion_revenue
    FROM campaigns_dailymetric WHERE date >= %(first)s
    GROUP BY strategy_id, date
), base AS (
    SELECT s.strategy_id, b.spend, b.media_cost, b.impressions, b.clicks, b.conversions, b.conversion_revenue
    FROM (SELECT DISTINCT strategy_id FROM day_rows) s
    JOIN LATERAL (
        SELECT * FROM campaigns_spendtotal t WHERE t.strategy_id = s.strategy_id AND t.date < %(first)s
        ORDER BY t.date DESC LIMIT 1
    ) b ON true
)
INSERT INTO campaigns_spendtotal ({_COLUMNS})
SELECT d.strategy_id, d.campaign_id, d.date,
    coalesce(b.spend, 0) + sum(d.spend) OVER w,
    coalesce(b.media_cost, 0) + sum(d.media_cost) OVER w,
    coalesce(b.impressions, 0) + sum(d.impressions) OVER w,
    coalesce(b.clicks, 0) + sum(d.clicks) OVER w,
    coalesce(b.conversions, 0) + sum(d.conversions) OVER w,
    coalesce(b.conversion_revenue, 0) + sum(d.conversion_revenue) OVER w
FROM day_rows d LEFT JOIN base b ON b.strategy_id = d.strategy_id
WINDOW w AS (PARTITION BY d.strategy_id ORDER BY d.date ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
"""


def rewrite_from(first: dt.date) -> int:
    """Rewrite every running total from `first` on (all strategies); returns the rows written."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM campaigns_spendtotal WHERE date >= %s", [first])
        cursor.execute(_REWRITE_FROM, {"first": first})
        return cursor.rowcount


def rebuild() -> int:
    """Rewrite every running total from the daily metrics (the current schema)."""
    return rewrite_from(dt.date.min)


def metrics_loaded(dates: Iterable[dt.date | str]) -> None:
    """The "metrics_loaded" hook: the ETL rewrote the daily metrics of `dates` (current schema, its transaction)."""
    days = [d if isinstance(d, dt.date) else dt.date.fromisoformat(d) for d in dates]
    if days:
        rewrite_from(min(days))


def campaign_deleted(*, campaign_id: int) -> None:
    """The "campaign_deleted" hook: its strategies' totals go with it."""
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM campaigns_spendtotal WHERE campaign_id = %s", [campaign_id])
