"""Saved (built) audiences follow the event segments their tree names (issue 13, the `segment` builder field).

A built audience is a materialisation: its members are rows of `audiences_builtmember`, written when it is saved
or refreshed. When an evaluation pass changes the membership of segment S, the built audiences whose
`segment_ids` hold S are stale; this module marks them and re-materialises them later, outside the ingest path:

1. `memberships_changed(transitions)` is called by the evaluator where it writes transitions (`evaluator._write`:
   inline ingest, the `segments_timers` loop, timer exits, the JetStream evaluator, re-evaluation, derived
   segments). It costs nothing when no built audience follows a changed segment: the set of followed segments
   is cached per org in the process (`_followed`, re-read every SEGMENT_AUDIENCE_LOOKUP_SECONDS, forgotten at once
   when this process saves an audience). Otherwise one statement, in the evaluator's transaction, inserts one
   `audiences_segmentchange` row per segment (present already: no write), due SEGMENT_AUDIENCE_REFRESH_SECONDS
   later. The first change opens the window; the later ones coalesce into it.
2. A scheduled sweep (`start_due_all_orgs`, every minute) starts one `segments.refresh_audiences` job per org with
   a due row; the job (`refresh_due`) takes the due rows and refreshes every built audience following one of
   those segments with `audiences.saved.built_audience_refresh` (reason "segment membership changed", audited),
   then the audiences derived from them (`parent_ids`). A tree that no longer validates (a deleted segment)
   records `refresh_error` and keeps its members, as any refresh does.

Why the row lock dance: the evaluator takes a KEY SHARE lock on an existing row (shared between evaluators, so
they never wait for each other), and the job's DELETE waits for it. So a change whose transaction has not
committed when the job takes the row keeps the row (the job waits, then the change is in the job's snapshot),
and a change committed after the job took it inserts a new row: no change is ever lost between the two.

A process that has not yet seen a new audience's segments (its cache is up to SEGMENT_AUDIENCE_LOOKUP_SECONDS old)
would not mark them: saving an audience that follows segments therefore marks them itself, due after both
delays, so the audience gets one refresh after the window in which a change could have been missed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Q
from django.utils import timezone

from audiences.models import Audience, AudienceKind, SegmentChange
from p360.core.jobs.dispatch import org_task
from tenants.services import ServiceError

logger = logging.getLogger(__name__)
REASON = "segment membership changed"
TABLE = SegmentChange._meta.db_table

# {"database/schema": (monotonic expiry, segment ids some built audience follows)}: an org is a schema of one
# database (a process may talk to two, e.g. the bench's and the portal's)
_followed: dict[str, tuple[float, frozenset[int]]] = {}

FOLLOWED_SQL = (
    "SELECT DISTINCT jsonb_array_elements(segment_ids)::bigint FROM audiences_audience "
    "WHERE kind = 'built' AND tree IS NOT NULL AND segment_ids <> '[]'::jsonb"
)

# Existing rows: KEY SHARE-locked, not written (see the module docstring); missing rows: inserted.
MARK_SQL = f"""
WITH held AS (SELECT segment_id FROM {TABLE} WHERE segment_id = ANY(%(ids)s::bigint[]) FOR KEY SHARE)
INSERT INTO {TABLE} (segment_id, due_at, marked_at)
SELECT s, %(due)s, %(now)s FROM unnest(%(ids)s::bigint[]) s WHERE s NOT IN (SELECT segment_id FROM held)
ON CONFLICT (segment_id) DO NOTHING
"""


def refresh_seconds() -> int:
    return max(0, int(getattr(settings, "SEGMENT_AUDIENCE_REFRESH_SECONDS", 300)))


def lookup_seconds() -> int:
    return max(0, int(getattr(settings, "SEGMENT_AUDIENCE_LOOKUP_SECONDS", 30)))


def cache_key() -> str:
    """The current org's key in the process cache: its database and schema."""
    return f"{connection.settings_dict['NAME']}/{connection.schema_name}"  # type: ignore[attr-defined]


def followed_segments() -> frozenset[int]:
    """The segment ids some built audience of the current org follows (cached per process, see the docstring)."""
    key = cache_key()
    now = time.monotonic()
    cached = _followed.get(key)
    if cached is not None and cached[0] > now:
        return cached[1]
    with connection.cursor() as cursor:
        cursor.execute(FOLLOWED_SQL)
        ids = frozenset(int(row[0]) for row in cursor.fetchall())
    _followed[key] = (now + lookup_seconds(), ids)
    return ids


def forget(key: str | None = None) -> None:
    """Drop the cached followed segments (of one org's `cache_key()`, or all): the next pass reads them again."""
    if key is None:
        _followed.clear()
    else:
        _followed.pop(key, None)


def memberships_changed(transitions: Sequence[Any]) -> int:
    """The evaluator wrote these transitions (in its transaction): mark the segments built audiences follow.

    Returns how many segments were marked (0, with no statement, when no built audience follows one)."""
    if not transitions:
        return 0
    followed = followed_segments()
    if not followed:
        return 0
    return segments_changed({t.segment_id for t in transitions} & followed)


def segments_changed(segment_ids: Iterable[int], *, due_at: datetime | None = None) -> int:
    """Mark segments as changed (the caller's transaction); their followers refresh at `due_at` (default: after the
    debounce window). A segment already marked keeps its earlier due time. Returns the segments given."""
    ids = sorted({int(i) for i in segment_ids})
    if not ids:
        return 0
    now = timezone.now()
    due = due_at if due_at is not None else now + timedelta(seconds=refresh_seconds())
    with connection.cursor() as cursor:
        cursor.execute(MARK_SQL, {"ids": ids, "due": due, "now": now})
    return len(ids)


def audience_saved(audience: Audience, *, follows_changed: bool) -> None:
    """An audience was saved in this process: forget the cached followed segments; when it starts following
    segments, mark them due after both delays (other processes may not have seen them yet)."""
    forget(cache_key())
    if not follows_changed or audience.kind != AudienceKind.BUILT or not audience.segment_ids:
        return
    due = timezone.now() + timedelta(seconds=max(lookup_seconds(), refresh_seconds()))
    with connection.cursor() as cursor:  # a later due time than a mark already there wins (it covers both)
        cursor.execute(
            f"INSERT INTO {TABLE} (segment_id, due_at, marked_at) SELECT s, %(due)s, now() "
            "FROM unnest(%(ids)s::bigint[]) s "
            f"ON CONFLICT (segment_id) DO UPDATE SET due_at = greatest({TABLE}.due_at, EXCLUDED.due_at)",
            {"ids": [int(i) for i in audience.segment_ids], "due": due},
        )


def followers(segment_ids: Iterable[int]) -> list[Audience]:
    """Built audiences following any of the segments (GIN `segment_ids @> [S]`), in id order."""
    return _built_naming("segment_ids", segment_ids)


def _derived_from(ids: set[int], done: set[int]) -> list[Audience]:
    """Built audiences whose tree names one of `ids` (`audience in [...]`), not refreshed yet in this pass."""
    return _built_naming("parent_ids", ids, exclude=done)


def _built_naming(field: str, ids: Iterable[int], *, exclude: Iterable[int] = ()) -> list[Audience]:
    """Built audiences whose `field` (a GIN-indexed id list kept by Audience.save) holds any of `ids`, in id order."""
    query = Q()
    for i in sorted(set(ids)):
        query |= Q(**{f"{field}__contains": [i]})
    if not query:
        return []
    rows = Audience.objects.filter(query, kind=AudienceKind.BUILT, tree__isnull=False).exclude(pk__in=list(exclude))
    return list(rows.order_by("id"))


def due_exists(now: datetime | None = None) -> bool:
    return SegmentChange.objects.filter(due_at__lte=now or timezone.now()).exists()


@org_task
def refresh_due(*, now: datetime | None = None) -> dict[str, Any]:
    """Take the due changes and refresh the built audiences following those segments, then the built audiences
    derived from those (their `audience` conditions read the refreshed members). Each audience is refreshed once
    per pass, in its own transaction. A failing tree records its error (members kept); an unexpected failure
    puts the segments back (due at once), so the next sweep tries again, and is raised after the others ran."""
    when = now or timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {TABLE} WHERE due_at <= %s RETURNING segment_id", [when])
        segments = sorted(int(row[0]) for row in cursor.fetchall())
    result: dict[str, Any] = {"segments": segments, "refreshed": [], "failed": [], "errors": {}}
    if not segments:
        return result
    detail = {"segments": segments}
    done: set[int] = set()
    pending = followers(segments)
    crashed: BaseException | None = None
    while pending:
        fresh: set[int] = set()
        for audience in pending:
            if audience.pk in done:
                continue
            done.add(audience.pk)
            try:
                built_refresh(audience, detail)
                result["refreshed"].append(audience.pk)
                fresh.add(audience.pk)
            except ServiceError as exc:  # the tree no longer validates: error recorded, members kept
                logger.warning("built audience %s not refreshed after a segment change: %s", audience.pk, exc)
                result["failed"].append(audience.pk)
                result["errors"][str(audience.pk)] = str(exc)[:300]
            except Exception as exc:  # a database error: retried by the next sweep
                logger.exception("built audience %s: refresh after a segment change failed", audience.pk)
                result["failed"].append(audience.pk)
                segments_changed(audience.segment_ids or segments, due_at=when)
                crashed = crashed or exc
        pending = _derived_from(fresh, done) if fresh else []
    if crashed is not None:
        raise crashed
    return result


def built_refresh(audience: Audience, detail: dict[str, Any]) -> int:
    from audiences.saved import built_audience_refresh

    return built_audience_refresh(audience=audience, actor=None, reason=REASON, detail=detail)


def start_due_all_orgs(now: datetime | None = None) -> int:
    """Scheduled (public schema, every minute): one `segments.refresh_audiences` job per org with due changes."""
    from django_tenants.utils import schema_context

    from p360.core.jobs.services import job_start
    from segments.commands import orgs_from

    when = now or timezone.now()
    started = 0
    for org in orgs_from(None):
        try:
            with schema_context(org.schema_name):
                due = due_exists(when)
            if due and not _job_open(org):
                params = {"due_by": when.isoformat()}
                job_start(kind="segments.refresh_audiences", org=org, params=params, max_attempts=2)
                started += 1
        except Exception:
            logger.exception("segment audience refresh: could not start the job of %s", org.slug)
    return started


def _job_open(org: Any) -> bool:
    """A refresh job of the org is still queued or running (a slow cluster must not pile one up per minute)."""
    from p360.core.jobs.models import Job, JobStatus

    open_statuses = [JobStatus.QUEUED, JobStatus.RUNNING]
    return Job.objects.filter(kind="segments.refresh_audiences", org=org, status__in=open_statuses).exists()


# --- surfaces ------------------------------------------------------------------------------------------------
def following(audience: Audience) -> dict[str, Any] | None:
    """What the audience page says about the segments a built audience follows (None: it follows none)."""
    from segments.models import Segment

    ids = [int(i) for i in audience.segment_ids or []]
    if audience.kind != AudienceKind.BUILT or not ids:
        return None
    names = dict(Segment.objects.filter(pk__in=ids).values_list("id", "name"))
    pending = SegmentChange.objects.filter(segment_id__in=ids).order_by("due_at").first()
    return {
        "segments": [{"id": i, "name": names.get(i), "missing": i not in names} for i in ids],
        "refreshed_at": audience.materialized_at,
        "refresh_due_at": pending.due_at if pending is not None else None,
        "window_minutes": round(refresh_seconds() / 60, 1),
    }
