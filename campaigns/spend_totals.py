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
_TYPED_NULLS = ", ".join(f"(NULL::campaigns_spendtotal).{f} AS {f}" for f in _FIGURES)
# Steps 1 and 2 read "the strategy's total before a day" with window functions over the affected strategies' totals
# (linear), not a per-row LATERAL lookup: that lookup is planned from statistics, and on a table just filled in the
# same transaction (no statistics yet: a first load of 91 days) it became a sequential scan per row, minutes.
_INSERT_MISSING = f"""
WITH n AS ({_NEW_DAYS}),
missing AS (
    SELECT n.strategy_id, n.campaign_id, n.date FROM n
    WHERE NOT EXISTS (SELECT 1 FROM campaigns_spendtotal t WHERE t.strategy_id = n.strategy_id AND t.date = n.date)
),
seq AS (
    SELECT t.strategy_id, t.campaign_id, t.date, 0 AS kind, {", ".join(f"t.{f}" for f in _FIGURES)}
    FROM campaigns_spendtotal t WHERE t.strategy_id IN (SELECT strategy_id FROM missing)
    UNION ALL
    SELECT m.strategy_id, m.campaign_id, m.date, 1 AS kind, {_TYPED_NULLS} FROM missing m
),
grouped AS (  -- grp: how many existing totals of the strategy come up to this row (a missing day shares its grp)
    SELECT seq.*, count(*) FILTER (WHERE kind = 0) OVER (
        PARTITION BY strategy_id ORDER BY date, kind ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS grp
    FROM seq
),
filled AS (
    SELECT strategy_id, campaign_id, date, kind,
        {", ".join(f"max({f}) OVER (PARTITION BY strategy_id, grp) AS {f}" for f in _FIGURES)}
    FROM grouped
)
INSERT INTO campaigns_spendtotal ({_COLUMNS})
SELECT strategy_id, campaign_id, date, {", ".join(f"coalesce({f}, 0)" for f in _FIGURES)}
FROM filled WHERE kind = 1
ON CONFLICT (strategy_id, date) DO NOTHING"""
_APPLY_DELTAS = f"""
WITH touched AS (
    SELECT DISTINCT strategy_id FROM campaigns_spendtotal WHERE date = ANY(%(days)s)
), day_sums AS (  -- a total minus the strategy's total before it: that day's old sum
    SELECT t.strategy_id, t.date, {", ".join(f"t.{f} - coalesce(lag(t.{f}) OVER w, 0) AS {f}" for f in _FIGURES)}
    FROM campaigns_spendtotal t WHERE t.strategy_id IN (SELECT strategy_id FROM touched)
    WINDOW w AS (PARTITION BY t.strategy_id ORDER BY t.date)
), old AS (
    SELECT * FROM day_sums WHERE date = ANY(%(days)s)
), delta AS (
    SELECT o.strategy_id, o.date, {", ".join(f"coalesce(n.{f}, 0) - o.{f} AS {f}" for f in _FIGURES)}
    FROM old o LEFT JOIN ({_NEW_DAYS}) n ON n.strategy_id = o.strategy_id AND n.date = o.date
), moved AS (  -- every delta day has a total (step 1), so a running sum over the totals adds the deltas up to each
    SELECT t.id, {", ".join(f"sum(coalesce(d.{f}, 0)) OVER w AS {f}" for f in _FIGURES)}
    FROM campaigns_spendtotal t LEFT JOIN delta d ON d.strategy_id = t.strategy_id AND d.date = t.date
    WHERE t.date >= %(first)s AND t.strategy_id IN (SELECT strategy_id FROM delta)
    WINDOW w AS (PARTITION BY t.strategy_id ORDER BY t.date ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
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
        # Both statements are set-based: hash joins over the loaded days. The planner's row estimates come from
        # statistics, which the loader's own transaction has just made wrong (a first load of 91 days into empty
        # tables), and a nested loop then re-ran the day sums per total: minutes. So nested loops are off for these
        # two statements only (restored after: we run inside the loader's transaction).
        cursor.execute("SELECT current_setting('enable_nestloop'), set_config('enable_nestloop', 'off', true)")
        (previous, _) = cursor.fetchone()
        cursor.execute(_INSERT_MISSING, params)
        cursor.execute(_APPLY_DELTAS, params)
        cursor.execute("SELECT set_config('enable_nestloop', %s, true)", [previous])


def metrics_loaded(dates: Iterable[dt.date | str]) -> None:
    """The "metrics_loaded" hook: the ETL rewrote the daily metrics of `dates` (current schema, its transaction)."""
    apply_days(d if isinstance(d, dt.date) else dt.date.fromisoformat(d) for d in dates)


def campaign_deleted(*, campaign_id: int) -> None:
    """The "campaign_deleted" hook: its strategies' totals go with it."""
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM campaigns_spendtotal WHERE campaign_id = %s", [campaign_id])
