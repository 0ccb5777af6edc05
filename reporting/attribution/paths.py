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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import polars as pl
import psycopg
from django.db import connection, transaction

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
_CHUNK = 32 << 20  # parse the read text in ~32 MB pieces: memory stays near the size of the frame
# One text value per group of at most this many event ids: PostgreSQL caps a value at 1 GB (an event line is at
# most ~560 bytes with a 200-character user id and a 100-character key).
_GROUP_IDS = 250_000
_WINDOW_BYTES = 256 << 20  # one query reads consecutive day partitions holding up to about this much (~2M events)
_PARALLEL = "SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0; SET enable_sort = off"
_SERIAL = "RESET parallel_setup_cost; RESET parallel_tuple_cost; RESET min_parallel_table_scan_size; RESET enable_sort"
BUCKET_ROWS = 2_000_000  # paths are built per slice of users of about this many events: memory stays flat
# The events are read in slices of users (a hash of the user id), one read and one path build per slice, so that only
# one slice's events are alive at once (issue 17: 10M events were 1.7 GB). A slice covers about this many bytes of
# day partitions; PostgreSQL scans the partitions once per slice, which is why the slices are few and large.
# 448 MB: 4 slices at 10M events, peak 1,431 MB (2 slices: 1,589 MB; 3: 1,523 MB) for +1.5 s over 2 slices.
READ_SLICE_BYTES = 448 << 20
_SCHEMA = {
    "id": pl.Int64,
    "user": pl.String,
    "ts": pl.Int64,
    "t": pl.Int8,
    "key": pl.String,
    "value": pl.Float64,
}
_EVENT_SCHEMA = {**_SCHEMA, "user": pl.Categorical, "key": pl.Categorical}
_COST_SCHEMA = {"key": pl.String, "cost": pl.Float64, "touches": pl.UInt32}


def _parse(data: bytes) -> pl.DataFrame:
    frame = pl.read_csv(io.BytesIO(data), has_header=False, new_columns=list(_SCHEMA), schema=_SCHEMA)
    # Categorical (global categories) keeps 10M user ids compact and makes grouping cheap.
    return frame.with_columns(
        pl.when(pl.col("user") == "").then(None).otherwise(pl.col("user")).cast(pl.Categorical).alias("user"),
        pl.col("key").fill_null("").cast(pl.Categorical),
    )


def _quoted(expression: str) -> str:
    """A text expression as one CSV field, always quoted (commas, quotes and newlines in ids stay exact)."""
    return "'\"' || replace(coalesce(" + expression + ", ''), '\"', '\"\"') || '\"'"


def _event_line() -> str:
    """One event as a CSV line: id, user, epoch microseconds, 2 for a conversion (else 0), key, value."""
    return (
        f"id || ',' || {_quoted('user_id')} || ',' || "
        "(extract(epoch FROM event_timestamp) * 1000000)::int8 || ',' || "
        "CASE WHEN event_type = 'conversion' THEN '2' ELSE '0' END || ',' || "
        "{key} || ',' || coalesce(conversion_value::text, '')"
    )


def _day_sizes(cursor: Any, first: dt.date, last: dt.date) -> list[tuple[dt.date, int]]:
    """(day, bytes of its partition) for each day of [first, last], from the catalogue, not from a scan."""
    cursor.execute(
        "SELECT d::date, coalesce(pg_relation_size(to_regclass("
        f"'{EVENTS}_p' || to_char(d, 'YYYYMMDD'))), 0) FROM generate_series(%s::date, %s::date, interval '1 day') d",
        [first, last],
    )
    return [(day, int(size)) for day, size in cursor.fetchall()]


@contextmanager
def one_snapshot() -> Iterator[None]:
    """The reads of one run in one REPEATABLE READ, READ ONLY transaction: every read sees the same events.

    The cost and each slice of users are separate queries; under READ COMMITTED each took its own snapshot, so
    events committed during a run could be in a later slice's users and not in an earlier one's, nor in the cost
    (session 12). One snapshot costs nothing to take; the transaction stays open for the reads and path builds
    (seconds at 10M events), read only. Inside a caller's transaction (a test's, an outer atomic block) that
    transaction decides: its isolation cannot change after its first query.
    """
    if connection.in_atomic_block:
        yield
        return
    with transaction.atomic():
        with connection.cursor() as cursor:
            # SET search_path (django-tenants, on the cursor's first use) takes no snapshot: this is still in time.
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield


def read_slices(*, start: dt.date, end: dt.date, lookback_days: int) -> int:
    """How many user slices `read_events` should be called with: one per READ_SLICE_BYTES of day partitions."""
    with connection.cursor() as cursor:
        total = sum(size for _, size in _day_sizes(cursor, start - dt.timedelta(days=lookback_days), end))
    return max(1, -(-total // READ_SLICE_BYTES))


def _windows(cursor: Any, first: dt.date, last: dt.date, slices: int = 1) -> list[tuple[dt.date, dt.date]]:
    """Consecutive days in groups whose day partitions hold about _WINDOW_BYTES each (one query per group: the
    text of one query is held in memory at once); a slice of `slices` reads about 1/slices of each partition."""
    windows: list[tuple[dt.date, dt.date]] = []
    low, size = first, 0
    for day, day_size in _day_sizes(cursor, first, last):
        day_size //= slices
        if size and size + day_size > _WINDOW_BYTES:
            windows.append((low, day - dt.timedelta(days=1)))
            low, size = day, 0
        size += day_size
    windows.append((low, last))
    return windows


def read_events(
    *, start: dt.date, end: dt.date, lookback_days: int, group_by: str, part: tuple[int, int] = (0, 1)
) -> pl.DataFrame:
    """Events of [start - lookback_days, end] with only the columns the paths need.

    `part` (i, k): only the users whose id hashes to slice i of k (every event of a user lands in the same slice;
    a missing and an empty user id share one slice, as the paths treat both as no user).

    PostgreSQL writes the CSV lines itself (its parallel workers too) and hands them over as a few large text
    values (a few queries of consecutive days, `string_agg` per day and group of event ids, as bytea in binary
    results, so that Python never decodes them): a COPY crosses into
    Python once per row, which cost more CPU than PostgreSQL's own work. Row order does not matter (the paths
    sort). Media cost is summed in SQL (`read_cost`, exact numeric sums), so it is not read per event.
    """
    column = GROUP_COLUMNS[group_by]
    first = start - dt.timedelta(days=lookback_days)
    index, slices = part
    if not 0 <= index < slices:
        raise ValueError(f"slice {index} of {slices} does not exist")
    line = _event_line().format(key=_quoted(column))
    # hashtext is PostgreSQL's own (stable within a server, parallel safe); the mask keeps the modulo non-negative.
    user_slice = f"AND (hashtext(coalesce(user_id, '')) & 2147483647) %% {slices} = {index} " if slices > 1 else ""
    # Dates come from validated date objects; the table and column names from the fixed maps above.
    sql = (
        f"SELECT convert_to(string_agg({line}, E'\\n'), 'UTF8') FROM {EVENTS} WHERE event_date BETWEEN %s AND %s "
        f"AND event_type IN ('impression', 'click', 'conversion') {user_slice}GROUP BY event_date, id / {_GROUP_IDS}"
    )

    frames: list[pl.DataFrame] = []
    pieces: list[bytes] = []
    size = 0
    with connection.cursor() as cursor:
        windows = _windows(cursor, first, end, slices)
        # PostgreSQL's parallel workers format the lines too (a partial string_agg per worker): formatting is most
        # of the read and one backend would otherwise do it alone. Session settings, reset right after.
        cursor.execute(_PARALLEL)
        try:
            for low, high in windows:
                # Binary results: the bytea arrives as the bytes themselves (no str decoded, then encoded again).
                # Django's cursors bind client-side, which cannot ask for binary results: a plain psycopg cursor on
                # the same connection (same transaction and search_path, already set by `connection.cursor()`).
                with psycopg.Cursor(cursor.cursor.connection) as raw:
                    raw.execute(sql, [low, high], binary=True)
                    for (piece,) in raw.fetchall():
                        pieces.append(piece)
                        size += len(piece)
                        if size >= _CHUNK:
                            frames.append(_parse(b"\n".join(pieces)))
                            pieces, size = [], 0
        finally:
            cursor.execute(_SERIAL)
    if pieces:
        frames.append(_parse(b"\n".join(pieces)))
    if not frames:
        return pl.DataFrame(schema=_EVENT_SCHEMA)
    return pl.concat(frames, rechunk=False)


def read_cost(*, start: dt.date, end: dt.date, lookback_days: int, group_by: str) -> pl.DataFrame:
    """key, cost, touches: media cost and count of impressions and clicks in [start, end] (every user), in SQL."""
    column = GROUP_COLUMNS[group_by]
    lo = dt.datetime.combine(start, dt.time(), tzinfo=dt.UTC)
    hi = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    # The same day partitions as `read_events` reads; the timestamp decides what is in the range (as in `build`).
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT coalesce({column}, ''), sum(cost_usd)::float8, count(*) FROM {EVENTS} "
            "WHERE event_date BETWEEN %s AND %s AND event_type IN ('impression', 'click') "
            "AND event_timestamp >= %s AND event_timestamp < %s GROUP BY 1",
            [start - dt.timedelta(days=lookback_days), end, lo, hi],
        )
        rows = cursor.fetchall()
    return pl.DataFrame(rows, schema=_COST_SCHEMA, orient="row")


@dataclass
class Paths:
    """Everything the credit models need, built once per request and shared by all six models."""

    touches: pl.DataFrame  # converting paths: conv, key, pos, n, age_days, value (ordered within each path)
    conversions: pl.DataFrame  # in-range conversions of known users: conv, value, n (0 = no touch)
    idle: pl.DataFrame  # non-converting paths: path, key (ordered within each path)
    no_user: pl.DataFrame  # in-range conversions without a user id: value
    cost: pl.DataFrame  # key, cost, touches: impressions and clicks in [start, end], every user
    last: int = 0  # the last conversion number used (the next slice's numbers continue after it)

    @property
    def attributed(self) -> pl.DataFrame:
        return self.conversions.filter(pl.col("n") > 0)


def _cost(events: pl.DataFrame, lo: int, hi: int) -> pl.DataFrame:
    """key, cost, touches from the events themselves (when they carry `cost`; the engine sums it in SQL)."""
    in_range = (pl.col("t") != CONVERSION) & (pl.col("ts") >= lo) & (pl.col("ts") < hi)
    return (
        events.lazy()
        .filter(in_range)
        .group_by("key")
        .agg(pl.col("cost").sum(), pl.len().cast(pl.UInt32).alias("touches"))
        .collect()
    )


def build(
    events: pl.DataFrame,
    *,
    start: dt.date,
    end: dt.date,
    lookback_days: int,
    cost: pl.DataFrame | None = None,
    bucket_rows: int | None = None,
    offset: int = 0,
) -> Paths:
    """Paths as the module docstring defines them (vectorised: no Python loop over users or paths).

    Users are independent, so the events are split into slices of users (about `bucket_rows` events each) and
    each slice is sorted and walked on its own: the sort stays in cache and memory stays flat; conversion
    numbers continue from one slice to the next, and start after `offset` (when the events are one slice of users
    read by `read_events(part=...)`, see `merge`). `cost` (key, cost, touches) comes from SQL when given.
    """
    epoch = dt.date(1970, 1, 1)
    lo = (start - epoch).days * US_PER_DAY
    hi = ((end - epoch).days + 1) * US_PER_DAY
    lookback = lookback_days * US_PER_DAY
    is_conv = pl.col("t") == CONVERSION
    in_range = (pl.col("ts") >= lo) & (pl.col("ts") < hi)
    if cost is None:
        cost = _cost(events, lo, hi)
    no_user = events.lazy().filter(is_conv & in_range & pl.col("user").is_null()).select("value").collect()
    columns = ("id", "user", "ts", "t", "key", "value")
    slices = max(1, -(-events.height // max(1, bucket_rows or BUCKET_ROWS)))
    # One slice at a time is filtered out of the events and walked, then freed: the events plus one slice's copy
    # are alive at once. (Partitioning every slice up front made a full second copy of the events: at 10M events
    # that copy was ~0.5 GB of the 1.7 GB peak, issue 17.) The modulo of a missing user id is null, so events
    # without a user id are in no slice.
    events = events.select(columns)
    touches, conversions, idle = [], [], []
    for index in range(slices):
        mine = pl.col("user").is_not_null() if slices == 1 else pl.col("user").to_physical() % slices == index
        part = events.filter(mine)
        walked = _walk(part, lo=lo, hi=hi, lookback=lookback, offset=offset)
        del part
        offset = walked[3]
        touches.append(walked[0])
        conversions.append(walked[1])
        idle.append(walked[2])
    del events
    return Paths(
        touches=pl.concat(touches),
        conversions=pl.concat(conversions),
        idle=pl.concat(idle),
        no_user=no_user,
        cost=cost,
        last=offset,
    )


def merge(slices: list[Paths]) -> Paths:
    """The paths of slices of users (each built with `offset` = the previous slice's `last`) as one; `cost` is the
    first slice's (it covers every user). Users are in one slice only, so nothing is counted twice."""
    return Paths(
        touches=pl.concat([p.touches for p in slices]),
        conversions=pl.concat([p.conversions for p in slices]),
        idle=pl.concat([p.idle for p in slices]),
        no_user=pl.concat([p.no_user for p in slices]),
        cost=slices[0].cost,
        last=slices[-1].last,
    )


def _walk(
    events: pl.DataFrame, *, lo: int, hi: int, lookback: int, offset: int
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, int]:
    """(touches, conversions, idle, last conversion number) of one slice of users (all with a user id).
    Conversion numbers start after `offset`."""
    is_conv = pl.col("t") == CONVERSION
    ordered = (
        events.lazy()
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
        .drop("order", "id")
        .with_columns((is_conv.cast(pl.UInt32).cum_sum() + offset).alias("cum"))  # conversion number (1-based)
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
    last = int(ordered.select(pl.col("cum").max()).item() or offset) if ordered.height else offset
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
    return touches, conversions, idle, last
