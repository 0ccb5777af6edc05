"""The incremental evaluator: one code path for both runtimes (embedded and JetStream).

For each (segment, user) pair an event or a timer touches, the aggregate of the user's events of
the rule's type with event time in (now - window, now] is computed, compared with the rule and with the
current membership, and the window state written, in one set-based SQL statement per chunk of pairs
(the events table, indexed by (user_id, event_type, event_time), is the window's contents; the pairs sit
in a temporary table, never shipped as arrays). A claim of queued batches goes window-first instead
(EVALUATE_WINDOWS_SQL): its touched windows straight from its events, each judged for every rule reading it. Only the differences come back to Python. A difference is a transition: written to
the current membership, to the append-only ledger (`Transition`) and, for campaigns listening, to
the send outbox, in the same transaction.

The window state row per (user, event type, window, property) keeps the window's aggregates (count, exact sum,
min, max) and `due_at`, the next instant they change with no new event (the oldest counted event leaving the
window, or a slightly-future event arriving in it). It is shared by every rule reading that window, whatever its
attribute or threshold: a batch computes and writes it once, then judges each reader. The timer job evaluates only
the windows whose `due_at` has passed, for every active rule that reads them.

Re-evaluating a pair is idempotent: the result depends only on the stored events and `now`, and a
transition is written only when the rule's result differs from the stored membership. Per-user
advisory locks (by bucket) serialise concurrent evaluators of one user, so redelivered JetStream
messages, concurrent timers and concurrent ingests never double an entry or exit.
"""

from __future__ import annotations

import json
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from typing import Any

from django.db import connection, transaction

try:  # optional speed-up (as in segments.events); the standard library encodes the same rows otherwise
    import orjson
except ImportError:  # pragma: no cover
    orjson = None  # type: ignore[assignment]
from django.utils import timezone

from segments import audience_refresh
from segments import rules as rules_mod
from segments.events import FUTURE_SKEW, PENDING_TABLE
from segments.models import Transition

LOCK_NAMESPACE = 13014
LOCK_BUCKETS = 1024  # users are serialised by bucket (see bucket())
CHUNK_PAIRS = 20_000
BUCKET = "(hashtext(user_id) & 1023)"  # chunks a batch (sizing only; locks use bucket())
PAIRS = "pg_temp.segments_eval_pairs"
TOUCHED = "pg_temp.segments_touched"
QUEUE_CHANNEL = "p360_segments_queue"  # NOTIFY when a batch is queued for the loop (segments_timers LISTENs)
DRAIN_BATCHES = 8  # queued batches one evaluation takes together (their (user, type) pairs evaluated once)
# Commit a claim per chunk of user buckets of about PENDING_CHUNK_PAIRS pairs (see evaluate_pending). Off: measured
# on session 10's quiet machine, the whole bench costs 637 ms of CPU per 10K events with it against 554 without, and
# the max-rate entry latency p95 was 3.41 s against 3.12 s (each chunk's re-lock, progress update and commit cost
# ~35 ms); kept as a tested option.
CHUNK_COMMITS = False
PENDING_CHUNK_PAIRS = 10_000
# A claim's windows built straight from its events (EVALUATE_WINDOWS_SQL), not through (segment, user) pair rows
# (TOUCHED_PAIRS_SQL + EVALUATE_TOUCHED_SQL): session 12. The flag keeps the previous path for the profile's A/B.
WINDOW_FIRST = True
# The window state written from a narrow input (no snapshot text carried; the statement's snapshot computed once),
# and a state brought forward whose aggregates and due_at did not change not written at all (session 12, step 2).
NARROW_WRITE = True
# How far behind a user's latest event last_active_at may stay (PROFILES_SQL): session 12, step 2. PROFILE_SLACK off
# writes every forward move (the profile's A/B).
LAST_ACTIVE_SLACK = timedelta(minutes=1)
PROFILE_SLACK = True
# Session 13: the window state written (and an emptied one dropped) by the row's address read with it (`s_ctid`),
# not by a second probe of the unique index per written row; each (user, type)'s trigger found by a hash aggregate
# (no sort of the claimed events by text keys); a claim's users locked and its pairs counted in one statement (no
# (user, type) rows back to Python). One flag for the profile's A/B (the previous paths with it off).
LEAN_CHUNK = True

# The (segment, user) pairs one transaction evaluates (distinct; `trigger` the event that caused it, or "";
# `incremental`: the pair was touched by queued batches whose events sit in segments_touched, so its state may be
# brought forward by adding them instead of re-reading the window).
# Emptied explicitly too: inside an outer transaction (tests, a caller's atomic block) no commit empties it.
PAIRS_TABLE = (
    "CREATE TEMP TABLE IF NOT EXISTS segments_eval_pairs (segment_id bigint, user_id text, trigger text, "
    f"incremental boolean NOT NULL DEFAULT false) ON COMMIT DELETE ROWS; TRUNCATE {PAIRS}"
)

# Attributes a window state serves incrementally. A state keeps its window's count, exact sum, min and max of its
# property, whatever its readers' attributes; avg and distinct re-read the window at each evaluation (and so the
# other rules reading a window that an avg or distinct rule reads too).
INCREMENTAL_ATTRIBUTES = ("count", "sum", "min", "max")


def _rule_window(alias: str) -> str:
    """A rule's window: its state's key beside the user (segments_windowstate: user_id, event_type, window_minutes,
    property). Rules on the same window share one state, whatever their attribute, operator or threshold."""
    return f"coalesce({alias}.window_minutes, 1)"


def _rule_prop(alias: str) -> str:
    return f"coalesce(nullif({alias}.property, ''), 'value')"


RULE_WINDOW = _rule_window("r")
RULE_PROP = _rule_prop("r")
SAME_WINDOW = f"r.event_type = s.event_type AND {RULE_WINDOW} = s.window_minutes AND {RULE_PROP} = s.property"

# The pairs with their rule (`p`), and their windows with the current state (`k`, one row per window: its
# aggregates are computed once for all its readers). `inc0`: the state may be brought forward (it exists, was read
# whole under a known snapshot, nothing in it left the window or arrived in it by time since, and no reader needs a
# whole read).
_PAIRS_CTE = f"""
p AS MATERIALIZED (
    SELECT q.segment_id, q.user_id, q.trigger, q.incremental, r.version, r.event_type, r.attribute,
           {RULE_PROP} AS prop, r.operator, coalesce(r.value, 0) AS target, {RULE_WINDOW} AS window_minutes
    FROM {PAIRS} q JOIN segments_segment r ON r.id = q.segment_id AND r.active AND r.kind = 'independent'
), k AS MATERIALIZED (
    SELECT g.*, s.events_in_window AS s_n, s.total AS s_total, s.low AS s_low, s.high AS s_high, s.due_at AS s_due,
           s.snapshot AS s_snapshot, s.writer AS s_writer, s.ctid AS s_ctid,
           CASE WHEN s.snapshot <> '' THEN s.snapshot::pg_snapshot END AS s_snap,
           (g.incremental AND g.plain AND s.snapshot <> '' AND s.evaluated_at <= %(now)s
            AND (s.due_at IS NULL OR s.due_at > %(now)s)) IS TRUE AS inc0
    FROM (
        SELECT user_id, event_type, window_minutes, prop, bool_and(incremental) AS incremental,
               bool_and(attribute IN {INCREMENTAL_ATTRIBUTES}) AS plain, bool_or(attribute = 'distinct') AS distinct_read
        FROM p GROUP BY user_id, event_type, window_minutes, prop
    ) g
    LEFT JOIN segments_windowstate s ON s.user_id = g.user_id AND s.event_type = g.event_type
        AND s.window_minutes = g.window_minutes AND s.property = g.prop
)"""

# The window-first head of the touched statement (WINDOW_FIRST): no pair rows. The active independent rules (`r`, a
# handful of rows) and their distinct windows (`rw`); the chunk's touched (user, type) (`g`, with the trigger: the
# latest claimed event of that (user, type)) times the windows of their type, each with its current state (`k`).
# Every reader of a touched window is judged, as with the pairs (every active rule on the type).
_TOUCHED_WINDOWS_CTE = f"""
r AS MATERIALIZED (
    SELECT r.id AS segment_id, r.version, r.event_type, r.attribute, {RULE_PROP} AS prop, r.operator,
           coalesce(r.value, 0) AS target, {RULE_WINDOW} AS window_minutes
    FROM segments_segment r WHERE r.active AND r.kind = 'independent'
), rw AS MATERIALIZED (
    SELECT event_type, window_minutes, prop, bool_and(attribute IN {INCREMENTAL_ATTRIBUTES}) AS plain,
           bool_or(attribute = 'distinct') AS distinct_read
    FROM r GROUP BY event_type, window_minutes, prop
), g AS MATERIALIZED (
    SELECT user_id, event_type, (array_agg(event_id ORDER BY seq DESC))[1] AS trigger
    FROM {TOUCHED} WHERE {BUCKET} BETWEEN %(low)s AND %(high)s GROUP BY user_id, event_type
), k AS MATERIALIZED (
    SELECT g.user_id, rw.event_type, rw.window_minutes, rw.prop, g.trigger, rw.plain, rw.distinct_read,
           s.events_in_window AS s_n, s.total AS s_total, s.low AS s_low, s.high AS s_high, s.due_at AS s_due,
           s.snapshot AS s_snapshot, s.writer AS s_writer, s.ctid AS s_ctid,
           CASE WHEN s.snapshot <> '' THEN s.snapshot::pg_snapshot END AS s_snap,
           (rw.plain AND s.snapshot <> '' AND s.evaluated_at <= %(now)s
            AND (s.due_at IS NULL OR s.due_at > %(now)s)) IS TRUE AS inc0
    FROM g CROSS JOIN LATERAL (SELECT * FROM rw WHERE rw.event_type = g.event_type OFFSET 0) rw
    LEFT JOIN segments_windowstate s ON s.user_id = g.user_id AND s.event_type = rw.event_type
        AND s.window_minutes = rw.window_minutes AND s.property = rw.prop
)"""

# The whole window read from the events table: its aggregates and the next instant they change by time.
_FULL_SELECT = """
    SELECT k.*, x.*, d.distinct_values
    FROM {source} CROSS JOIN LATERAL (
        SELECT count(e.event_time) FILTER (WHERE e.event_time <= %(now)s) AS n,
               coalesce(sum(e.v) FILTER (WHERE e.event_time <= %(now)s), 0) AS total,
               avg(e.v) FILTER (WHERE e.event_time <= %(now)s) AS average,
               min(e.v) FILTER (WHERE e.event_time <= %(now)s) AS low,
               max(e.v) FILTER (WHERE e.event_time <= %(now)s) AS high,
               least(min(e.event_time) FILTER (WHERE e.event_time > %(now)s),
                     min(e.event_time + k.window_minutes * interval '1 minute')
                         FILTER (WHERE e.event_time <= %(now)s)) AS due
        FROM (
            SELECT ev.event_time,
                   CASE WHEN jsonb_typeof(ev.attributes -> k.prop) = 'number' THEN (ev.attributes ->> k.prop)::numeric
                   END AS v
            FROM segments_event ev
            WHERE ev.user_id = k.user_id AND ev.event_type = k.event_type
              AND ev.event_time > %(now)s - k.window_minutes * interval '1 minute'
              AND ev.event_time <= %(horizon)s
        ) e
    ) x
    CROSS JOIN LATERAL (  -- a second pass over the window only for a `distinct` rule (it sorts)
        SELECT CASE WHEN k.distinct_read THEN (
            SELECT count(DISTINCT ev.attributes ->> k.prop)
            FROM segments_event ev
            WHERE ev.user_id = k.user_id AND ev.event_type = k.event_type
              AND ev.event_time > %(now)s - k.window_minutes * interval '1 minute'
              AND ev.event_time <= %(now)s
        ) END AS distinct_values
    ) d"""

# Both writes end alike: a state not there yet is inserted (ON CONFLICT: another claim may have made it), and
# an emptied window with nothing due is dropped.
_INSERT_HEAD = """), inserted AS (
    INSERT INTO segments_windowstate (user_id, event_type, window_minutes, property, events_in_window, due_at,
                                      evaluated_at, total, low, high, snapshot, writer)
"""
_INSERT_TAIL = """    ON CONFLICT (user_id, event_type, window_minutes, property) DO UPDATE SET
        events_in_window = EXCLUDED.events_in_window, due_at = EXCLUDED.due_at, evaluated_at = EXCLUDED.evaluated_at,
        total = EXCLUDED.total, low = EXCLUDED.low, high = EXCLUDED.high, snapshot = EXCLUDED.snapshot,
        writer = EXCLUDED.writer
), emptied AS (
    DELETE FROM segments_windowstate ws USING a
    WHERE ws.user_id = a.user_id AND ws.event_type = a.event_type AND ws.window_minutes = a.window_minutes
      AND ws.property = a.prop AND a.n = 0 AND a.due IS NULL AND a.s_n IS NOT NULL
)
"""

# The window state's write (NARROW_WRITE; `_WIDE_WRITE` is the previous one, for the profile's A/B).
_NARROW_WRITE = (
    """
), me AS MATERIALIZED (  -- this statement's snapshot and transaction, once (not per written row)
    SELECT pg_current_snapshot()::text AS snapshot, pg_current_xact_id()::text::bigint AS writer
), w AS MATERIALIZED (  -- only what the write needs (no snapshot text); a state brought forward whose aggregates
    -- and due_at did not change is not written at all (its snapshot, writer and evaluated_at stay true)
    SELECT user_id, event_type, window_minutes, prop, n, due, total, low, high, forward, s_n IS NOT NULL AS existed
    FROM a WHERE (n > 0 OR due IS NOT NULL)
      AND NOT (forward AND n = s_n AND total IS NOT DISTINCT FROM s_total AND due IS NOT DISTINCT FROM s_due
               AND low IS NOT DISTINCT FROM s_low AND high IS NOT DISTINCT FROM s_high)
), updated AS (  -- a plain UPDATE where the state exists (no speculative insert; HOT when due_at is unchanged); a
    -- state brought forward keeps its snapshot and writer, one read whole takes the statement's
    UPDATE segments_windowstate ws SET events_in_window = w.n, due_at = w.due, evaluated_at = %(now)s,
        total = w.total, low = w.low, high = w.high,
        snapshot = CASE WHEN w.forward THEN ws.snapshot ELSE me.snapshot END,
        writer = CASE WHEN w.forward THEN ws.writer ELSE me.writer END
    FROM w CROSS JOIN me WHERE w.existed AND ws.user_id = w.user_id AND ws.event_type = w.event_type
        AND ws.window_minutes = w.window_minutes AND ws.property = w.prop
"""
    + _INSERT_HEAD
    + "    SELECT user_id, event_type, window_minutes, prop, n, due, %(now)s, total, low, high, me.snapshot, me.writer\n"
    + "    FROM w CROSS JOIN me WHERE NOT existed\n"
    + _INSERT_TAIL
)
_WIDE_WRITE = (
    """
), w AS (
    SELECT user_id, event_type, window_minutes, prop, n, due, total, low, high,
           CASE WHEN forward THEN s_snapshot ELSE pg_current_snapshot()::text END AS snapshot,
           CASE WHEN forward THEN s_writer ELSE pg_current_xact_id()::text::bigint END AS writer,
           s_n IS NOT NULL AS existed
    FROM a WHERE n > 0 OR due IS NOT NULL
), updated AS (  -- a plain UPDATE where the state exists (no speculative insert; HOT when due_at is unchanged)
    UPDATE segments_windowstate ws SET events_in_window = w.n, due_at = w.due, evaluated_at = %(now)s,
        total = w.total, low = w.low, high = w.high, snapshot = w.snapshot, writer = w.writer
    FROM w WHERE w.existed AND ws.user_id = w.user_id AND ws.event_type = w.event_type
        AND ws.window_minutes = w.window_minutes AND ws.property = w.prop
"""
    + _INSERT_HEAD
    + "    SELECT user_id, event_type, window_minutes, prop, n, due, %(now)s, total, low, high, snapshot, writer\n"
    + "    FROM w WHERE NOT existed\n"
    + _INSERT_TAIL
)

# Verdicts and writes, from each window's aggregates (`a`): every reader's verdict, compared with its membership;
# the window's state written once (kept, or dropped when nothing is in the window and nothing is due). Only the
# pairs whose verdict differs from the membership come back: those are the transitions. A state read whole records
# the statement's snapshot and transaction; one brought forward keeps the ones it had.
_VERDICT_AND_WRITE_T = """
, j AS (
    SELECT p.segment_id, {user}.user_id, {user}.trigger, p.version, p.event_type, p.attribute, p.prop, p.operator,
           p.target, p.window_minutes, v.value,
           (SELECT m.entered_at FROM segments_membership m
            WHERE m.segment_id = p.segment_id AND m.user_id = {user}.user_id) AS entered_at,
           coalesce(CASE p.operator WHEN 'gt' THEN v.value > p.target WHEN 'gte' THEN v.value >= p.target
                                    WHEN 'lt' THEN v.value < p.target WHEN 'lte' THEN v.value <= p.target
                                    WHEN 'eq' THEN v.value = p.target WHEN 'neq' THEN v.value <> p.target END,
                    false) AS holds
    {pairs}
    CROSS JOIN LATERAL (
        SELECT CASE p.attribute WHEN 'count' THEN a.n::numeric WHEN 'sum' THEN a.total WHEN 'avg' THEN a.average
                                WHEN 'min' THEN a.low WHEN 'max' THEN a.high
                                WHEN 'distinct' THEN a.distinct_values::numeric END AS value
    ) v
{write}SELECT segment_id, user_id, trigger, version, event_type, attribute, prop, operator, target, window_minutes,
       value, entered_at, holds
FROM j WHERE holds <> (entered_at IS NOT NULL)
"""

_VERDICT_AND_WRITE_W = _VERDICT_AND_WRITE_T.replace("{user}", "p").replace(
    "{pairs}",
    "FROM p JOIN a ON a.user_id = p.user_id AND a.event_type = p.event_type AND a.window_minutes = p.window_minutes\n"
    "                 AND a.prop = p.prop",
)
# Window-first: each window's row carries its user and trigger; its readers are the rules on it (hashed: few rows).
_WINDOW_VERDICTS_W = _VERDICT_AND_WRITE_T.replace("{user}", "a").replace(
    "{pairs}",
    "FROM a JOIN r p ON p.event_type = a.event_type AND p.window_minutes = a.window_minutes AND p.prop = a.prop",
)
_VERDICT_AND_WRITE = _VERDICT_AND_WRITE_W.replace("{write}", _NARROW_WRITE)
_WINDOW_VERDICTS = _WINDOW_VERDICTS_W.replace("{write}", _NARROW_WRITE)

# Every window read whole (timers, a new or changed rule, re-evaluation): one set-based statement per chunk.
EVALUATE_SQL = (
    f"WITH {_PAIRS_CTE}, a AS ({_FULL_SELECT.format(source='(SELECT k.*, false AS forward FROM k) k')})"
    + _VERDICT_AND_WRITE
)

# Windows touched by queued batches (segments_touched holds the claimed batches' events). A window whose state can
# be brought forward is: its new events are those of the claimed batches whose transaction the state's snapshot does
# not see (the state counted the others when it read the window), inside the window now (an event before it never
# counts again; one in the future makes it due). Everything else is read whole. A window is read whole too when a
# batch's transaction is unknown (a redelivered JetStream message) or is the one that wrote the state (it saw its
# own writes), or when an event lies past the horizon (a later whole read counts it; a later claim would not).
_TOUCHED_BODY = f"""
nv AS MATERIALIZED (  -- the claimed events of the windows that may be brought forward (a batch queued before this
    -- column existed has no attributes: its windows are read whole)
    SELECT t.user_id, t.event_type, t.event_time, CASE WHEN t.attributes IS NOT NULL THEN t.xact END AS xact,
           t.attributes
    FROM {TOUCHED} t JOIN (SELECT DISTINCT user_id, event_type FROM k WHERE inc0) g
        ON g.user_id = t.user_id AND g.event_type = t.event_type
), added AS (
    SELECT k.user_id, k.event_type, k.window_minutes, k.prop,
           bool_or(nv.xact IS NULL OR nv.xact::text::bigint = k.s_writer
                   OR (c.counts AND nv.event_time > %(horizon)s)) AS unsure,
           count(*) FILTER (WHERE c.counts AND c.live) AS n,
           sum(c.v) FILTER (WHERE c.counts AND c.live) AS total,
           min(c.v) FILTER (WHERE c.counts AND c.live) AS low,
           max(c.v) FILTER (WHERE c.counts AND c.live) AS high,
           least(min(nv.event_time) FILTER (WHERE c.counts AND nv.event_time > %(now)s),
                 min(nv.event_time + k.window_minutes * interval '1 minute') FILTER (WHERE c.counts AND c.live))
               AS due
    FROM k JOIN nv ON nv.user_id = k.user_id AND nv.event_type = k.event_type
    CROSS JOIN LATERAL (
        SELECT NOT pg_visible_in_snapshot(nv.xact, k.s_snap) AS counts,
               nv.event_time <= %(now)s AND nv.event_time > %(now)s - k.window_minutes * interval '1 minute' AS live,
               CASE WHEN jsonb_typeof(nv.attributes -> k.prop) = 'number' THEN (nv.attributes ->> k.prop)::numeric
               END AS v
    ) c
    WHERE k.inc0
    GROUP BY k.user_id, k.event_type, k.window_minutes, k.prop
), kk AS (
    SELECT k.*, k.inc0 AND NOT coalesce(ad.unsure, false) AS forward, ad.n AS add_n, ad.total AS add_total,
           ad.low AS add_low, ad.high AS add_high, ad.due AS add_due
    FROM k LEFT JOIN added ad ON ad.user_id = k.user_id AND ad.event_type = k.event_type
        AND ad.window_minutes = k.window_minutes AND ad.prop = k.prop
), a AS (
    {_FULL_SELECT.format(source="(SELECT * FROM kk WHERE NOT forward) k")}
    UNION ALL
    SELECT k.*, k.s_n + coalesce(k.add_n, 0), k.s_total + coalesce(k.add_total, 0), NULL, least(k.s_low, k.add_low),
           greatest(k.s_high, k.add_high), least(k.s_due, k.add_due), NULL
    FROM kk k WHERE k.forward
)"""
EVALUATE_TOUCHED_SQL = f"WITH {_PAIRS_CTE},{_TOUCHED_BODY}{_VERDICT_AND_WRITE}"
# The same, window-first (WINDOW_FIRST): the chunk's windows straight from segments_touched (%(low)s..%(high)s: its
# range of user buckets), no pairs table.
EVALUATE_WINDOWS_SQL = f"WITH {_TOUCHED_WINDOWS_CTE},{_TOUCHED_BODY}{_WINDOW_VERDICTS}"
# Session 13 (LEAN_CHUNK): the window state updated and an emptied one deleted by the address `k` read it at (the
# user's bucket lock keeps every other evaluator off the row between the read and the write, and the statement
# neither writes it before), not by a second probe of the unique index per written row; and, window-first, each
# (user, type)'s trigger by a hash aggregate of its latest `seq` (unique in a claim) joined back, where the ordered
# array_agg sorted every claimed event by its text keys.
_KEYED_UPDATE = """ws.user_id = w.user_id AND ws.event_type = w.event_type
        AND ws.window_minutes = w.window_minutes AND ws.property = w.prop"""
_KEYED_DELETE = """ws.user_id = a.user_id AND ws.event_type = a.event_type AND ws.window_minutes = a.window_minutes
      AND ws.property = a.prop AND a.n = 0"""
_SORTED_TRIGGER = f"""
    SELECT user_id, event_type, (array_agg(event_id ORDER BY seq DESC))[1] AS trigger
    FROM {TOUCHED} WHERE {BUCKET} BETWEEN %(low)s AND %(high)s GROUP BY user_id, event_type
)"""
# The per-event expressions computed once per event (OFFSET 0 keeps the subquery from being flattened into its
# readers): flattened, the visibility test ran in each of the seven aggregates' filters and the property's jsonb
# extraction and numeric parse in each of sum, min and max (and avg) that read it.
_ONCE = "\n        OFFSET 0  -- computed once per event (see LEAN_CHUNK)"
_PER_EVENT_ADDED = """               END AS v
    ) c
    WHERE k.inc0"""
_PER_EVENT_READ = """              AND ev.event_time <= %(horizon)s
        ) e"""
_HASHED_TRIGGER = f"""
    SELECT t.user_id, t.event_type, t.event_id AS trigger
    FROM (SELECT max(seq) AS top FROM {TOUCHED} WHERE {BUCKET} BETWEEN %(low)s AND %(high)s
          GROUP BY user_id, event_type) m
    JOIN {TOUCHED} t ON t.seq = m.top
)"""


def _lean(sql: str) -> str:
    lean = (
        sql.replace("forward, s_n IS NOT NULL AS existed", "forward, s_ctid, s_n IS NOT NULL AS existed")
        .replace(_KEYED_UPDATE, "ws.ctid = w.s_ctid")
        .replace(_KEYED_DELETE, "ws.ctid = a.s_ctid AND a.n = 0")
        .replace(_SORTED_TRIGGER, _HASHED_TRIGGER)
        .replace(_PER_EVENT_ADDED, _PER_EVENT_ADDED.replace("\n    ) c", _ONCE + "\n    ) c"))
        .replace(_PER_EVENT_READ, _PER_EVENT_READ.replace("\n        ) e", _ONCE + "\n        ) e"))
    )
    assert lean.count("s_ctid") >= 4 and lean.count(_ONCE) == 1 + (_PER_EVENT_ADDED in sql), (
        "LEAN_CHUNK's anchors moved"
    )
    return lean


LEAN_SQL = {sql: _lean(sql) for sql in (EVALUATE_SQL, EVALUATE_TOUCHED_SQL, EVALUATE_WINDOWS_SQL)}
assert _HASHED_TRIGGER in LEAN_SQL[EVALUATE_WINDOWS_SQL]

# The three with the previous write (NARROW_WRITE off: the profile's A/B).
WIDE_WRITE_SQL = {
    sql: sql.replace(_NARROW_WRITE, _WIDE_WRITE) for sql in (EVALUATE_SQL, EVALUATE_TOUCHED_SQL, EVALUATE_WINDOWS_SQL)
}

# A pair evaluated outside a claim (a new or changed rule) re-reads and rewrites its window's state: every other
# active rule reading that window is evaluated with it, or a reader whose verdict changed by time (an event left the
# window) would lose the timer that was due to tell it.
READERS_SQL = f"""
INSERT INTO {PAIRS} (segment_id, user_id, trigger)
SELECT DISTINCT o.id, q.user_id, ''
FROM {PAIRS} q
JOIN segments_segment s ON s.id = q.segment_id AND s.active AND s.kind = 'independent'
JOIN segments_segment o ON o.active AND o.kind = 'independent' AND o.id <> s.id AND o.event_type = s.event_type
    AND {_rule_window("o")} = {_rule_window("s")} AND {_rule_prop("o")} = {_rule_prop("s")}
WHERE NOT EXISTS (SELECT 1 FROM {PAIRS} x WHERE x.segment_id = o.id AND x.user_id = q.user_id)
"""

# The pairs a batch of stored events touches, for one range of user buckets: each (user, type) with the
# active independent rules on that type; the trigger is the user's latest event of that type in the batch.
TOUCHED_PAIRS_SQL = f"""
INSERT INTO {PAIRS} (segment_id, user_id, trigger, incremental)
WITH t AS MATERIALIZED (  -- a temporary table has no statistics: never let the planner re-run this per rule
    SELECT DISTINCT ON (user_id, event_type) user_id, event_type, event_id AS trigger
    FROM pg_temp.segments_touched WHERE {BUCKET} BETWEEN %s AND %s ORDER BY user_id, event_type, seq DESC
)
SELECT r.id, t.user_id, t.trigger, true
FROM t JOIN (
    SELECT id, event_type FROM segments_segment WHERE active AND kind = 'independent'
) r ON r.event_type = t.event_type
"""


@dataclass
class Outcome:
    transitions: list[Transition] = field(default_factory=list)
    pairs: int = 0
    batches: int = 0  # queued batches evaluated (evaluate_pending)

    @property
    def entries(self) -> int:
        return sum(1 for t in self.transitions if t.kind == Transition.Kind.ENTER)

    @property
    def exits(self) -> int:
        return sum(1 for t in self.transitions if t.kind == Transition.Kind.EXIT)


def bucket(user_id: str) -> int:
    """A user's lock bucket: crc32 like the JetStream partition (segments.jetstream.partition_of), so with a
    partition count dividing LOCK_BUCKETS, evaluators of different partitions never share a bucket."""
    return zlib.crc32(user_id.encode()) % LOCK_BUCKETS


def lock_users(users: Iterable[str]) -> None:
    """Serialise evaluators of the same users (sorted buckets: no deadlock between two batches)."""
    buckets = sorted({bucket(user) for user in users})
    if not buckets:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_advisory_xact_lock(%s, b)) FROM (SELECT b FROM unnest(%s::int[]) b ORDER BY b) s",
            [LOCK_NAMESPACE, buckets],
        )


def _lock_pairs(cursor: Any) -> None:
    """Lock the buckets of the users in this transaction's pairs."""
    cursor.execute(f"SELECT DISTINCT user_id FROM {PAIRS}")
    lock_users(row[0] for row in cursor.fetchall())


def _written(sql: str) -> str:
    """The statement with the window-state write NARROW_WRITE and LEAN_CHUNK select."""
    if not NARROW_WRITE:
        return WIDE_WRITE_SQL[sql]
    return LEAN_SQL[sql] if LEAN_CHUNK else sql


def _evaluate_table(
    cursor: Any, now: datetime, timer: bool, touched: bool = False, buckets: tuple[int, int] | None = None
) -> list[Transition]:
    """Evaluate the pairs table (EVALUATE_TOUCHED_SQL when segments_touched holds the claimed events, else
    EVALUATE_SQL), or with `buckets` the claimed events of that range of user buckets (EVALUATE_WINDOWS_SQL); the
    transitions found, as ledger rows (not yet written)."""
    params: dict[str, Any] = {"now": now, "horizon": now + FUTURE_SKEW}
    if buckets is not None:
        params["low"], params["high"] = buckets
    if touched:
        # Its CTEs have no statistics (estimated at a row or so): with sorting allowed the planner groups the
        # claimed events by sorting them, spilling to disk at tens of thousands; hashing them takes milliseconds.
        # Its hash aggregates over the claimed events of 20,000 pairs outgrow the default 4 MB and spill to disk
        # in batches; 64 MB holds them (one statement of one evaluator at a time).
        cursor.execute("SET LOCAL enable_sort = off; SET LOCAL work_mem = '64MB'")
        cursor.execute(_written(EVALUATE_TOUCHED_SQL if buckets is None else EVALUATE_WINDOWS_SQL), params)
        rows = cursor.fetchall()
        cursor.execute("SET LOCAL enable_sort = DEFAULT; SET LOCAL work_mem = DEFAULT")
    else:
        cursor.execute(_written(EVALUATE_SQL), params)
        rows = cursor.fetchall()
    transitions: list[Transition] = []
    enter, exit_ = Transition.Kind.ENTER, Transition.Kind.EXIT
    for row in rows:
        seg, user, trigger, version, event_type, attribute, prop, operator, target, window, value, entered, holds = row
        rule = rules_mod.Rule(seg, version, event_type, attribute, prop, operator, Decimal(target), int(window))
        aggregate = None if value is None else Decimal(value)
        why = rule.describe(aggregate) if holds else ("window slid past: " if timer else "") + rule.describe(aggregate)
        transitions.append(
            _ledger_row(
                seg,
                user,
                enter if holds else exit_,
                now if holds else entered,
                None if holds else now,
                version,
                "" if timer else trigger or "",
                why[:300],
                now,
            )
        )
    return transitions


# Transition's columns in model order: `_ledger_row` builds ledger rows positionally (Django's fast path: keyword
# arguments cost ~4x as much per object, a visible share of the evaluator's Python at thousands of transitions).
LEDGER_FIELDS = (
    "id", "segment_id", "user_id", "kind", "entered_at", "exited_at", "rule_version", "event_id", "reason", "recorded_at"
)  # fmt: skip
assert tuple(f.attname for f in Transition._meta.concrete_fields) == LEDGER_FIELDS, "Transition's fields moved"


def _ledger_row(
    seg: int,
    user: str,
    kind: str,
    entered: datetime,
    exited: datetime | None,
    version: int,
    event_id: str,
    reason: str,
    at: datetime,
) -> Transition:
    # the stubs plugin misreads positional model arguments; LEDGER_FIELDS above checks the order at import
    return Transition(None, seg, user, kind, entered, exited, version, event_id, reason, at)  # type: ignore[misc]


def _memberships_of(users: Sequence[str]) -> dict[str, dict[int, datetime]]:
    out: dict[str, dict[int, datetime]] = defaultdict(dict)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT user_id, segment_id, entered_at FROM segments_membership WHERE user_id = ANY(%s)", [list(users)]
        )
        for user, seg, entered in cursor.fetchall():
            out[user][seg] = entered
    return out


def _write(transitions: list[Transition]) -> None:
    """Apply transitions to the current membership, then append them to the ledger."""
    _write_rows(transitions)
    audience_refresh.memberships_changed(transitions)  # built audiences following these segments (cached: cheap)


# The writes of one evaluation, with the transitions carried as one JSON array of rows (encoded by orjson in C):
# psycopg builds array parameters element by element in Python (a quoting regex per text), which cost more than the
# statements, and the ORM's bulk_create prepares every field of every row in Python. Ledger ids come back in row order.
# Rows: [segment, user, kind, entered_at, exited_at, version, event_id, reason, recorded_at].
_ROWS = """
    SELECT (r ->> 0)::bigint AS s, r ->> 1 AS u, r ->> 2 AS k, (r ->> 3)::timestamptz AS en,
           (r ->> 4)::timestamptz AS ex, (r ->> 5)::int AS v, r ->> 6 AS e, r ->> 7 AS r, (r ->> 8)::timestamptz AS at, n
    FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS x(r, n)
"""
EXITS_SQL = (
    f"DELETE FROM segments_membership m USING ({_ROWS}) t WHERE t.k = 'exit' AND m.segment_id = t.s AND m.user_id = t.u"
)
ENTERS_SQL = f"""
INSERT INTO segments_membership (segment_id, user_id, entered_at, rule_version)
SELECT s, u, en, v FROM ({_ROWS}) t WHERE k = 'enter' ON CONFLICT DO NOTHING
"""
LEDGER_ROWS_SQL = f"""
INSERT INTO segments_transition (segment_id, user_id, kind, entered_at, exited_at, rule_version, event_id, reason,
                                 recorded_at)
SELECT s, u, k, en, ex, v, e, r, at FROM ({_ROWS}) t ORDER BY n
RETURNING id
"""


def _encode_rows(rows: list[list[Any]]) -> str:
    if orjson is not None:
        return orjson.dumps(rows).decode()
    return json.dumps(rows, default=lambda value: value.isoformat())


def _write_rows(transitions: list[Transition]) -> None:
    if not transitions:
        return
    rows = [
        [t.segment_id, t.user_id, t.kind, t.entered_at, t.exited_at, t.rule_version, t.event_id, t.reason,
         t.recorded_at]
        for t in transitions
    ]  # fmt: skip
    payload = _encode_rows(rows)
    with connection.cursor() as cursor:
        if any(t.kind == Transition.Kind.EXIT for t in transitions):
            cursor.execute(EXITS_SQL, [payload])
        if any(t.kind == Transition.Kind.ENTER for t in transitions):
            cursor.execute(ENTERS_SQL, [payload])
        cursor.execute(LEDGER_ROWS_SQL, [payload])
        _set_ids(transitions, cursor.fetchall())


def _set_ids(transitions: list[Transition], ids: list[tuple[int]]) -> None:
    for transition, (pk,) in zip(transitions, ids, strict=True):
        transition.pk = pk
        transition._state.adding = False
        transition._state.db = connection.alias


def _derived(defs: rules_mod.Definitions, users: Sequence[str], now: datetime) -> list[Transition]:
    """Re-evaluate every derived segment for users whose memberships just changed (dependency order)."""
    if not defs.derived or not users:
        return []
    memberships = _memberships_of(users)
    transitions: list[Transition] = []
    for user in users:
        mine = memberships.get(user, {})
        member_of = set(mine)
        for derived in defs.derived:
            holds = rules_mod.evaluate_expression(derived.expression, member_of)
            was = derived.segment_id in member_of
            if holds == was:
                continue
            names = ", ".join(defs.names.get(c, f"#{c}") for c in sorted(derived.children))
            op = derived.expression.get("op", "?")
            if holds:
                member_of.add(derived.segment_id)
                transitions.append(
                    Transition(
                        segment_id=derived.segment_id,
                        user_id=user,
                        kind=Transition.Kind.ENTER,
                        entered_at=now,
                        rule_version=derived.version,
                        reason=f"{op}({names}) holds"[:300],
                        recorded_at=now,
                    )
                )
            else:
                member_of.discard(derived.segment_id)
                transitions.append(
                    Transition(
                        segment_id=derived.segment_id,
                        user_id=user,
                        kind=Transition.Kind.EXIT,
                        entered_at=mine.get(derived.segment_id, now),
                        exited_at=now,
                        rule_version=derived.version,
                        reason=f"{op}({names}) no longer holds"[:300],
                        recorded_at=now,
                    )
                )
    return transitions


def _finish_chunk(
    cursor: Any, when: datetime, timer: bool, touched: bool = False, buckets: tuple[int, int] | None = None
) -> list[Transition]:
    """Inside a chunk's transaction, pairs filled (or, with `buckets`, the claimed events of that range of user
    buckets in segments_touched): lock, evaluate, write, derived segments, trigger sends."""
    from segments import triggers as campaign_triggers

    if not touched:  # evaluate_pending locked every user of its claim already
        _lock_pairs(cursor)
    defs = rules_mod.load()
    changed = _evaluate_table(cursor, when, timer, touched, buckets)
    _write(changed)  # first: derived segments read the memberships it leaves
    derived: list[Transition] = []
    if defs.derived:
        if timer:
            users = sorted({t.user_id for t in changed})
        else:
            # A user's first event can make a NOT/OR derived segment hold without an independent change.
            if buckets is None:
                cursor.execute(f"SELECT DISTINCT user_id FROM {PAIRS} ORDER BY 1")
            else:  # the users a pair would have named: an event of a type some active rule reads
                cursor.execute(CHUNK_USERS_SQL, [*buckets, sorted(defs.rules_by_type)])
            users = [row[0] for row in cursor.fetchall()]
        derived = _derived(defs, users, when)
        _write(derived)
    campaign_triggers.enqueue_sends(changed + derived, now=when)
    return changed + derived


def evaluate_pairs(
    pairs: Iterable[tuple[int, str]],
    *,
    now: datetime | None = None,
    timer: bool = False,
) -> Outcome:
    """Evaluate (segment, user) pairs at `now`, chunk by chunk, each chunk one transaction (timers, re-evaluation)."""
    when = now or timezone.now()
    ordered = sorted(set(pairs), key=lambda p: (p[1], p[0]))
    outcome = Outcome(pairs=len(ordered))
    start = 0
    while start < len(ordered):
        # Never cut one user's pairs across chunks: derived segments read all of a user's memberships.
        end = min(start + CHUNK_PAIRS, len(ordered))
        while end < len(ordered) and ordered[end][1] == ordered[end - 1][1]:
            end += 1
        chunk = ordered[start:end]
        start = end
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(PAIRS_TABLE)
            with cursor.copy(f"COPY {PAIRS} (segment_id, user_id, trigger) FROM STDIN") as copy:  # type: ignore[attr-defined]
                for seg, user in chunk:
                    copy.write_row((seg, user, ""))
            if not timer:  # the timer's pairs are every active reader of the due windows already
                cursor.execute(READERS_SQL)
            outcome.transitions.extend(_finish_chunk(cursor, when, timer))
    return outcome


# The users of a chunk of claimed events with an event of a type some active rule reads (the window-first path's
# users for derived segments: those the pairs table would have held).
CHUNK_USERS_SQL = f"""
SELECT DISTINCT user_id FROM {TOUCHED} WHERE {BUCKET} BETWEEN %s AND %s AND event_type = ANY(%s::text[]) ORDER BY 1
"""


def evaluate_touched(*, fresh: int, now: datetime | None = None, pairs: int | None = None) -> Outcome:
    """Evaluate what `segments_touched` holds (filled by evaluate_pending from the queue, which locked its users):
    each of its (user, type) with the active rules on that type, in chunks of user buckets.

    `fresh` (the distinct (user, type) the claim touched) times the most rules on one type bounds the pairs: it
    sizes the chunks (each chunk re-reads segments_touched, so no more chunks than needed)."""
    when = now or timezone.now()
    defs = rules_mod.load()
    most = max((len(rules) for rules in defs.rules_by_type.values()), default=0)
    outcome = Outcome()
    if not most or not fresh:
        return outcome
    if WINDOW_FIRST and pairs is not None:
        outcome.pairs = pairs
        if not pairs:
            return outcome
        for low, high in bucket_ranges(fresh * most):
            with transaction.atomic(), connection.cursor() as cursor:
                outcome.transitions.extend(_finish_chunk(cursor, when, timer=False, touched=True, buckets=(low, high)))
        return outcome
    for low, high in bucket_ranges(fresh * most):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(PAIRS_TABLE)
            cursor.execute(TOUCHED_PAIRS_SQL, [low, high])
            outcome.pairs += max(0, cursor.rowcount)
            if cursor.rowcount:
                outcome.transitions.extend(_finish_chunk(cursor, when, timer=False, touched=True))
    return outcome


# --- The queue between ingestion and evaluation (segments_pendingbatch) -----------------------------------

TOUCHED_TABLE = (
    "CREATE TEMP TABLE IF NOT EXISTS segments_touched (seq bigint, event_id text, user_id text, event_type text, "
    f"event_time timestamptz, xact xid8, attributes jsonb) ON COMMIT DELETE ROWS; TRUNCATE {TOUCHED}"
)

# Claim queued batches (oldest first); a batch another evaluator holds is skipped, never waited for.
CLAIM_SQL = f"""
SELECT id, size FROM {PENDING_TABLE}
WHERE (%(only)s::bigint[] IS NULL OR id = ANY(%(only)s::bigint[])) AND id <= %(upto)s
ORDER BY id LIMIT %(limit)s FOR UPDATE SKIP LOCKED
"""

# The claimed batches' events, in queue then request order (`seq`: the latest event of a (user, type) is
# the trigger of its pairs).
FILL_TOUCHED_SQL = f"""
INSERT INTO {TOUCHED} (seq, event_id, user_id, event_type, event_time, xact, attributes)
SELECT array_position(%(ids)s::bigint[], p.id)::bigint * 4294967296 + e.ord, e.event_id, e.user_id, e.event_type,
       e.event_time, p.xact, e.attributes
FROM {PENDING_TABLE} p
CROSS JOIN LATERAL unnest(p.event_ids, p.user_ids, p.event_types, p.event_times, p.attributes)
    WITH ORDINALITY AS e(event_id, user_id, event_type, event_time, attributes, ord)
WHERE p.id = ANY(%(ids)s::bigint[]) AND (hashtext(e.user_id) & 1023) > p.done_buckets
"""

# Committing per chunk (CHUNK_COMMITS): the claimed batches' events not evaluated yet (a bucket past the batch's
# progress mark), kept for the claim's chunks in a table that survives their commits.
CLAIMED = "pg_temp.segments_claimed"
CLAIMED_TABLE = (
    "CREATE TEMP TABLE IF NOT EXISTS segments_claimed (batch bigint, bucket int, seq bigint, event_id text, "
    f"user_id text, event_type text, event_time timestamptz, xact xid8, attributes jsonb); TRUNCATE {CLAIMED}"
)
FILL_CLAIMED_SQL = f"""
INSERT INTO {CLAIMED} (batch, bucket, seq, event_id, user_id, event_type, event_time, xact, attributes)
SELECT p.id, b.bucket, array_position(%(ids)s::bigint[], p.id)::bigint * 4294967296 + e.ord, e.event_id, e.user_id,
       e.event_type, e.event_time, p.xact, e.attributes
FROM {PENDING_TABLE} p
CROSS JOIN LATERAL unnest(p.event_ids, p.user_ids, p.event_types, p.event_times, p.attributes)
    WITH ORDINALITY AS e(event_id, user_id, event_type, event_time, attributes, ord)
CROSS JOIN LATERAL (SELECT hashtext(e.user_id) & 1023 AS bucket) b
WHERE p.id = ANY(%(ids)s::bigint[]) AND b.bucket > p.done_buckets
"""

# A chunk's batches, locked again in its own transaction with their progress read under the lock (a batch another
# evaluator holds now is left to it; one already past this chunk is skipped).
CHUNK_CLAIM_SQL = f"""
SELECT id, done_buckets FROM {PENDING_TABLE} WHERE id = ANY(%s::bigint[]) AND done_buckets < %s
ORDER BY id FOR UPDATE SKIP LOCKED
"""

# The chunk's events: of each batch, the buckets past its mark up to the chunk's last bucket (whoever evaluated the
# buckets before, they are committed with the mark).
CHUNK_FILL_SQL = f"""
INSERT INTO {TOUCHED} (seq, event_id, user_id, event_type, event_time, xact, attributes)
SELECT c.seq, c.event_id, c.user_id, c.event_type, c.event_time, c.xact, c.attributes
FROM {CLAIMED} c JOIN unnest(%(ids)s::bigint[], %(done)s::int[]) AS d(id, done) ON d.id = c.batch
WHERE c.bucket > d.done AND c.bucket <= %(high)s
"""

# Profiles of first-seen users are created and last_active_at only moves forward, in one pass over the users with
# one index probe each: a plain upsert would lock every existing profile it meets (ON CONFLICT DO UPDATE locks the
# row before its WHERE is judged: a WAL record per user of the batch, nearly all of them when users come back),
# where only those whose last_active_at moves need a write. The probe is a
# LATERAL with LIMIT (never a hash join over every profile). A profile inserted concurrently (a PUT of the profile)
# is met by the conflict clause as before. last_active_at is kept to LAST_ACTIVE_SLACK: an existing profile's moves
# only when the user's latest event is more than that later (a user active all day is written once a minute at most,
# not once per claim); the API and the users page show it as "last active", to the minute.
PROFILES_SQL = f"""
WITH t AS MATERIALIZED (
    SELECT g.user_id, g.seen, p.found, p.last
    FROM (SELECT user_id, max(event_time) AS seen FROM {TOUCHED} GROUP BY user_id) g
    LEFT JOIN LATERAL (
        SELECT true AS found, u.last_active_at AS last FROM segments_userprofile u WHERE u.user_id = g.user_id LIMIT 1
    ) p ON true
), moved AS (
    UPDATE segments_userprofile u SET last_active_at = t.seen FROM t
    WHERE t.found AND (t.last IS NULL OR t.last < t.seen - %(slack)s) AND u.user_id = t.user_id
      AND (u.last_active_at IS NULL OR u.last_active_at < t.seen - %(slack)s)
)
INSERT INTO segments_userprofile (user_id, email, phone, device_tokens, attributes, created_at, last_active_at)
SELECT user_id, '', '', '[]'::jsonb, '{{}}'::jsonb, %(now)s, seen FROM t WHERE found IS NULL ORDER BY user_id
ON CONFLICT (user_id) DO UPDATE SET last_active_at = EXCLUDED.last_active_at
WHERE segments_userprofile.last_active_at IS NULL OR segments_userprofile.last_active_at < EXCLUDED.last_active_at
"""


def _profile_params(when: datetime) -> dict[str, Any]:
    return {"now": when, "slack": LAST_ACTIVE_SLACK if PROFILE_SLACK else timedelta(0)}


def wake_evaluator() -> None:
    """Tell a waiting `segments_timers` loop that a batch is queued (outside a transaction: NOTIFY is sent at
    commit, and the batch is already committed)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_notify(%s, current_schema())", [QUEUE_CHANNEL])


def evaluate_pending(
    *, only: Sequence[int] | None = None, now: datetime | None = None, batches: int = DRAIN_BATCHES
) -> Outcome:
    """Evaluate queued batches until the queue is empty (or, with `only`, those batches once): each round
    claims up to `batches` of them, writes their users' profiles, evaluates every (user, type) they touched
    once, and deletes them. Only batches queued before the call are taken: a steady stream never keeps one pass
    (one org) busy forever.

    Taking several batches together is what lets evaluation keep up under load: a user active in each
    of them is evaluated once per round, not once per batch.

    With CHUNK_COMMITS (off by default: it cost more than it gained) a claim commits chunk by chunk of user
    buckets: an event is visible once its user's chunk is
    evaluated, not when the whole claim is. Each batch row keeps its progress (`done_buckets`, the last bucket
    evaluated, committed with that chunk's results): a crash leaves the batch queued with its mark, and the next
    claim evaluates only the buckets after it, so no state brought forward ever adds a batch twice."""
    total = Outcome()
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT max(id) FROM {PENDING_TABLE}")
        upto = cursor.fetchone()[0]
    if upto is None:
        return total
    params = {"only": list(only) if only is not None else None, "upto": upto, "limit": batches}
    claim = _claim_by_chunks if CHUNK_COMMITS else _claim_at_once
    while True:
        outcome = claim(params, now or timezone.now())
        if not outcome.batches:
            return total
        total.transitions.extend(outcome.transitions)
        total.pairs += outcome.pairs
        total.batches += outcome.batches
        if only is not None:
            return total


def _claim_at_once(params: dict[str, Any], when: datetime) -> Outcome:
    """One claim in one transaction (the default: see CHUNK_COMMITS)."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(CLAIM_SQL, params)
        ids = [row[0] for row in cursor.fetchall()]
        if not ids:
            return Outcome()
        cursor.execute(TOUCHED_TABLE)
        cursor.execute(FILL_TOUCHED_SQL, {"ids": ids})
        # Every user of the claim locked now, in one sorted pass: the chunks below run in this transaction
        # and keep their locks, so locking chunk by chunk could deadlock against another evaluator.
        if LEAN_CHUNK and connection.pg_version >= 180000:  # type: ignore[attr-defined]  # crc32() is PostgreSQL 18's
            fresh, pairs = lock_touched(cursor)
        else:
            cursor.execute(f"SELECT user_id, event_type FROM {TOUCHED} GROUP BY user_id, event_type")
            touched = cursor.fetchall()
            lock_users(row[0] for row in touched)
            fresh, pairs = len(touched), _pair_count(touched)
        cursor.execute(PROFILES_SQL, _profile_params(when))
        outcome = evaluate_touched(fresh=fresh, now=when, pairs=pairs)
        cursor.execute(f"DELETE FROM {PENDING_TABLE} WHERE id = ANY(%s)", [ids])
    outcome.batches = len(ids)
    return outcome


# A claim's users locked in the database (LEAN_CHUNK): bucket() in SQL (crc32 of the UTF-8 bytes, as zlib's), the
# buckets sorted as lock_users sorts them; with the distinct (user, type) and the pairs they make (one per active rule
# on the type: `types`/`rules`), so no (user, type) row comes back to Python.
LOCK_TOUCHED_SQL = f"""
WITH t AS MATERIALIZED (SELECT user_id, event_type FROM {TOUCHED} GROUP BY user_id, event_type), locked AS (
    SELECT count(pg_advisory_xact_lock({LOCK_NAMESPACE}, b)) AS n
    FROM (SELECT DISTINCT (crc32(convert_to(user_id, 'UTF8')) %% {LOCK_BUCKETS})::int AS b FROM t ORDER BY b) s
)
SELECT (SELECT count(*) FROM t),
       (SELECT coalesce(sum(r.rules), 0) FROM t JOIN unnest(%(types)s::text[], %(rules)s::int[]) AS r(event_type, rules)
            ON r.event_type = t.event_type),
       (SELECT n FROM locked)
"""


def lock_touched(cursor: Any) -> tuple[int, int]:
    """Lock the users of segments_touched (as lock_users would) and count its distinct (user, type) and their pairs."""
    per_type = {name: len(rules) for name, rules in rules_mod.load().rules_by_type.items()}
    cursor.execute(LOCK_TOUCHED_SQL, {"types": list(per_type), "rules": list(per_type.values())})
    fresh, pairs, _locked = cursor.fetchone()
    return int(fresh), int(pairs)


def _pair_count(touched: Sequence[tuple[str, str]]) -> int:
    """The (segment, user) pairs of these (user, type): one per active rule on the type (as Outcome.pairs counts)."""
    per_type = {name: len(rules) for name, rules in rules_mod.load().rules_by_type.items()}
    return sum(per_type.get(event_type, 0) for _user, event_type in touched)


def _claim_by_chunks(params: dict[str, Any], when: datetime) -> Outcome:
    """One claim, each chunk of user buckets in a transaction of its own that moves the batches' marks (the opt-in
    CHUNK_COMMITS path: both claim the same way, then differ in what one transaction holds)."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(CLAIM_SQL, params)
        ids = [row[0] for row in cursor.fetchall()]
        if not ids:
            return Outcome()
        cursor.execute(CLAIMED_TABLE)
        cursor.execute(FILL_CLAIMED_SQL, {"ids": ids})
        cursor.execute(f"SELECT count(*) FROM (SELECT DISTINCT user_id, event_type FROM {CLAIMED}) d")
        fresh = int(cursor.fetchone()[0])
    defs = rules_mod.load()
    most = max((len(rules) for rules in defs.rules_by_type.values()), default=0)
    outcome = Outcome(batches=len(ids))
    for _low, high in bucket_ranges(fresh * most, PENDING_CHUNK_PAIRS):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(CHUNK_CLAIM_SQL, [ids, high])
            held = cursor.fetchall()
            if not held:
                continue
            cursor.execute(TOUCHED_TABLE)
            cursor.execute(CHUNK_FILL_SQL, {"ids": [r[0] for r in held], "done": [r[1] for r in held], "high": high})
            if cursor.rowcount:
                # this chunk's users only (sorted buckets; the transaction holds no other user lock)
                cursor.execute(f"SELECT DISTINCT user_id FROM {TOUCHED}")
                lock_users(row[0] for row in cursor.fetchall())
                cursor.execute(PROFILES_SQL, _profile_params(when))
                if most and WINDOW_FIRST:
                    cursor.execute(f"SELECT user_id, event_type FROM {TOUCHED} GROUP BY user_id, event_type")
                    outcome.pairs += _pair_count(cursor.fetchall())
                    span = (0, LOCK_BUCKETS - 1)
                    outcome.transitions.extend(_finish_chunk(cursor, when, timer=False, touched=True, buckets=span))
                elif most:
                    cursor.execute(PAIRS_TABLE)
                    cursor.execute(TOUCHED_PAIRS_SQL, [0, LOCK_BUCKETS - 1])
                    outcome.pairs += max(0, cursor.rowcount)
                    if cursor.rowcount:
                        outcome.transitions.extend(_finish_chunk(cursor, when, timer=False, touched=True))
            held_ids = [r[0] for r in held]
            if high == LOCK_BUCKETS - 1:
                cursor.execute(f"DELETE FROM {PENDING_TABLE} WHERE id = ANY(%s)", [held_ids])
            else:
                cursor.execute(f"UPDATE {PENDING_TABLE} SET done_buckets = %s WHERE id = ANY(%s)", [high, held_ids])
    return outcome


def bucket_ranges(total: int, size: int = CHUNK_PAIRS) -> list[tuple[int, int]]:
    """Inclusive ranges of user buckets that split `total` pairs into chunks of about `size` (at least one range:
    they always cover every bucket)."""
    chunks = max(1, min(LOCK_BUCKETS, -(-total // size)))
    bounds = [LOCK_BUCKETS * i // chunks for i in range(chunks + 1)]
    return [(low, high - 1) for low, high in pairwise(bounds)]


SEGMENT_USERS_SQL = f"""
INSERT INTO {PAIRS} (segment_id, user_id, trigger)
SELECT DISTINCT %s::bigint, user_id, '' FROM segments_event
WHERE event_type = %s AND event_time > %s AND {BUCKET} BETWEEN %s AND %s
"""


def evaluate_segment_users(
    segment_id: int,
    event_type: str,
    *,
    since: datetime,
    now: datetime | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Outcome:
    """A new or changed independent segment, for every user with an event of its type since `since`: streamed
    in chunks of user buckets (the users never sit in memory), each chunk one transaction."""
    when = now or timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(DISTINCT user_id) FROM segments_event WHERE event_type = %s AND event_time > %s",
            [event_type, since],
        )
        total = int(cursor.fetchone()[0])
    outcome = Outcome(pairs=total)
    ranges = bucket_ranges(total) if total else []
    for done, (low, high) in enumerate(ranges, start=1):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(PAIRS_TABLE)
            cursor.execute(SEGMENT_USERS_SQL, [segment_id, event_type, since, low, high])
            if cursor.rowcount:
                cursor.execute(READERS_SQL)
                outcome.transitions.extend(_finish_chunk(cursor, when, timer=False))
        if progress is not None:
            progress(done, len(ranges))
    return outcome


def evaluate_derived_all(*, now: datetime | None = None, progress: Callable[[int, int], None] | None = None) -> Outcome:
    """Derived segments for every user with a membership or a window state, streamed by user buckets."""
    when = now or timezone.now()
    source = "(SELECT user_id FROM segments_membership UNION SELECT user_id FROM segments_windowstate) u"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {source}")
        total = int(cursor.fetchone()[0])
    outcome = Outcome(pairs=total)
    ranges = bucket_ranges(total) if total else []
    for done, (low, high) in enumerate(ranges, start=1):
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT user_id FROM {source} WHERE {BUCKET} BETWEEN %s AND %s", [low, high])
            users = [row[0] for row in cursor.fetchall()]
        outcome.transitions.extend(evaluate_derived_for(users, now=when).transitions)
        if progress is not None:
            progress(done, len(ranges))
    return outcome


def evaluate_derived_for(users: Sequence[str], *, now: datetime | None = None) -> Outcome:
    """Re-evaluate derived segments only (a derived segment was created or changed)."""
    from segments import triggers as campaign_triggers

    when = now or timezone.now()
    outcome = Outcome(pairs=len(users))
    ordered = sorted(set(users))
    for start in range(0, len(ordered), CHUNK_PAIRS):
        chunk = ordered[start : start + CHUNK_PAIRS]
        with transaction.atomic():
            lock_users(chunk)
            transitions = _derived(rules_mod.load(), chunk, when)
            _write(transitions)
            campaign_triggers.enqueue_sends(transitions, now=when)
        outcome.transitions.extend(transitions)
    return outcome


# The windows whose aggregates change by themselves now (the due-time index; never all users), each with every
# active rule that reads it: those are the pairs a timer pass evaluates.
DUE_SQL = f"""
SELECT r.id, s.user_id, s.id
FROM (SELECT id, user_id, event_type, window_minutes, property FROM segments_windowstate
      WHERE due_at <= %s ORDER BY due_at LIMIT %s) s
JOIN segments_segment r ON r.active AND r.kind = 'independent' AND {SAME_WINDOW}
"""

# Due windows no active rule reads any more (their segments were deactivated, deleted or changed): they go.
ORPHANS_SQL = f"""
DELETE FROM segments_windowstate s WHERE s.due_at <= %s
  AND NOT EXISTS (SELECT 1 FROM segments_segment r WHERE r.active AND r.kind = 'independent' AND {SAME_WINDOW})
"""


def due_pairs(now: datetime, limit: int) -> tuple[list[tuple[int, str]], int]:
    """The pairs of up to `limit` due windows (oldest due first), and how many windows had a reader."""
    with connection.cursor() as cursor:
        cursor.execute(DUE_SQL, [now, limit])
        rows = cursor.fetchall()
    return [(row[0], row[1]) for row in rows], len({row[2] for row in rows})


def run_timers(*, now: datetime | None = None, limit: int = 50_000) -> Outcome:
    """Evaluate the pairs whose window changes by itself now, `limit` windows at a time."""
    when = now or timezone.now()
    total = Outcome()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(ORPHANS_SQL, [when])
    while True:
        pairs, windows = due_pairs(when, limit)
        if not pairs:
            return total
        outcome = evaluate_pairs(pairs, now=when, timer=True)
        total.transitions.extend(outcome.transitions)
        total.pairs += outcome.pairs
        if windows < limit:
            return total
