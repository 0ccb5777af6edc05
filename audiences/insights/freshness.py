"""When an audience's data last changed, and whether it is stale (older than P360_AUDIENCE_STALE_DAYS).

- Imported audience: when its current version was made (an import or a restore).
- Built audience: the last refresh at which its member count changed (the count history), else its last
  materialisation -- a daily refresh that finds the same members does not make old data fresh.
"""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

from django.conf import settings
from django.utils import timezone

from audiences.models import Audience, AudienceCount, AudienceKind

DEFAULT_STALE_DAYS = 30


def stale_days() -> int:
    return int(getattr(settings, "P360_AUDIENCE_STALE_DAYS", DEFAULT_STALE_DAYS))


def data_changed_at(audience: Audience) -> dt.datetime | None:
    if audience.kind == AudienceKind.BUILT:
        counts = list(
            AudienceCount.objects.filter(audience=audience).order_by("-at", "-id").values_list("at", "count")[:500]
        )
        return _last_change(counts, audience.materialized_at)
    version = audience.current_version
    if version is not None:
        return version.created_at
    return None


def is_stale(changed: dt.datetime | None, *, now: dt.datetime | None = None) -> bool:
    """No data yet counts as stale only for an audience that should have some (a version or a materialisation)."""
    if changed is None:
        return False
    return ((now or timezone.now()) - changed) > dt.timedelta(days=stale_days())


def freshness(audience: Audience) -> dict[str, Any]:
    changed = data_changed_at(audience)
    return {
        "data_changed_at": changed.isoformat() if changed else None,
        "stale": is_stale(changed),
        "stale_days": stale_days(),
    }


def list_freshness(audiences: list[Audience]) -> dict[int, dict[str, Any]]:
    """Freshness of a page of audiences: imported ones from their (select_related) version, built ones from one
    query over the count history (no query per row)."""
    built = [a.pk for a in audiences if a.kind == AudienceKind.BUILT]
    history: dict[int, list[tuple[dt.datetime, int]]] = {}
    for audience_id, at, count in (
        AudienceCount.objects.filter(audience_id__in=built)
        .order_by("audience_id", "-at", "-id")
        .values_list("audience_id", "at", "count")
    ):
        history.setdefault(audience_id, []).append((at, count))
    result = {}
    for audience in audiences:
        if audience.kind == AudienceKind.BUILT:
            changed = _last_change(history.get(audience.pk, []), audience.materialized_at)
        else:
            changed = audience.current_version.created_at if audience.current_version is not None else None
        result[audience.pk] = {"data_changed_at": changed, "stale": is_stale(changed)}
    return result


def _last_change(counts: list[tuple[dt.datetime, int]], fallback: dt.datetime | None) -> dt.datetime | None:
    """Newest first: the newest entry whose count differs from the one before it (else the oldest entry)."""
    if not counts:
        return fallback
    for (at, count), (_, older) in itertools.pairwise(counts):
        if count != older:
            return at
    return counts[-1][0]
