"""Events: validation (document 003's UserEvent), the day-partitioned table, COPY ingest, retention.

Why partitions by day: events are written in large batches, read by (user, type, time) inside a
window of at most a day, and dropped whole by retention; dropping a day's table is instant where
deleting a day's rows is not. Why a separate `segments_event_id` table: a unique index on a
partitioned table must include the partition key, so it could not say "this event_id, whatever its
timestamp, was seen before"; the id table can, and its `ON CONFLICT DO NOTHING` makes re-sending a
batch harmless.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl
from django.db import IntegrityError, connection, transaction

try:  # optional speed-up (see p360.core.api_parsers.loads); the standard library is the reference
    import orjson
except ImportError:  # pragma: no cover
    orjson = None  # type: ignore[assignment]

from segments.models import BUILTIN_EVENT_TYPES, EventType

TABLE = "segments_event"
ID_TABLE = "segments_event_id"
MAX_BATCH = 10_000
FUTURE_SKEW = timedelta(minutes=5)  # clocks differ; an event further ahead than this is refused
MAX_ID = 200
MAX_ATTRIBUTES_BYTES = 16_384

# camelCase names of document 003 -> ours
ALIASES = {
    "eventId": "event_id",
    "userId": "user_id",
    "eventType": "event_type",
    "sessionId": "session_id",
    "deviceId": "device_id",
}
KNOWN_FIELDS = {"event_id", "user_id", "event_type", "timestamp", "attributes", "session_id", "device_id"}
ALIAS_KEYS = frozenset(ALIASES)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Event:
    event_id: str
    user_id: str
    event_type: str
    event_time: datetime
    attributes: dict[str, Any]
    session_id: str | None = None
    device_id: str | None = None
    attributes_json: str = ""  # encoded once by validation, reused by COPY


@dataclass
class Rejection:
    index: int
    code: str
    message: str
    field: str = ""

    def as_dict(self) -> dict[str, Any]:
        details = {"field": self.field} if self.field else {}
        return {"index": self.index, "error": {"code": self.code, "message": self.message, "details": details}}


@dataclass
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[Rejection] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": [r.as_dict() for r in self.rejected],
        }


class EventError(ValueError):
    def __init__(self, message: str, field: str = "", code: str = "invalid_event") -> None:
        super().__init__(message)
        self.field = field
        self.code = code


def allowed_event_types() -> set[str]:
    return set(BUILTIN_EVENT_TYPES) | set(EventType.objects.values_list("name", flat=True))


def _text(raw: dict[str, Any], name: str, *, required: bool) -> str | None:
    value = raw.get(name)
    if value is None or value == "":
        if required:
            raise EventError(f"{name} is required", name)
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise EventError(f"{name} must be a string", name)
    text = str(value).strip()
    if not text or len(text) > MAX_ID or "\x00" in text or not _is_utf8(text):
        raise EventError(f"{name} must be 1-{MAX_ID} characters of valid text without NUL bytes", name)
    return text


def _is_utf8(text: str) -> bool:
    """False for lone surrogates (JSON can carry them; PostgreSQL cannot store them)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_timestamp(value: Any) -> datetime:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise EventError("timestamp must be an ISO-8601 string", "timestamp")
    if isinstance(value, int | float):  # epoch milliseconds, as JavaScript clients send them
        if not math.isfinite(value) or not 0 <= value < 1e14:
            raise EventError("timestamp in epoch milliseconds is out of range", "timestamp")
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise EventError(f"timestamp {value[:40]!r} is not ISO-8601", "timestamp") from exc
    if parsed.year < 2000 or parsed.year > 2100:
        raise EventError("timestamp is outside 2000-2100", "timestamp")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)  # a naive timestamp is UTC


def validate(raw: Any, *, types: set[str], now: datetime, oldest: datetime) -> Event:
    """One UserEvent, or EventError saying which field is wrong."""
    if not isinstance(raw, dict):
        raise EventError("an event must be a JSON object")
    data: dict[str, Any] = {ALIASES.get(str(key), str(key)): value for key, value in raw.items()}
    event_id = _text(data, "event_id", required=True)
    user_id = _text(data, "user_id", required=True)
    event_type = _text(data, "event_type", required=True)
    assert event_id and user_id and event_type
    if event_type not in types:
        raise EventError(
            f"event_type {event_type!r} is not one of {', '.join(sorted(types))}", "event_type", "unknown_event_type"
        )
    if "timestamp" not in data:
        raise EventError("timestamp is required", "timestamp")
    event_time = parse_timestamp(data["timestamp"])
    if event_time > now + FUTURE_SKEW:
        raise EventError("timestamp is more than 5 minutes in the future", "timestamp")
    if event_time < oldest:
        raise EventError("timestamp is older than the retention period", "timestamp")
    attributes = data.get("attributes") or {}
    if not isinstance(attributes, dict):
        raise EventError("attributes must be an object", "attributes")
    try:
        encoded = json.dumps(attributes, allow_nan=False, ensure_ascii=False)
    except ValueError as exc:  # 1e400 parses as infinity, which JSON (and jsonb) cannot hold
        raise EventError("attributes hold a number out of range", "attributes") from exc
    if len(encoded) > MAX_ATTRIBUTES_BYTES or "\\u0000" in encoded or not _is_utf8(encoded):
        raise EventError(
            f"attributes must be at most {MAX_ATTRIBUTES_BYTES} bytes of valid JSON text without NUL", "attributes"
        )
    return Event(
        event_id=event_id,
        user_id=user_id,
        event_type=event_type,
        event_time=event_time,
        attributes=attributes,
        session_id=_text(data, "session_id", required=False),
        device_id=_text(data, "device_id", required=False),
        attributes_json=encoded,
    )


def validate_batch(
    raws: Sequence[Any], *, types: set[str], now: datetime, retention_days: int
) -> tuple[list[Event], list[Rejection]]:
    oldest = now - timedelta(days=retention_days)
    events: list[Event] = []
    rejected: list[Rejection] = []
    for index, raw in enumerate(raws):
        try:
            events.append(validate(raw, types=types, now=now, oldest=oldest))
        except EventError as exc:
            rejected.append(Rejection(index, exc.code, str(exc), exc.field))
    return events, rejected


# --- Partitions ----------------------------------------------------------------------------------


def partition_name(day: date) -> str:
    return f"{TABLE}_p{day:%Y%m%d}"


def ensure_partitions(days: Iterable[date]) -> list[str]:
    """Create the day partitions that do not exist yet (idempotent; safe with concurrent writers).

    One catalogue lookup per batch (no process cache: a rolled-back transaction takes its
    partitions with it, and a cache would not know). Returns the partitions it created.
    """
    wanted = sorted(set(days))
    if not wanted:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT name FROM unnest(%s::text[]) AS name WHERE to_regclass(name) IS NULL",
            [[partition_name(day) for day in wanted]],
        )
        missing = {row[0] for row in cursor.fetchall()}
        if not missing:
            return []
        # Concurrent CREATE ... IF NOT EXISTS can still collide in the catalogue: serialise per schema.
        cursor.execute("SELECT pg_advisory_xact_lock(13013, hashtext(current_schema()))")
        for day in wanted:
            if partition_name(day) not in missing:
                continue
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {partition_name(day)} PARTITION OF {TABLE} FOR VALUES FROM (%s) TO (%s)",
                [start, start + timedelta(days=1)],
            )
    return sorted(missing)


def existing_partitions() -> list[tuple[str, date]]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace n ON n.oid = p.relnamespace "
            "WHERE p.relname = %s AND n.nspname = current_schema()",
            [TABLE],
        )
        names = [row[0] for row in cursor.fetchall()]
    out = []
    for name in names:
        suffix = name.rsplit("_p", 1)[-1]
        out.append((name, datetime.strptime(suffix, "%Y%m%d").date()))
    return sorted(out, key=lambda item: item[1])


# --- Vectorised validation ----------------------------------------------------------------------
#
# The reference rules are `validate` above. A batch is checked column by column; an event whose fields all
# take the common shape (an object without camelCase names, string ids already trimmed, an ISO-8601 string
# timestamp, an object or no attributes) is decided here, and every other event is handed to `validate`,
# which accepts it or words its rejection. Both therefore agree on every input (tests/segments/
# test_ingest_columns.py checks it with hypothesis).

BATCH_SCHEMA: dict[str, Any] = {
    "seq": pl.Int32,
    "event_id": pl.String,
    "user_id": pl.String,
    "event_type": pl.String,
    "event_us": pl.Int64,  # event time, microseconds since the epoch (UTC)
    "attributes": pl.String,  # JSON text
    "session_id": pl.String,
    "device_id": pl.String,
}
ONE_US = timedelta(microseconds=1)
_NOTHING: dict[str, Any] = {}
FAST_COLUMNS = True  # False: session 12's column checks (bench.profile_segments' A/B)


def micros(moment: datetime) -> int:
    return (moment - EPOCH) // ONE_US


FIRST_US = micros(datetime(2000, 1, 1, tzinfo=UTC))  # a UTC timestamp's year is its written year


@dataclass
class Batch:
    """Valid events as columns (a polars frame in request order; `seq` is the event's index in the request)."""

    frame: pl.DataFrame

    def __len__(self) -> int:
        return self.frame.height

    @classmethod
    def of(cls, events: Sequence[Event]) -> Batch:
        return cls(
            pl.DataFrame(
                {
                    "seq": range(len(events)),
                    "event_id": [e.event_id for e in events],
                    "user_id": [e.user_id for e in events],
                    "event_type": [e.event_type for e in events],
                    "event_us": [micros(e.event_time) for e in events],
                    "attributes": [e.attributes_json or json.dumps(e.attributes) for e in events],
                    "session_id": [e.session_id for e in events],
                    "device_id": [e.device_id for e in events],
                },
                schema=BATCH_SCHEMA,
            )
        )

    def events(self) -> list[Event]:
        return [
            Event(
                event_id=row["event_id"],
                user_id=row["user_id"],
                event_type=row["event_type"],
                event_time=EPOCH + timedelta(microseconds=row["event_us"]),
                attributes=json.loads(row["attributes"]),
                session_id=row["session_id"],
                device_id=row["device_id"],
                attributes_json=row["attributes"],
            )
            for row in self.frame.iter_rows(named=True)
        ]

    def days(self) -> set[date]:
        day_us = 86_400 * 1_000_000
        return {(EPOCH + timedelta(days=d)).date() for d in (self.frame["event_us"] // day_us).unique().to_list()}


# A text the fast path takes as it is: printable ASCII with no space at either end (nothing for strip() to remove,
# no NUL), checked with the length on the whole column at once. Anything else (another type, non-ASCII, a control
# character) leaves the fast path for `validate`, the reference, to decide.
PLAIN_TEXT = r"^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$"


def _text_column(values: list[Any], *, optional: bool) -> tuple[pl.Series, pl.Series]:
    """One field as a String column, and per event whether it stays on the fast path (absent is fine when
    `optional`). A column holding anything but strings (a number, a list, an object, a lone surrogate) is built
    from its ASCII strings only; the other values send their events to `validate`."""
    try:
        column = pl.Series(values, dtype=pl.String, strict=True)
        odd = None
    except (TypeError, ValueError):  # ValueError: UnicodeEncodeError, a lone surrogate
        plain = [type(v) is str and v.isascii() for v in values]
        column = pl.Series([v if p else None for v, p in zip(values, plain, strict=True)], dtype=pl.String)
        odd = pl.Series([not p and v is not None for v, p in zip(values, plain, strict=True)], dtype=pl.Boolean)
    fine = (column.str.contains(PLAIN_TEXT) & (column.str.len_bytes() <= MAX_ID)).fill_null(optional)
    return column, fine if odd is None else fine & ~odd


# A UTC timestamp numpy parses exactly as datetime.fromisoformat does (the shape is checked first; a day the
# calendar lacks, such as 30 February, makes numpy refuse the whole column, and the loop below decides).
ISO_UTC = (
    r"^2\d{3}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d{1,6})?(?:\+00:00|Z)$"
)
LAST_US = micros(datetime(2101, 1, 1, tzinfo=UTC))  # events must be inside 2000-2100


def _event_micros_column(stamps: list[Any], ok: list[bool]) -> pl.Series:
    """`_event_micros` as an Int64 column: strings of the common UTC shape parsed by numpy at once, the others
    (other offsets, naive) by the loop."""
    n = len(stamps)
    try:
        column = pl.Series(stamps, dtype=pl.String, strict=True)
    except (TypeError, ValueError):
        return pl.Series(_event_micros(stamps, ok), dtype=pl.Int64)
    utc = (column.str.contains(ISO_UTC).fill_null(False) & pl.Series(ok, dtype=pl.Boolean)).to_numpy()
    picked = np.flatnonzero(utc)
    values = np.zeros(n, dtype=np.int64)
    known = np.zeros(n, dtype=bool)
    if len(picked):
        texts = column.filter(pl.Series(utc)).str.strip_suffix("+00:00").str.strip_suffix("Z").to_numpy()
        try:
            parsed = texts.astype("datetime64[us]").astype(np.int64)
        except ValueError:  # a day the calendar lacks: the loop words nothing here, validate() rejects it
            parsed = None
        if parsed is not None:
            inside = (parsed >= FIRST_US) & (parsed < LAST_US)
            values[picked] = parsed
            known[picked[inside]] = True
            utc[picked[~inside]] = False  # out of 2000-2100: validate() words it
        else:
            utc[:] = False
    rest = np.flatnonzero(~utc & np.asarray(ok, dtype=bool)).tolist()
    if rest:
        for index, us in zip(rest, _event_micros([stamps[i] for i in rest], [True] * len(rest)), strict=True):
            if us is not None:
                values[index] = us
                known[index] = True
    return pl.Series(values, dtype=pl.Int64).scatter(np.flatnonzero(~known), None)


def _event_micros(stamps: list[Any], ok: list[bool]) -> list[int | None]:
    """ISO-8601 strings inside 2000-2100 -> microseconds (naive is UTC); None sends the event to `validate`."""
    out: list[int | None] = []
    parse = datetime.fromisoformat
    for f, value in zip(ok, stamps, strict=True):
        if not f or type(value) is not str:
            out.append(None)
            continue
        try:
            moment = parse(value)
        except ValueError:
            out.append(None)
            continue
        if not 2000 <= moment.year <= 2100:
            out.append(None)
            continue
        out.append(micros(moment if moment.tzinfo else moment.replace(tzinfo=UTC)))
    return out


def _attribute_texts(values: list[Any], ok: list[bool], *, strict_json: bool, nul: bool) -> list[str | None]:
    """Each event's attributes as JSON text, or None for `validate` to decide (odd shapes, big or NUL-bearing).

    With `strict_json` (orjson decoded the body: no NaN/infinity, no lone surrogate, no >64-bit integer) orjson
    encodes; its compact text is never longer than half of the standard library's, so a text of at most half
    the limit is within it, and a longer one is measured by `validate` exactly.
    """
    out: list[str | None] = []
    fast = strict_json and orjson is not None
    for f, value in zip(ok, values, strict=True):
        if not f:
            out.append(None)
        elif value is None or (type(value) is dict and not value):
            out.append("{}")
        elif type(value) is not dict:
            out.append(None)
        elif fast:
            try:
                encoded = orjson.dumps(value)
            except TypeError:  # orjson.JSONEncodeError: deeper than orjson encodes
                out.append(None)
                continue
            if 2 * len(encoded) > MAX_ATTRIBUTES_BYTES or (nul and b"\\u0000" in encoded):
                out.append(None)
            else:
                out.append(encoded.decode())
        else:
            try:
                text = json.dumps(value, allow_nan=False, ensure_ascii=False)
            except (ValueError, TypeError, RecursionError):
                out.append(None)
                continue
            if len(text) > MAX_ATTRIBUTES_BYTES or "\\u0000" in text or not _is_utf8(text):
                out.append(None)
            else:
                out.append(text)
    return out


def validate_columns(
    raws: Sequence[Any],
    *,
    types: set[str],
    now: datetime,
    retention_days: int,
    strict_json: bool = False,
    may_hold_nul: bool = True,
) -> tuple[Batch, list[Rejection]]:
    """`validate_batch` column by column: the valid events as a Batch, the rejected ones with index and reason.

    `strict_json` and `may_hold_nul` are what the JSON parser learnt about the body (p360.core.api_parsers);
    the defaults assume nothing.
    """
    oldest = now - timedelta(days=retention_days)
    rows: Sequence[Any]
    if FAST_COLUMNS and set(map(type, raws)) == {dict} and ALIAS_KEYS.isdisjoint(set().union(*raws)):
        rows = raws  # every event an object, none with a camelCase name: no per-event check
    else:
        rows = [r if type(r) is dict and ALIAS_KEYS.isdisjoint(r) else _NOTHING for r in raws]
    # each field read once (10,000 events: a dict lookup per field and event is a large part of this function's time)
    event_ids, id_fine = _text_column([r.get("event_id") for r in rows], optional=False)
    user_ids, user_fine = _text_column([r.get("user_id") for r in rows], optional=False)
    event_types, type_fine = _text_column([r.get("event_type") for r in rows], optional=False)
    session_ids, session_fine = _text_column([r.get("session_id") for r in rows], optional=True)
    device_ids, device_fine = _text_column([r.get("device_id") for r in rows], optional=True)
    fine = (
        pl.Series([r is not _NOTHING for r in rows], dtype=pl.Boolean)
        & id_fine
        & user_fine
        & type_fine
        & event_types.is_in(sorted(types)).fill_null(False)
        & session_fine
        & device_fine
    )
    ok = fine.to_list()
    stamps: Any
    if FAST_COLUMNS:
        stamps = _event_micros_column([r.get("timestamp") for r in rows], ok)
    else:
        stamps = _event_micros([r.get("timestamp") for r in rows], ok)
    texts = _attribute_texts([r.get("attributes") for r in rows], ok, strict_json=strict_json, nul=may_hold_nul)
    # Fields of events off the fast path are in the frame too (strings or null): the filter below drops those rows.
    frame = pl.DataFrame(
        {
            "seq": range(len(rows)),
            "event_id": event_ids,
            "user_id": user_ids,
            "event_type": event_types,
            "event_us": stamps,
            "attributes": texts,
            "session_id": session_ids,
            "device_id": device_ids,
        },
        schema=BATCH_SCHEMA,
    )
    # Vectorised: the time window (future skew, retention) and the fields the loops above left empty.
    fast = (
        fine
        & frame.select(
            pl.col("event_us").is_not_null()
            & pl.col("attributes").is_not_null()
            & (pl.col("event_us") <= micros(now + FUTURE_SKEW))
            & (pl.col("event_us") >= micros(oldest))
        ).to_series()
    )
    good = frame.filter(fast)
    rejected: list[Rejection] = []
    slow_events: list[tuple[int, Event]] = []
    for index in (~fast).arg_true().to_list():
        try:
            slow_events.append((index, validate(raws[index], types=types, now=now, oldest=oldest)))
        except EventError as exc:
            rejected.append(Rejection(index, exc.code, str(exc), exc.field))
    if slow_events:
        extra = Batch.of([event for _, event in slow_events]).frame.with_columns(
            pl.Series("seq", [index for index, _ in slow_events], dtype=pl.Int32)
        )
        good = pl.concat([good, extra]).sort("seq")
    return Batch(good), rejected


# --- Writing -------------------------------------------------------------------------------------

STAGE_COLUMNS = "seq, event_id, user_id, event_type, event_us, attributes, session_id, device_id"
PENDING_TABLE = "segments_pendingbatch"

# Per connection: the staging table empties itself on commit (and explicitly, for callers inside an outer
# transaction).
STAGE_TABLE = """
CREATE TEMP TABLE IF NOT EXISTS segments_ingest_stage (seq int, event_id text, user_id text, event_type text,
    event_us bigint, attributes text, session_id text, device_id text) ON COMMIT DELETE ROWS
"""

# One statement per batch, after the COPY into staging (the batch is already unique by event_id: polars kept
# each id's first occurrence). The id table decides what is new (an id seen in an earlier batch loses); only
# the new events reach the day partitions; the evaluator's queue gets one row (the batch as arrays, in request
# order) in the same transaction. `{queued}` is the events the evaluator must look at: the new ones, or every
# event of the batch for a redelivered JetStream message (stored before, maybe not evaluated). `xact` is this
# transaction when every queued event is new here (nothing read before can have counted them: the evaluator adds
# them to its window states); NULL when some were stored before (maybe counted already: their windows are re-read).
STORE_SQL = f"""
WITH fresh AS (
    INSERT INTO {ID_TABLE} (event_id, event_time)
    SELECT event_id, timestamptz 'epoch' + event_us * interval '1 microsecond' FROM pg_temp.segments_ingest_stage
    ON CONFLICT DO NOTHING
    RETURNING event_id
), stored AS (
    INSERT INTO {TABLE} (event_id, user_id, event_type, event_time, attributes, session_id, device_id)
    SELECT s.event_id, s.user_id, s.event_type, timestamptz 'epoch' + s.event_us * interval '1 microsecond',
           s.attributes::jsonb, s.session_id, s.device_id
    FROM pg_temp.segments_ingest_stage s JOIN fresh USING (event_id)
    RETURNING event_id, attributes
), queued AS (
    INSERT INTO {PENDING_TABLE} (created_at, size, xact, user_ids, event_types, event_ids, event_times, attributes)
    SELECT %(now)s, count(*), CASE WHEN count(*) = (SELECT count(*) FROM stored) THEN pg_current_xact_id() END,
           array_agg(s.user_id ORDER BY s.seq), array_agg(s.event_type ORDER BY s.seq),
           array_agg(s.event_id ORDER BY s.seq),
           array_agg(timestamptz 'epoch' + s.event_us * interval '1 microsecond' ORDER BY s.seq),
           array_agg({{attributes}} ORDER BY s.seq)
    FROM {{queued}}
    WHERE %(enqueue)s
    HAVING count(*) > 0
    RETURNING id
)
SELECT (SELECT count(*) FROM stored), (SELECT id FROM queued)
"""
# The same for a batch of new ids (nearly always), flat: every staged event is new (else the plain id insert raises
# a unique violation and the batch goes through STORE_SQL with the conflict clause), so nothing joins the id table's
# or the events table's RETURNING back to the stage. The stage is read once (its attributes parsed to jsonb once)
# into a CTE that the three inserts share; `xact` is this transaction. ~18 % less PostgreSQL CPU than STORE_SQL on a
# 10,000-event batch (docs/segments.md, session 10).
FRESH_STORE_SQL = f"""
WITH staged AS MATERIALIZED (
    SELECT seq, event_id, user_id, event_type, timestamptz 'epoch' + event_us * interval '1 microsecond' AS event_time,
           attributes::jsonb AS attributes, session_id, device_id
    FROM pg_temp.segments_ingest_stage
), fresh AS (
    INSERT INTO {ID_TABLE} (event_id, event_time) SELECT event_id, event_time FROM staged
), stored AS (
    INSERT INTO {TABLE} (event_id, user_id, event_type, event_time, attributes, session_id, device_id)
    SELECT event_id, user_id, event_type, event_time, attributes, session_id, device_id FROM staged
), queued AS (
    INSERT INTO {PENDING_TABLE} (created_at, size, xact, user_ids, event_types, event_ids, event_times, attributes)
    SELECT %(now)s, count(*), pg_current_xact_id(), array_agg(user_id ORDER BY seq),
           array_agg(event_type ORDER BY seq), array_agg(event_id ORDER BY seq), array_agg(event_time ORDER BY seq),
           array_agg(attributes ORDER BY seq)
    FROM staged
    WHERE %(enqueue)s
    HAVING count(*) > 0
    RETURNING id
)
SELECT (SELECT id FROM queued)
"""
# The id table's insert: `ON CONFLICT DO NOTHING` costs a speculative insertion per row (a third WAL record and a
# conflict check before each index insertion: about a third of the statement's CPU). A batch of new ids (nearly
# always) goes in with a plain INSERT inside a savepoint; a unique violation (an id seen before, or a concurrent
# batch carrying the same id) rolls the savepoint back and the batch is stored again with the conflict clause.
FAST_STORE = True  # False: always the conflict clause (bench.profile_segments' A/B of the old path)
QUEUE_FRESH = "pg_temp.segments_ingest_stage s JOIN stored USING (event_id)"
QUEUE_ALL = "pg_temp.segments_ingest_stage s"
# The queued events' attributes, as the events table holds them (jsonb, parsed once by the insert above): the
# evaluator adds new events to a window state from them, never reading the events table.
QUEUE_FRESH_ATTRIBUTES = "stored.attributes"
QUEUE_ALL_ATTRIBUTES = "s.attributes::jsonb"


@dataclass(frozen=True, slots=True)
class Stored:
    fresh: int  # events new to the store
    pending_id: int | None  # the evaluator's queue row (None: nothing to evaluate, or not enqueued)


def store_batch(batch: Batch, *, now: datetime, enqueue: bool = True, touch_all: bool = False) -> Stored:
    """One COPY into the staging table and one statement into the id table, the day partitions and the
    evaluator's queue (segments_pendingbatch). Must run inside a transaction: the events and their queue row
    commit together, so an accepted event is always evaluated, by the request or by the evaluator loop.

    `enqueue=False` stores without evaluating (a historical bulk load); `touch_all` queues every event of the
    batch, not only the new ones (a redelivered JetStream message).
    """
    if not len(batch):
        return Stored(0, None)
    # The first occurrence of an id in the batch wins (polars, in request order: no sort in PostgreSQL). A batch
    # of distinct ids (nearly always) is taken as it is: counting distinct ids costs a tenth of `unique`.
    frame = batch.frame
    if not FAST_COLUMNS or frame.get_column("event_id").n_unique() != frame.height:
        frame = frame.unique(subset="event_id", keep="first", maintain_order=True)
    with connection.cursor() as cursor:
        cursor.execute(f"{STAGE_TABLE}; TRUNCATE pg_temp.segments_ingest_stage")  # one round trip
        created = ensure_partitions(batch.days())
        with cursor.copy(f"COPY pg_temp.segments_ingest_stage ({STAGE_COLUMNS}) FROM STDIN (FORMAT csv)") as copy:  # type: ignore[attr-defined]
            copy.write(frame.select(STAGE_COLUMNS.split(", ")).write_csv(include_header=False))
        fresh, pending_id = _store_staged(cursor, now=now, enqueue=enqueue, touch_all=touch_all, size=frame.height)
        if not enqueue and fresh:
            # Stored without evaluation: these users' window states no longer hold every event of their windows,
            # so their next evaluation re-reads the windows (segments.evaluator, incremental state).
            cursor.execute(
                "UPDATE segments_windowstate w SET snapshot = '' FROM (SELECT DISTINCT user_id "
                "FROM pg_temp.segments_ingest_stage) s WHERE w.user_id = s.user_id AND w.snapshot <> ''"
            )
        for name in created:  # statistics at once: without them the evaluator's lookups would scan the new day
            cursor.execute(f"ANALYZE {name}")
    return Stored(int(fresh), pending_id)


def _store_staged(cursor: Any, *, now: datetime, enqueue: bool, touch_all: bool, size: int) -> tuple[int, int | None]:
    """The staged batch (`size` events, unique by id) into the store: FRESH_STORE_SQL when every id is new, else
    (or for a redelivered JetStream message, which usually repeats ids) STORE_SQL with the conflict clause.
    Returns (events stored, queue row id)."""
    params = {"now": now, "enqueue": enqueue}
    if FAST_STORE and not touch_all:
        try:
            with transaction.atomic():  # a savepoint: the staged rows and the partitions created stay
                cursor.execute(FRESH_STORE_SQL, params)
                (pending_id,) = cursor.fetchone()
                return size, pending_id  # a plain insert stores every row or raises
        except IntegrityError:
            pass  # an id seen before: the savepoint is gone, nothing of this statement stayed
    # The staging table has no statistics: the planner would sort both sides of each event_id join (text sorts, most
    # of the statement's CPU after the inserts themselves); hashing 10,000 ids takes a millisecond.
    cursor.execute("SET LOCAL enable_mergejoin = off")
    cursor.execute(
        STORE_SQL.format(
            queued=QUEUE_ALL if touch_all else QUEUE_FRESH,
            attributes=QUEUE_ALL_ATTRIBUTES if touch_all else QUEUE_FRESH_ATTRIBUTES,
        ),
        params,
    )
    fresh, pending_id = cursor.fetchone()
    cursor.execute("SET LOCAL enable_mergejoin = DEFAULT")
    return int(fresh), pending_id


def drop_partitions_before(cutoff: date) -> list[str]:
    """Retention: drop whole day partitions older than `cutoff`, and forget their event ids."""
    dropped = []
    with connection.cursor() as cursor:
        for name, day in existing_partitions():
            if day < cutoff:
                cursor.execute(f"DROP TABLE {name}")
                dropped.append(name)
        cursor.execute(
            f"DELETE FROM {ID_TABLE} WHERE event_time < %s",
            [datetime(cutoff.year, cutoff.month, cutoff.day, tzinfo=UTC)],
        )
    return dropped
