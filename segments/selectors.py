"""Segment reads: memberships, history, statistics, the backtest."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from p360.core.exports import neutralise
from segments.models import Membership, Segment, Send, Transition, TriggerCampaign, UserProfile
from segments.rules import expression_children

SQL_OPERATORS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<=", "eq": "=", "neq": "<>"}


def user_segments(user_id: str) -> list[dict[str, Any]]:
    """The user's current segments (active ones), by name: one statement, no ORM query building (the hot read)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT m.segment_id, s.name, m.entered_at, m.rule_version FROM segments_membership m "
            "JOIN segments_segment s ON s.id = m.segment_id WHERE m.user_id = %s AND s.active ORDER BY s.name",
            [user_id],
        )
        rows = cursor.fetchall()
    return [
        {"id": seg, "name": name, "entered_at": entered, "rule_version": version}
        for seg, name, entered, version in rows
    ]


def profile(user_id: str) -> UserProfile | None:
    return UserProfile.objects.filter(user_id=user_id).first()


def members(segment: Segment) -> QuerySet[Membership]:
    return Membership.objects.filter(segment=segment).order_by("user_id")


def iter_members_csv(segment: Segment, *, for_people: bool = False) -> Iterator[str]:
    """The members as CSV, streamed: the generator runs after the view returned, so it re-enters the org's schema
    itself.

    The API's file is a machine file: every user id exactly as stored (docs/trust.md). `for_people` (the segment
    page's download) applies the people's CSV rule of `p360.core.exports`: an id a spreadsheet would evaluate
    (`=`, `+`, `-`, `@`, tab or CR, not a plain number) gets a leading `'`."""
    return _members_csv(segment, connection.schema_name, for_people=for_people)  # type: ignore[attr-defined]


def _members_csv(segment: Segment, schema: str, *, for_people: bool) -> Iterator[str]:
    from django_tenants.utils import schema_context

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")  # quotes only what CSV needs (commas, quotes, newlines)
    writer.writerow(["user_id", "entered_at", "rule_version"])
    yield buffer.getvalue()
    with schema_context(schema), connection.cursor() as cursor:
        cursor.execute(
            "SELECT user_id, entered_at, rule_version FROM segments_membership WHERE segment_id = %s ORDER BY user_id",
            [segment.pk],
        )
        while rows := cursor.fetchmany(5000):
            buffer.seek(0)
            buffer.truncate()
            for user_id, entered_at, version in rows:
                writer.writerow([neutralise(user_id) if for_people else user_id, entered_at.isoformat(), version])
            yield buffer.getvalue()


def history(segment: Segment, user_id: str | None = None) -> QuerySet[Transition]:
    rows = Transition.objects.filter(segment=segment)
    if user_id:
        rows = rows.filter(user_id=user_id)
    return rows.order_by("-id")


def transition_row(t: Transition) -> dict[str, Any]:
    return {
        "user_id": t.user_id,
        "kind": t.kind,
        "entered_at": t.entered_at,
        "exited_at": t.exited_at,
        "reason": t.reason,
        "rule_version": t.rule_version,
        "event_id": t.event_id or None,
    }


def per_hour(segment: Segment, hours: int = 48, now: datetime | None = None) -> list[dict[str, Any]]:
    since = (now or timezone.now()) - timedelta(hours=hours)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT date_trunc('hour', recorded_at) AS h, count(*) FILTER (WHERE kind = 'enter'), "
            "count(*) FILTER (WHERE kind = 'exit') FROM segments_transition "
            "WHERE segment_id = %s AND recorded_at >= %s GROUP BY h ORDER BY h",
            [segment.pk, since],
        )
        return [{"hour": h, "entries": e, "exits": x} for h, e, x in cursor.fetchall()]


def statistics(segment: Segment) -> dict[str, Any]:
    totals = Transition.objects.filter(segment=segment).aggregate(
        entries=Count("id", filter=Q(kind=Transition.Kind.ENTER)),
        exits=Count("id", filter=Q(kind=Transition.Kind.EXIT)),
    )
    return {
        "members": Membership.objects.filter(segment=segment).count(),
        "entries": totals["entries"],
        "exits": totals["exits"],
        "per_hour": per_hour(segment),
    }


def member_counts(segment_ids: list[int] | None = None) -> dict[int, int]:
    rows = Membership.objects.values("segment_id").annotate(n=Count("id"))
    if segment_ids is not None:
        rows = rows.filter(segment_id__in=segment_ids)
    return {r["segment_id"]: r["n"] for r in rows}


def backtest(rule: dict[str, Any], *, days: int, now: datetime | None = None) -> dict[str, Any]:
    """How a cleaned independent rule would have behaved over the stored events of the last `days` days.

    `users_matched`: users for whom the rule held at one of their event instants (for gt/gte rules those
    are exactly the instants it can start to hold); `holding_now`: users it holds for now, i.e. the
    members it would start with. Only users with events of the rule's type are considered (a "count < 3"
    rule also holds for users never seen, who are not counted).
    """
    when = now or timezone.now()
    op = SQL_OPERATORS[rule["operator"]]
    metric = {
        "count": "count(*) OVER w",
        "sum": "coalesce(sum(v) OVER w, 0)",
        "avg": "avg(v) OVER w",
        "min": "min(v) OVER w",
        "max": "max(v) OVER w",
        "distinct": "count(raw) OVER w",  # an upper bound: window functions cannot count distinct
    }[rule["attribute"]]
    window = timedelta(minutes=rule["window_minutes"]) - timedelta(microseconds=1)  # (t - W, t]
    sql = f"""
        WITH e AS (
            SELECT user_id, event_time, attributes ->> %(prop)s AS raw,
                   CASE WHEN jsonb_typeof(attributes -> %(prop)s) = 'number'
                        THEN (attributes ->> %(prop)s)::numeric END AS v
            FROM segments_event
            WHERE event_type = %(type)s AND event_time > %(since)s AND event_time <= %(now)s
        ), m AS (
            SELECT user_id, event_time, {metric} AS metric,
                   max(event_time) OVER (PARTITION BY user_id) AS last_time
            FROM e WINDOW w AS (PARTITION BY user_id ORDER BY event_time RANGE BETWEEN %(window)s PRECEDING AND CURRENT ROW)
        )
        SELECT count(DISTINCT user_id) FILTER (WHERE metric {op} %(value)s),
               count(*) FILTER (WHERE metric {op} %(value)s),
               count(DISTINCT user_id),
               count(*)
        FROM m
    """
    params: dict[str, Any] = {
        "prop": rule.get("property") or "value",
        "type": rule["event_type"],
        "since": when - timedelta(days=days),
        "now": when,
        "window": window,
        "value": Decimal(rule["value"]),
    }
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        matched, instants, users, events = cursor.fetchone()
        cursor.execute(
            f"""
            SELECT count(*) FROM (
                SELECT user_id, {metric.replace(" OVER w", "")} AS metric
                FROM (
                    SELECT user_id, attributes ->> %(prop)s AS raw,
                           CASE WHEN jsonb_typeof(attributes -> %(prop)s) = 'number'
                                THEN (attributes ->> %(prop)s)::numeric END AS v
                    FROM segments_event
                    WHERE event_type = %(type)s AND event_time > %(now)s - %(window_full)s AND event_time <= %(now)s
                ) e GROUP BY user_id
            ) u WHERE metric {op} %(value)s
            """.replace("count(raw)", "count(DISTINCT raw)"),
            {**params, "window_full": timedelta(minutes=rule["window_minutes"])},  # type: ignore[dict-item]
        )
        holding_now = cursor.fetchone()[0]
    return {
        "days": days,
        "users_with_events": users,
        "events": events,
        "users_matched": matched,
        "matching_instants": instants,
        "holding_now": holding_now,
    }


def campaign_analytics(campaign: TriggerCampaign | None = None) -> list[dict[str, Any]]:
    rows = Send.objects.all()
    if campaign is not None:
        rows = rows.filter(campaign=campaign)
    out = rows.values("channel").annotate(
        total=Count("id"),
        sent=Count("id", filter=Q(status=Send.Status.SENT)),
        failed=Count("id", filter=Q(status=Send.Status.FAILED)),
        skipped=Count("id", filter=Q(status=Send.Status.SKIPPED)),
        pending=Count("id", filter=Q(status=Send.Status.PENDING)),
    )
    return sorted((dict(row) for row in out), key=lambda r: r["channel"])


def sends(*, campaign: int | None = None, channel: str | None = None, status: str | None = None) -> QuerySet[Send]:
    """The send history, newest first, narrowed by campaign, channel and status (each optional)."""
    rows = Send.objects.select_related("campaign").order_by("-id")
    if campaign is not None:
        rows = rows.filter(campaign_id=campaign)
    if channel:
        rows = rows.filter(channel=channel)
    if status:
        rows = rows.filter(status=status)
    return rows


def users_in_segments(cap: int = 100_000) -> tuple[int, bool]:
    """How many users are in at least one segment now, counted up to `cap` (and whether it was reached): the home
    page asks on every render, and a full distinct count over millions of memberships would take seconds."""
    counted = Membership.objects.values("user_id").distinct().order_by()[: cap + 1].count()
    return min(counted, cap), counted > cap


def recent_transitions(limit: int) -> list[Transition]:
    """The ledger's newest entries and exits (its primary key is its order)."""
    return list(Transition.objects.select_related("segment").order_by("-id")[:limit])


def user_history(user_id: str) -> QuerySet[Transition]:
    return Transition.objects.filter(user_id=user_id).select_related("segment").order_by("-id")


# --- Readable definitions (pages) ------------------------------------------------------------------


OPERATOR_WORDS = {
    "gt": "more than",
    "gte": "at least",
    "lt": "fewer than",
    "lte": "at most",
    "eq": "exactly",
    "neq": "not",
}


def window_words(minutes: int) -> str:
    """1440 -> "24 hours", 90 -> "90 minutes", 60 -> "hour"."""
    if minutes == 60:
        return "hour"
    if minutes % 60 == 0:
        return f"{minutes // 60} hours"
    return f"{minutes} minutes"


def describe(segment: Segment, names: dict[int, str] | None = None) -> str:
    """The segment's definition as a marketer reads it: "count of orders at least 3 in the last 24 hours";
    a derived one names its children: "all of (A, any of (B, not C))"."""
    if segment.kind != Segment.Kind.DERIVED:
        value = format(segment.value.normalize(), "f") if segment.value is not None else "?"
        measure = segment.event_type if segment.attribute == "count" else f"{segment.property} of {segment.event_type}"
        words = OPERATOR_WORDS.get(segment.operator, segment.operator)
        return (
            f"{segment.attribute} of {measure}: {words} {value} in the last {window_words(segment.window_minutes or 0)}"
        )
    if names is None:
        children = expression_children(segment.expression or {})
        names = dict(Segment.objects.filter(pk__in=children).values_list("pk", "name"))
    return _describe_expression(segment.expression or {}, names)


def _describe_expression(expression: dict[str, Any], names: dict[int, str]) -> str:
    parts = [
        _segment_name(int(child["segment"]), names) if "segment" in child else _describe_expression(child, names)
        for child in expression.get("children", [])
    ]
    op = expression.get("op", "and")
    if op == "not":
        return f"not {parts[0]}" if parts else "not ()"
    return f"{'all' if op == 'and' else 'any'} of ({', '.join(parts)})"


def _segment_name(pk: int, names: dict[int, str]) -> str:
    return f"“{names.get(pk, f'segment {pk}')}”"


def hourly_series(segment: Segment, hours: int = 48, now: datetime | None = None) -> list[dict[str, Any]]:
    """per_hour with the empty hours filled in, oldest first: a chart's x axis must not skip quiet hours."""
    when = (now or timezone.now()).replace(minute=0, second=0, microsecond=0)
    counted = {row["hour"]: row for row in per_hour(segment, hours=hours, now=now)}
    series = []
    for back in range(hours - 1, -1, -1):
        hour = when - timedelta(hours=back)
        row = counted.get(hour, {"entries": 0, "exits": 0})
        series.append({"hour": hour, "entries": row["entries"], "exits": row["exits"]})
    return series
