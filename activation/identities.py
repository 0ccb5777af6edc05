"""UID2 identities of an organisation: register the hashes its records carry, map them through the
operator (activation.uid2), record the outcome, and report match rates. Opt-outs are kept (status
`optout`) so every export and delivery can leave those people out (`optout_filter_sql`)."""

from __future__ import annotations

import datetime as dt
import io
import time
from collections.abc import Callable
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from activation.models import MatchStats
from activation.sources import audience_records_sql, org_records_sql, schema
from activation.uid2 import Item, Outcome, Uid2Settings, map_all
from audiences.models import Audience, AudienceKind
from p360.core.jobs.models import Job, JobStatus
from p360.core.jobs.services import job_start
from p360.core.tenancy import current_org

TABLE = "activation_uid2identity"
KINDS = (("email", "email_sha256"), ("phone", "phone_sha256"))


def _qualified() -> str:
    return f'"{schema()}".{TABLE}'


def optout_filter_sql(alias: str = "r") -> str:
    """A WHERE fragment: the record's email and phone are not opted out of UID2."""
    t = _qualified()
    return " AND ".join(
        f"NOT EXISTS (SELECT 1 FROM {t} o WHERE o.kind = '{kind}' AND o.hashed = {alias}.{column} "
        f"AND o.status = 'optout')"
        for kind, column in KINDS
    )


def source_sql(audience: Audience | None) -> str | None:
    return org_records_sql() if audience is None else audience_records_sql(audience)


# A stored match rate older than this is recomputed anyway: its `due` count moves with the clock.
MATCH_STATS_MAX_AGE = dt.timedelta(hours=1)
MATCH_JOB = "activation.match_stats"  # the job kind that recounts stored match figures in the background


def bump_revision() -> None:
    """Mark the identities changed (same transaction as the change): stored match figures are then recomputed."""
    with connection.cursor() as cursor:
        cursor.execute(
            f'INSERT INTO "{schema()}".activation_identityrevision (id, value) VALUES (1, 1) '
            "ON CONFLICT (id) DO UPDATE SET value = activation_identityrevision.value + 1"
        )


def revision() -> int:
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT value FROM "{schema()}".activation_identityrevision WHERE id = 1')
        row = cursor.fetchone()
    return int(row[0]) if row else 0


def register(audience: Audience | None) -> int:
    """Add the hashes the records carry that have no identity row yet (status pending); returns how many."""
    source = source_sql(audience)
    if source is None:
        return 0
    added = 0
    with connection.cursor() as cursor:
        for kind, column in KINDS:
            cursor.execute(
                f"INSERT INTO {_qualified()} (kind, hashed, status, uid2, previous_uid2, raw_reason) "
                f"SELECT DISTINCT '{kind}', r.{column}, 'pending', '', '', '' FROM {source} "
                f"WHERE r.{column} IS NOT NULL ON CONFLICT (kind, hashed) DO NOTHING"
            )
            added += cursor.rowcount
    if added:
        bump_revision()
    return added


def select_items(audience: Audience | None, *, due_only: bool) -> tuple[list[Item], int]:
    """The identities to map (emails first, then phones) and how many of them were mapped before."""
    source = source_sql(audience)
    if source is None:
        return [], 0
    due = "AND (i.status = 'pending' OR i.refresh_from <= clock_timestamp())" if due_only else ""
    items: list[Item] = []
    seen_before = 0
    with connection.cursor() as cursor:
        for kind, column in KINDS:
            cursor.execute(
                f"SELECT i.hashed, i.status FROM {_qualified()} i WHERE i.kind = '{kind}' {due} AND i.hashed IN "
                f"(SELECT r.{column} FROM {source} WHERE r.{column} IS NOT NULL) ORDER BY i.id"
            )
            for hashed, status in cursor.fetchall():
                items.append(Item(kind, hashed))
                seen_before += status != "pending"
    return items, seen_before


def _copy_text(value: str) -> str:
    """Escape a value for COPY's text format."""
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


@transaction.atomic
def write_outcomes(outcomes: list[Outcome]) -> None:
    """Record one batch's answers; a UID2 that changed keeps the one before it in `previous_uid2`."""
    buffer = io.StringIO()
    for o in outcomes:
        refresh = o.refresh_from.isoformat() if o.refresh_from else "\\N"
        reason = _copy_text(o.raw_reason[:64])  # the operator's text: a tab or backslash would break the COPY row
        buffer.write("\t".join([o.kind, o.hashed, o.status, o.uid2, o.previous, refresh, reason]) + "\n")
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE IF NOT EXISTS _uid2_out (kind text, hashed text, status text, uid2 text, "
            "previous text, refresh_from timestamptz, raw_reason text) ON COMMIT DROP"
        )
        cursor.execute("TRUNCATE _uid2_out")
        with cursor.copy("COPY _uid2_out FROM STDIN") as copy:  # type: ignore[attr-defined]
            copy.write(buffer.getvalue())
        cursor.execute("ANALYZE _uid2_out")  # without statistics the join below is planned as a nested loop
        cursor.execute(
            f"""UPDATE {_qualified()} i SET
                status = o.status,
                uid2 = CASE WHEN o.status = 'mapped' THEN o.uid2 ELSE '' END,
                previous_uid2 = CASE
                    WHEN o.status <> 'mapped' THEN i.previous_uid2
                    WHEN o.previous <> '' THEN o.previous
                    WHEN i.uid2 <> '' AND i.uid2 <> o.uid2 THEN i.uid2
                    ELSE i.previous_uid2 END,
                refresh_from = CASE WHEN o.status = 'mapped' THEN o.refresh_from
                    WHEN o.status = 'optout' THEN now() + interval '1 day' ELSE NULL END,
                mapped_at = now(),
                opted_out_at = CASE WHEN o.status = 'optout' THEN coalesce(i.opted_out_at, now()) ELSE NULL END,
                raw_reason = o.raw_reason
            FROM _uid2_out o WHERE i.kind = o.kind AND i.hashed = o.hashed"""
        )
    bump_revision()


def map_identities(
    *,
    audience: Audience | None,
    due_only: bool,
    conf: Uid2Settings,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Register, select and map; returns the contract's counts (`mapped`, `unmapped`, `opted_out`,
    `refreshed`, `match_rate`) plus `requests` and `retries`."""
    clock = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = round(timings.get(name, 0.0) + now - clock, 3)
        clock = now

    register(audience)
    lap("register")
    items, seen_before = select_items(audience, due_only=due_only)
    lap("select")
    counts = {"mapped": 0, "unmapped": 0, "opted_out": 0, "requests": 0, "retries": 0}
    done = 0
    for result in map_all(conf, items):
        lap("operator")
        write_outcomes(result.outcomes)
        lap("write")
        for o in result.outcomes:
            key = {"mapped": "mapped", "optout": "opted_out"}.get(o.status, "unmapped")
            counts[key] += 1
        counts["requests"] += result.attempts
        counts["retries"] += result.attempts - 1
        done += len(result.outcomes)
        if progress is not None:
            progress(done, len(items))
    stats = match_stats(audience)
    lap("match_rate")
    return {**counts, "refreshed": seen_before, "match_rate": stats["match_rate"], "records": stats["records"],
            "seconds": timings}  # fmt: skip


def _members_at(audience: Audience) -> dt.datetime | None:
    """When a built audience's members were last replaced (None for other kinds: their version says it)."""
    return audience.materialized_at if audience.kind == AudienceKind.BUILT else None


def _stored_is_current(stored: Any, audience: Audience, current_revision: int) -> bool:
    """Whether stored figures stand for the audience's records and identities as they are now (and are young)."""
    return bool(
        stored is not None
        and stored.version_id == audience.current_version_id
        and stored.members_at == _members_at(audience)
        and stored.revision == current_revision
        and timezone.now() - stored.computed_at < MATCH_STATS_MAX_AGE
    )


def match_stats(audience: Audience | None) -> dict[str, Any]:
    """An audience's match figures, stored per (records version, identity revision) and at most an hour old, counted
    here when they are not (jobs and commands; the audience page and API use `match_stats_for_view`, which never
    counts: the count takes seconds at 10M records)."""
    if audience is None:
        return compute_match_stats(None)
    stored = MatchStats.objects.filter(audience=audience).first()
    if _stored_is_current(stored, audience, revision()):
        return dict(stored.stats)  # type: ignore[union-attr]
    return refresh_match_stats(audience)


def refresh_match_stats(audience: Audience) -> dict[str, Any]:
    """Count the audience's match figures now and store them with the records version and identity revision read
    before the count (a change during the count leaves them marked stale, never wrongly current)."""
    current = revision()
    version_id = audience.current_version_id
    # read again, not taken from `audience` (loaded earlier): a refresh committed since then is counted below
    members_at = (
        Audience.objects.filter(pk=audience.pk).values_list("materialized_at", flat=True).first()
        if audience.kind == AudienceKind.BUILT
        else None
    )
    stats = compute_match_stats(audience)
    MatchStats.objects.update_or_create(
        audience=audience,
        defaults={
            "version_id": version_id,
            "members_at": members_at,
            "revision": current,
            "stats": stats,
            "computed_at": timezone.now(),
        },
    )
    return stats


def refresh_stale_match_stats(audience_id: int | None = None) -> int:
    """The background count (job `activation.match_stats`): one audience, or every audience of the current org whose
    stored figures are stale; figures that became current meanwhile (another job) are not counted again."""
    audiences = Audience.objects.all()
    if audience_id is not None:
        audiences = audiences.filter(pk=audience_id)
    else:  # only audiences someone has looked at (they have stored figures): the others are counted on first view
        audiences = audiences.filter(pk__in=MatchStats.objects.values("audience_id"))
    current = revision()
    counted = 0
    for audience in audiences.order_by("pk"):
        if not _stored_is_current(MatchStats.objects.filter(audience=audience).first(), audience, current):
            refresh_match_stats(audience)
            counted += 1
    return counted


def request_match_refresh(audience_id: int | None) -> bool:
    """Queue `activation.match_stats` for the current org (after the caller's transaction commits) unless one for the
    same audience (or for all) is already waiting; returns whether a job was queued."""
    org = current_org()
    if org is None:
        return False
    waiting = Job.objects.filter(kind=MATCH_JOB, org=org, status=JobStatus.QUEUED)
    if any(job.params.get("audience_id") in (None, audience_id) for job in waiting):
        return False
    job_start(kind=MATCH_JOB, org=org, params={"audience_id": audience_id}, max_attempts=2)
    return True


def match_stats_for_view(audience: Audience) -> dict[str, Any]:
    """The figures a page or API shows without counting: the stored ones with `state` "current"; when they are stale,
    the last stored ones with `state` "refreshing" (a background job recounts them); when there are none yet, empty
    figures with `state` "counting". A page view never waits on the count (3 s at 10M records)."""
    stored = MatchStats.objects.filter(audience=audience).first()
    if _stored_is_current(stored, audience, revision()):
        return {**stored.stats, "state": "current"}  # type: ignore[union-attr]
    request_match_refresh(audience.pk)
    # Read again: where the task queue runs jobs synchronously (tests, P360_Q_SYNC) the job has just stored them.
    fresh = MatchStats.objects.filter(audience=audience).first()
    if _stored_is_current(fresh, audience, revision()):
        return {**fresh.stats, "state": "current"}  # type: ignore[union-attr]
    if fresh is not None:
        return {**fresh.stats, "state": "refreshing"}
    return {"records": None, "mapped": None, "opted_out": None, "pending": None, "due": None, "match_rate": None,
            "computed_at": None, "state": "counting"}  # fmt: skip


def compute_match_stats(audience: Audience | None) -> dict[str, Any]:
    """Records, records with a mapped UID2 (and not opted out), opted-out records, the match rate."""
    source = source_sql(audience)
    empty = {"records": 0, "mapped": 0, "opted_out": 0, "pending": 0, "match_rate": 0.0, "due": 0}
    if source is None:
        return empty
    t = _qualified()
    sql = f"""SELECT count(*),
        count(*) FILTER (WHERE (e.status = 'mapped' OR p.status = 'mapped')
                         AND coalesce(e.status, '') <> 'optout' AND coalesce(p.status, '') <> 'optout'),
        count(*) FILTER (WHERE e.status = 'optout' OR p.status = 'optout'),
        count(*) FILTER (WHERE e.status = 'pending' OR p.status = 'pending'
                         OR (r.email_sha256 IS NOT NULL AND e.id IS NULL)
                         OR (r.phone_sha256 IS NOT NULL AND p.id IS NULL)),
        count(*) FILTER (WHERE e.refresh_from <= clock_timestamp() OR p.refresh_from <= clock_timestamp())
      FROM {source}
      LEFT JOIN {t} e ON e.kind = 'email' AND e.hashed = r.email_sha256
      LEFT JOIN {t} p ON p.kind = 'phone' AND p.hashed = r.phone_sha256"""
    with connection.cursor() as cursor:
        cursor.execute(sql)
        total, mapped, opted_out, pending, due = cursor.fetchone()
    return {
        "records": total,
        "mapped": mapped,
        "opted_out": opted_out,
        "pending": pending,
        "due": due,
        "match_rate": round(mapped / total, 4) if total else 0.0,
        "computed_at": timezone.now().isoformat(),
    }


def uid2s_sql(source: str) -> str:
    """SELECT of the distinct mapped UID2s of a record source, opt-outs left out (TTD exports)."""
    t = _qualified()
    return f"""SELECT DISTINCT i.uid2 FROM {source}
        JOIN {t} i ON (i.kind = 'email' AND i.hashed = r.email_sha256) OR (i.kind = 'phone' AND i.hashed = r.phone_sha256)
        WHERE i.status = 'mapped' AND {optout_filter_sql("r")}"""
