"""The scale-out runtime: NATS JetStream as the durable, partitioned event log.

Subjects are `p360.events.<partition>.<schema>`, the partition being crc32(user_id) mod
SEGMENTS_PARTITIONS, so all of one user's events land in one partition, in order. Each evaluator
process owns some partitions (`--worker i --workers N` owns p with p mod N == i) through one durable
pull consumer per partition (`p360-eval-p<p>`); restarting a process resumes where its consumers
left off, and a message is acknowledged only after its events are stored and evaluated, so a
killed evaluator loses nothing (JetStream redelivers after `ack_wait`) and doubles nothing (the
store is idempotent by event_id and the evaluator by membership state).

Tenant isolation: the schema travels in the subject, is checked against the message body and
against the organisations table, and the events are written and evaluated inside that schema only.

nats-py is asyncio; Django's ORM is sync. One background thread runs the event loop and the NATS
connection; sync code submits coroutines to it (`_call`), so ORM work never runs inside the loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
import zlib
from collections import defaultdict
from collections.abc import Coroutine, Sequence
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connection

from segments.events import ID_TABLE, Event

logger = logging.getLogger(__name__)
STREAM = "P360_EVENTS"
SUBJECT_PREFIX = "p360.events"


def partitions() -> int:
    return int(getattr(settings, "SEGMENTS_PARTITIONS", 8))


def partition_of(user_id: str) -> int:
    return zlib.crc32(user_id.encode()) % partitions()


class _Loop:
    """A private asyncio loop in a daemon thread with one NATS connection (lazily connected)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="nats-loop", daemon=True)
        self.thread.start()
        self.nc: Any = None
        self.js: Any = None
        self.stream_ready = False

    def call(self, coro: Coroutine[Any, Any, Any], timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def connect(self) -> Any:
        import nats

        if self.nc is None or self.nc.is_closed:
            self.nc = await nats.connect(settings.SEGMENTS_NATS_URL, max_reconnect_attempts=-1, connect_timeout=5)
            self.js = self.nc.jetstream()
            self.stream_ready = False
        if not self.stream_ready:
            await ensure_stream(self.js)
            self.stream_ready = True
        return self.js


_loop: _Loop | None = None
_loop_lock = threading.Lock()


def _runtime() -> _Loop:
    global _loop
    with _loop_lock:
        if _loop is None:
            _loop = _Loop()
        return _loop


def shutdown() -> None:
    """Close this process's NATS connection and stop its loop (tests, process exit)."""
    global _loop
    with _loop_lock:
        current, _loop = _loop, None
    if current is None:
        return
    if current.nc is not None and not current.nc.is_closed:
        try:
            current.call(current.nc.close(), timeout=5)
        except Exception:  # already gone: nothing to close
            logger.debug("closing NATS connection failed", exc_info=True)
    current.loop.call_soon_threadsafe(current.loop.stop)


async def ensure_stream(js: Any) -> None:
    from nats.js import api
    from nats.js.errors import NotFoundError

    try:
        await js.stream_info(STREAM)
    except NotFoundError:
        await js.add_stream(
            api.StreamConfig(
                name=STREAM,
                subjects=[f"{SUBJECT_PREFIX}.>"],
                storage=api.StorageType.FILE,
                retention=api.RetentionPolicy.LIMITS,
                max_age=float(getattr(settings, "SEGMENTS_NATS_MAX_AGE_S", 7 * 86400)),
                duplicate_window=120.0,
            )
        )


def _encode(event: Event) -> dict[str, Any]:
    return {
        "event_id": event.event_id,
        "user_id": event.user_id,
        "event_type": event.event_type,
        "timestamp": event.event_time.isoformat(),
        "attributes": event.attributes,
        "session_id": event.session_id,
        "device_id": event.device_id,
    }


def decode(raw: dict[str, Any]) -> Event:
    return Event(
        event_id=raw["event_id"],
        user_id=raw["user_id"],
        event_type=raw["event_type"],
        event_time=datetime.fromisoformat(raw["timestamp"]),
        attributes=raw.get("attributes") or {},
        session_id=raw.get("session_id"),
        device_id=raw.get("device_id"),
    )


def _known_ids(ids: list[str]) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT event_id FROM {ID_TABLE} WHERE event_id = ANY(%s)", [ids])
        return {row[0] for row in cursor.fetchall()}


def publish_events(events: Sequence[Event]) -> tuple[int, int]:
    """Publish validated events of the current org; returns (accepted, duplicates).

    Duplicates are ids already stored or repeated in the batch, and ids JetStream itself reports as
    duplicates (same message id inside its 2-minute window); late duplicates the evaluator's
    idempotent store drops.
    """
    schema = connection.schema_name  # type: ignore[attr-defined]
    known = _known_ids([e.event_id for e in events]) if events else set()
    fresh: list[Event] = []
    seen: set[str] = set()
    for event in events:
        if event.event_id in known or event.event_id in seen:
            continue
        seen.add(event.event_id)
        fresh.append(event)
    groups: dict[int, list[Event]] = defaultdict(list)
    for event in fresh:
        groups[partition_of(event.user_id)].append(event)
    runtime = _runtime()

    async def send() -> int:
        js = await runtime.connect()
        acks = []
        for partition, group in sorted(groups.items()):
            for start in range(0, len(group), 1000):
                chunk = group[start : start + 1000]
                body = json.dumps({"schema": schema, "events": [_encode(e) for e in chunk]}).encode()
                msg_id = hashlib.sha256((schema + "\n" + "\n".join(e.event_id for e in chunk)).encode()).hexdigest()
                acks.append(
                    (
                        len(chunk),
                        js.publish(f"{SUBJECT_PREFIX}.{partition}.{schema}", body, headers={"Nats-Msg-Id": msg_id}),
                    )
                )
        duplicate = 0
        for size, pending in acks:
            ack = await pending
            duplicate += size if ack.duplicate else 0
        return duplicate

    late_duplicates = runtime.call(send()) if fresh else 0
    accepted = len(fresh) - late_duplicates
    return accepted, len(events) - accepted


# --- The evaluator process -------------------------------------------------------------------------


def owned_partitions(worker: int, workers: int) -> list[int]:
    return [p for p in range(partitions()) if p % workers == worker]


def _org_events(subject: str, data: bytes) -> tuple[str, list[Event]]:
    """A message's schema (checked against its body and the organisations table) and its events."""
    from tenants.models import Organization

    schema = subject.split(".", 3)[3]
    payload = json.loads(data)
    if payload.get("schema") != schema:
        raise ValueError(f"message schema {payload.get('schema')!r} does not match its subject {subject!r}")
    if not Organization.objects.filter(schema_name=schema, is_active=True).exclude(schema_name="public").exists():
        raise LookupError(f"no active organisation with schema {schema!r}")
    return schema, [decode(raw) for raw in payload["events"]]


def handle_messages(messages: Sequence[tuple[str, bytes]]) -> int:
    """Store and evaluate messages of one org (one partition's fetch) as one batch inside its schema: one COPY,
    one evaluation for all of them. Returns the transitions made."""
    from django_tenants.utils import schema_context

    from p360.core.faults import fault_point
    from segments.services import store_and_evaluate

    schemas: set[str] = set()
    events: list[Event] = []
    for subject, data in messages:
        schema, mine = _org_events(subject, data)
        schemas.add(schema)
        events.extend(mine)
    if len(schemas) != 1:
        raise ValueError(f"one batch, one organisation: got {sorted(schemas)}")
    with schema_context(schemas.pop()):
        outcome = store_and_evaluate(events)
        fault_point("segments.jetstream.before_ack")
    return len(outcome.transitions)


def handle_message(subject: str, data: bytes) -> int:
    """Store and evaluate one message's events inside its org's schema; returns the transitions made."""
    return handle_messages([(subject, data)])


def run_evaluator(
    worker: int, workers: int, *, batch: int = 50, stop: threading.Event | None = None, idle_exit: float = 0
) -> int:
    """Consume the owned partitions until `stop` (or `idle_exit` seconds without messages); returns messages."""
    import time

    from nats.js import api

    runtime = _runtime()
    owned = owned_partitions(worker, workers)
    ack_wait = float(getattr(settings, "SEGMENTS_NATS_ACK_WAIT_S", 30))

    async def subscribe() -> list[Any]:
        js = await runtime.connect()
        subs = []
        for p in owned:
            config = api.ConsumerConfig(
                ack_policy=api.AckPolicy.EXPLICIT, ack_wait=ack_wait, max_deliver=-1, max_ack_pending=1000
            )
            subs.append(
                await js.pull_subscribe(
                    f"{SUBJECT_PREFIX}.{p}.>", durable=f"p360-eval-p{p}", stream=STREAM, config=config
                )
            )
        return subs

    async def fetch(sub: Any, timeout: float) -> list[Any]:
        from nats.errors import TimeoutError as NatsTimeout

        try:
            return list(await sub.fetch(batch, timeout=timeout))
        except (TimeoutError, NatsTimeout):
            return []

    def settle(msg: Any, outcome: str) -> None:
        if outcome == "ack":
            runtime.call(msg.ack_sync())
        elif outcome == "term":
            runtime.call(msg.term())
        else:
            runtime.call(msg.nak(delay=1))

    def one_by_one(messages: list[Any]) -> int:
        done = 0
        for msg in messages:
            try:
                handle_message(msg.subject, msg.data)
            except LookupError as exc:
                logger.error("dropping message on %s: %s", msg.subject, exc)
                settle(msg, "term")
                continue
            except Exception:
                logger.exception("evaluation failed on %s; it will be redelivered", msg.subject)
                settle(msg, "nak")
                continue
            settle(msg, "ack")
            done += 1
        return done

    subs = runtime.call(subscribe())
    handled = 0
    last_message = time.monotonic()
    while stop is None or not stop.is_set():
        got_any = False
        for sub in subs:
            messages = runtime.call(fetch(sub, 0.2 if len(subs) > 1 else 0.5))
            if not messages:
                continue
            got_any = True
            # One fetch of one partition, grouped by org: each group stored and evaluated as one batch, then
            # acknowledged; a group that fails is retried message by message (one bad message is nak'ed or
            # dropped alone, as before).
            groups: dict[str, list[Any]] = defaultdict(list)
            for msg in messages:
                groups[msg.subject].append(msg)
            for subject, group in groups.items():
                if len(group) == 1:
                    handled += one_by_one(group)
                    continue
                try:
                    handle_messages([(m.subject, m.data) for m in group])
                except Exception:
                    logger.exception("batch of %d on %s failed; handling them one by one", len(group), subject)
                    handled += one_by_one(group)
                    continue
                for msg in group:
                    settle(msg, "ack")
                handled += len(group)
            logger.info("evaluated %d message(s) (%d handled)", len(messages), handled)
        if got_any:
            last_message = time.monotonic()
        elif idle_exit and time.monotonic() - last_message > idle_exit:
            break
    return handled
