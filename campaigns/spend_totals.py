"""Running spend totals per strategy and day (`campaigns.SpendTotal`): what pacing reads.

Kept current by the ingestion ETL's "metrics_loaded" hook (registered in campaigns/registrations.py): inside the
loader's transaction, after it rewrote the daily metrics of some days, the totals move by what changed on those
days (`apply_days`): a late file for a past day shifts the later totals of the strategies it changed, reading
only the loaded days' rows. Pacing then reads two totals per strategy and flight instead of summing 90 days of
daily rows on every request.

`rebuild()` rewrites everything from the daily metrics (the migration, and retention after it deleted old days).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

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


_FIGURES = ("spend", "media_cost", "impressions", "clicks", "conversions", "conversion_revenue")

# A load rewrote the daily metrics of some days. Each (strategy, day) of those days changed by
# delta = (its new day sum) - (its old day sum, i.e. its total that day - its total the day before), and every
# total of that strategy from that day on moves by the sum of the deltas up to it. Steps, in one transaction:
# 1. a (strategy, day) with new rows but no total yet gets one equal to the strategy's total before that day
#    (its old day sum is then 0); 2. the deltas of the loaded days; 3. every later total of the strategies with
# a delta moves by their sum. A day that lost all its rows keeps its (now unchanged) total: probes read "the
# latest total on or before a day", so that is the same as no row. Cost: the loaded days' rows and the totals
# after the first of them of the strategies that changed; never the daily rows of other days.
_NEW_DAYS = """
    SELECT strategy_id, min(campaign_id) AS campaign_id, date, sum(spend) AS spend,
        coalesce(sum(media_cost), 0) AS media_cost, sum(impressions) AS impressions, sum(clicks) AS clicks,
        sum(conversions) AS conversions, sum(conversion_revenue) AS conversion_revenue
    FROM campaigns_dailymetric WHERE date = ANY(%(days)s) GROUP BY strategy_id, date"""
_INSERT_MISSING = f"""
INSERT INTO campaigns_spendtotal ({_COLUMNS})
SELECT n.strategy_id, n.campaign_id, n.date, {", ".join(f"coalesce(b.{f}, 0)" for f in _FIGURES)}
FROM ({_NEW_DAYS}) n
LEFT JOIN LATERAL (
    SELECT * FROM campaigns_spendtotal t WHERE t.strategy_id = n.strategy_id AND t.date < n.date
    ORDER BY t.date DESC LIMIT 1
) b ON true
ON CONFLICT (strategy_id, date) DO NOTHING"""
_APPLY_DELTAS = f"""
WITH old AS (
    SELECT t.strategy_id, t.date, {", ".join(f"t.{f} - coalesce(b.{f}, 0) AS {f}" for f in _FIGURES)}
    FROM campaigns_spendtotal t
    LEFT JOIN LATERAL (
        SELECT * FROM campaigns_spendtotal p WHERE p.strategy_id = t.strategy_id AND p.date < t.date
        ORDER BY p.date DESC LIMIT 1
    ) b ON true
    WHERE t.date = ANY(%(days)s)
), delta AS (
    SELECT o.strategy_id, o.date, {", ".join(f"coalesce(n.{f}, 0) - o.{f} AS {f}" for f in _FIGURES)}
    FROM old o LEFT JOIN ({_NEW_DAYS}) n ON n.strategy_id = o.strategy_id AND n.date = o.date
), moved AS (
    SELECT t.id, {", ".join(f"sum(d.{f}) AS {f}" for f in _FIGURES)}
    FROM campaigns_spendtotal t JOIN delta d ON d.strategy_id = t.strategy_id AND d.date <= t.date
    WHERE t.date >= %(first)s AND t.strategy_id IN (SELECT strategy_id FROM delta)
    GROUP BY t.id
)
UPDATE campaigns_spendtotal t SET {", ".join(f"{f} = t.{f} + m.{f}" for f in _FIGURES)}
FROM moved m WHERE m.id = t.id"""


def apply_days(days: Iterable[dt.date]) -> None:
    """The daily metrics of `days` were rewritten: move the running totals by what changed (see above)."""
    day_list = sorted(set(days))
    if not day_list:
        return
    params: dict[str, Any] = {"days": day_list, "first": day_list[0]}
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_INSERT_MISSING, params)
        cursor.execute(_APPLY_DELTAS, params)


def metrics_loaded(dates: Iterable[dt.date | str]) -> None:
    """The "metrics_loaded" hook: the ETL rewrote the daily metrics of `dates` (current schema, its transaction)."""
    apply_days(d if isinstance(d, dt.date) else dt.date.fromisoformat(d) for d in dates)


def campaign_deleted(*, campaign_id: int) -> None:
    """The "campaign_deleted" hook: its strategies' totals go with it."""
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM campaigns_spendtotal WHERE campaign_id = %s", [campaign_id])
