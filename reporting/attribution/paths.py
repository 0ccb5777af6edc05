"""Conversion paths from REDS events: one COPY read into polars, then vectorised path building.

Definitions (also in docs/attribution.md):
- Touches are impression and click events; conversions are conversion events. A user is the
  `user_id` string (its type is not part of the key). Events are ordered by timestamp, then
  touches before a conversion at the same instant, then file order (the event id; an impression
  and a click at the same instant keep file order too).
- Conversions count when their UTC day is in [start, end]. A conversion's path is the same user's
  touches after that user's previous conversion and no older than `lookback_days` (age measured
  from touch to conversion, boundary inclusive; a touch at the conversion's instant counts).
  Touches are therefore never reused: a second conversion by a user only gets the touches after
  the first one.
- A conversion without a user id, or with no touch in its window (e.g. a user who only has
  conversions) is unattributed, reported with its reason.
- Non-converting paths (for the Markov chain): a user's touches after their last conversion in the
  window read (or all of them when there is none), read from [start - lookback_days, end]. Touches
  that expired (older than the lookback before their conversion) and the paths of conversions
  before `start` belong to neither kind and are left out.
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass

import polars as pl
from django.db import connection

EVENTS = "ingestion_store_redsevent"
GROUP_COLUMNS = {
    "campaign": "campaign_id",
    "line_item": "line_item_id",
    "audience": "audience_id",
    # orchestration (issue 14): the program of the campaign whose external id is the TTD campaign id
    # (the oldest such campaign, as for campaign names), as document 000's report query joins programs
    "program": (
        f"coalesce((SELECT c.program_id::text FROM campaigns_campaign c WHERE c.external_id = {EVENTS}.campaign_id "
        "AND c.external_id <> '' ORDER BY c.id LIMIT 1), '')"
    ),
}
IMPRESSION, CLICK, CONVERSION = 0, 1, 2
US_PER_DAY = 86_400 * 1_000_000
_CHUNK = 32 << 20  # parse the COPY stream in ~32 MB pieces: memory stays near the size of the frame
_SCHEMA = {
    "id": pl.Int64,
    "user": pl.String,
    "ts": pl.Int64,
    "t": pl.Int8,
    "key": pl.String,
    "cost": pl.Float64,
    "value": pl.Float64,
}


def _parse(data: bytes) -> pl.DataFrame:
    frame = pl.read_csv(io.BytesIO(data), has_header=False, new_columns=list(_SCHEMA), schema=_SCHEMA)
    # Categorical (global categories) keeps 10M user ids compact and makes grouping cheap.
    return frame.with_columns(
        pl.when(pl.col("user") == "").then(None).otherwise(pl.col("user")).cast(pl.Categorical).alias("user"),
        pl.col("key").fill_null("").cast(pl.Categorical),
    )


def read_events(*, start: dt.date, end: dt.date, lookback_days: int, group_by: str) -> pl.DataFrame:
    """Events of [start - lookback_days, end] with only the columns attribution needs (one COPY)."""
    column = GROUP_COLUMNS[group_by]
    first = start - dt.timedelta(days=lookback_days)
    # Dates come from validated date objects; the table and column names from the fixed maps above.
    sql = (
        f"COPY (SELECT id, user_id, (extract(epoch FROM event_timestamp) * 1000000)::int8, "
        f"CASE event_type WHEN 'impression' THEN 0 WHEN 'click' THEN 1 ELSE 2 END, {column}, "
        f"cost_usd, conversion_value FROM {EVENTS} "
        f"WHERE event_date BETWEEN '{first.isoformat()}' AND '{end.isoformat()}' "
        f"AND event_type IN ('impression', 'click', 'conversion')) TO STDOUT (FORMAT csv)"
    )
    frames: list[pl.DataFrame] = []
    buffer = bytearray()
    with connection.cursor() as cursor, cursor.copy(sql) as copy:  # type: ignore[attr-defined]
        for block in copy:
            buffer += block
            if len(buffer) >= _CHUNK:
                cut = buffer.rfind(b"\n") + 1
                frames.append(_parse(bytes(buffer[:cut])))
                del buffer[:cut]
    if buffer:
        frames.append(_parse(bytes(buffer)))
    if not frames:
        return pl.DataFrame(schema={**_SCHEMA, "user": pl.Categorical, "key": pl.Categorical})
    return pl.concat(frames, rechunk=False)


@dataclass
class Paths:
    """Everything the credit models need, built once per request and shared by all six models."""

    touches: pl.DataFrame  # converting paths: conv, key, pos, n, age_days, value (ordered within each path)
    conversions: pl.DataFrame  # in-range conversions of known users: conv, value, n (0 = no touch)
    idle: pl.DataFrame  # non-converting paths: path, key (ordered within each path)
    no_user: pl.DataFrame  # in-range conversions without a user id: value
    cost: pl.DataFrame  # key, cost, touches: impressions and clicks in [start, end], every user

    @property
    def attributed(self) -> pl.DataFrame:
        return self.conversions.filter(pl.col("n") > 0)


def build(events: pl.DataFrame, *, start: dt.date, end: dt.date, lookback_days: int) -> Paths:
    """Paths as the module docstring defines them (vectorised: no Python loop over users or paths)."""
    epoch = dt.date(1970, 1, 1)
    lo = (start - epoch).days * US_PER_DAY
    hi = ((end - epoch).days + 1) * US_PER_DAY
    lookback = lookback_days * US_PER_DAY
    is_conv = pl.col("t") == CONVERSION
    in_range = (pl.col("ts") >= lo) & (pl.col("ts") < hi)

    cost = (
        events.lazy()
        .filter(~is_conv & in_range)
        .group_by("key")
        .agg(pl.col("cost").sum(), pl.len().alias("touches"))
        .collect()
    )
    no_user = events.lazy().filter(is_conv & in_range & pl.col("user").is_null()).select("value").collect()

    ordered = (
        events.lazy()
        .filter(pl.col("user").is_not_null())
        # Only what the paths need goes through the sort. Order: time, then touches before a
        # conversion at the same instant (2 ts + 1 for conversions), then file order (event id).
        .select(
            pl.col("user").to_physical().alias("u"),
            (pl.col("ts") * 2 + is_conv.cast(pl.Int64)).alias("order"),
            "id",
            "ts",
            "t",
            "key",
            "value",
        )
        .sort(["u", "order", "id"])
        .with_columns(is_conv.cast(pl.UInt32).cum_sum().alias("cum"))  # conversion number (1-based)
        # A touch belongs to the next conversion row in this order when that row is the same user's
        # (the conversion closes the user's segment); otherwise it is on the user's trailing,
        # non-converting path. Backward fills instead of a join: one linear pass.
        .with_columns(
            pl.when(is_conv).then(pl.col("u")).backward_fill().alias("conv_u"),
            pl.when(is_conv).then(pl.col("cum")).backward_fill().alias("conv"),
            pl.when(is_conv).then(pl.col("ts")).backward_fill().alias("conv_ts"),
            pl.when(is_conv).then(pl.col("value").fill_null(0.0)).backward_fill().alias("conv_value"),
        )
        .with_columns(((pl.col("conv_ts") >= lo) & (pl.col("conv_ts") < hi)).alias("conv_in_range"))
        .collect()
    )
    conversions_all = ordered.filter(is_conv).select("conv", pl.col("conv_value").alias("value"), "conv_in_range")
    same_user = pl.col("conv_u").is_not_null() & (pl.col("conv_u") == pl.col("u"))
    touches = (
        ordered.lazy()
        .filter(~is_conv & same_user & pl.col("conv_in_range") & (pl.col("conv_ts") - pl.col("ts") <= lookback))
        .select(
            "conv",
            "key",
            pl.col("conv_value").alias("value"),
            ((pl.col("conv_ts") - pl.col("ts")) / US_PER_DAY).alias("age_days"),
        )
        .with_columns(
            pl.int_range(pl.len(), dtype=pl.UInt32).over("conv").alias("pos"),
            pl.len().over("conv").cast(pl.UInt32).alias("n"),
        )
        .collect()
    )
    counts = touches.group_by("conv").agg(pl.len().cast(pl.UInt32).alias("n"))
    conversions = (
        conversions_all.filter(pl.col("conv_in_range"))
        .select("conv", "value")
        .join(counts, on="conv", how="left")
        .with_columns(pl.col("n").fill_null(0))
    )
    # The trailing segment is the only non-converting one a user has: the user names the path.
    idle = ordered.filter(~is_conv & ~same_user).select(pl.col("u").cast(pl.UInt64).alias("path"), "key")
    del ordered
    return Paths(touches=touches, conversions=conversions, idle=idle, no_user=no_user, cost=cost)
