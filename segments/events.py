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

from django.db import connection

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
    new_events: list[Event] = field(default_factory=list)

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


def ensure_partitions(days: Iterable[date]) -> None:
    """Create the day partitions that do not exist yet (idempotent; safe with concurrent writers).

    One catalogue lookup per batch (no process cache: a rolled-back transaction takes its
    partitions with it, and a cache would not know).
    """
    wanted = sorted(set(days))
    if not wanted:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT name FROM unnest(%s::text[]) AS name WHERE to_regclass(name) IS NULL",
            [[partition_name(day) for day in wanted]],
        )
        missing = {row[0] for row in cursor.fetchall()}
        if not missing:
            return
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


# --- Writing -------------------------------------------------------------------------------------

STAGE_COLUMNS = "seq, event_id, user_id, event_type, event_time, attributes, session_id, device_id"


def insert_events(events: Sequence[Event]) -> list[Event]:
    """COPY the events into a staging table, then keep the ones whose event_id is new; returns those.

    Must run inside a transaction (the staging table empties itself on commit).
    """
    if not events:
        return []
    ensure_partitions({event.event_time.astimezone(UTC).date() for event in events})
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE IF NOT EXISTS segments_stage (seq int, event_id text, user_id text, event_type text, "
            "event_time timestamptz, attributes jsonb, session_id text, device_id text) ON COMMIT DELETE ROWS"
        )
        with cursor.copy(f"COPY segments_stage ({STAGE_COLUMNS}) FROM STDIN") as copy:  # type: ignore[attr-defined]
            for seq, event in enumerate(events):
                copy.write_row(
                    (
                        seq,
                        event.event_id,
                        event.user_id,
                        event.event_type,
                        event.event_time,
                        event.attributes_json or json.dumps(event.attributes),
                        event.session_id,
                        event.device_id,
                    )
                )
        # The first occurrence of an id in the batch wins; an id seen in an earlier batch loses.
        cursor.execute(
            f"""
            WITH firsts AS (
                SELECT DISTINCT ON (event_id) * FROM segments_stage ORDER BY event_id, seq
            ), fresh AS (
                INSERT INTO {ID_TABLE} (event_id, event_time)
                SELECT event_id, event_time FROM firsts
                ON CONFLICT DO NOTHING
                RETURNING event_id
            )
            INSERT INTO {TABLE} (event_id, user_id, event_type, event_time, attributes, session_id, device_id)
            SELECT f.event_id, f.user_id, f.event_type, f.event_time, f.attributes, f.session_id, f.device_id
            FROM firsts f JOIN fresh USING (event_id)
            RETURNING event_id
            """
        )
        fresh_ids = {row[0] for row in cursor.fetchall()}
        cursor.execute("TRUNCATE segments_stage")
    seen: set[str] = set()
    fresh: list[Event] = []
    for event in events:
        if event.event_id in fresh_ids and event.event_id not in seen:
            seen.add(event.event_id)
            fresh.append(event)
    return fresh


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
