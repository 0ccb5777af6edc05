"""Reads of audience insights: the contract's payload for an audience or a builder tree, count history, lineage.

All figures come from the builder's cache (exact, whole universe). An audience's members are its membership
mask: an imported audience's current version (people deduplicated by email as in the builder's universe), a built
audience's materialised members.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import polars as pl
from django.db.models import Sum

from audiences import cache
from audiences.catalogue import audience_refs, make_resolver
from audiences.insights import composition as comp
from audiences.insights import freshness, quality, similarity, usage
from audiences.logic.polars_engine import evaluate
from audiences.logic.tree import parse
from audiences.models import Audience, AudienceKind, ImportStatus
from audiences.preview import _frame_for, _membership


def audience_mask(entry: cache.Entry, audience: Audience) -> pl.Series:
    return _membership(entry, audience_refs().get(audience.pk))


def tree_mask(entry: cache.Entry, tree: Any) -> pl.Series:
    """The tree's members (raises TreeError for a bad tree, with node paths)."""
    refs = audience_refs()
    node = parse(tree, make_resolver(entry.custom), audience_ids=set(refs))
    return evaluate(_frame_for(entry, node, refs), node, entry.strings, per_node=False).mask


def _import_totals(audience: Audience) -> tuple[int | None, int | None]:
    if audience.kind != AudienceKind.IMPORTED:
        return None, None
    totals = audience.imports.filter(status=ImportStatus.SUCCEEDED).aggregate(  # type: ignore[attr-defined]
        read=Sum("rows_read"), dupes=Sum("duplicates")
    )
    return totals["dupes"], totals["read"]


MEMO_ENTRIES = 64
QUALITY_MEMO_SECONDS = 60


def _memo(entry: cache.Entry, key: tuple[Any, ...], compute: Any) -> Any:
    """Per cache entry (one data generation of the org): analytics of one audience generation are computed once."""
    with entry.lock:
        memo = entry.stats.setdefault("insights", {})
        if key in memo:
            return memo[key]
    value = compute()
    with entry.lock:
        if len(memo) >= MEMO_ENTRIES:
            memo.clear()
        memo[key] = value
    return value


def _payload(
    entry: cache.Entry, mask: pl.Series, ctx: quality.Context, *, stale: bool, memo_key: tuple[Any, ...] | None = None
) -> dict[str, Any]:
    def charts() -> tuple[dict[str, Any], dict[str, Any], comp.Pass]:
        return comp.summary(entry, mask)  # one pass over the mask for every chart

    pending = not entry.bombora_ready  # read once: the loader may finish during this request
    if memo_key is None:
        shown, meta, counted = charts()
        scored = quality.score(entry, mask, ctx, counted)
    else:
        shown, meta, counted = _memo(entry, ("composition", pending, *memo_key), charts)
        # The quality score reads the clock (freshness): kept a minute at most; it reuses the charts' counts.
        minute = int(time.time() // QUALITY_MEMO_SECONDS)
        scored = copy.deepcopy(
            _memo(entry, ("quality", minute, *memo_key), lambda: quality.score(entry, mask, ctx, counted))
        )
    size = counted.size
    return {
        "size": size,
        "composition": copy.deepcopy(shown),
        "composition_meta": copy.deepcopy(meta),
        "quality": scored,
        "stale": stale,
        "data_changed_at": ctx.data_changed_at.isoformat() if ctx.data_changed_at else None,
        "bombora_week": entry.week.isoformat() if entry.week else None,
        # The cache is still reading this week's Bombora scores: the surging-topics chart is left out until then.
        "bombora_pending": pending and entry.week is not None,
        "universe": entry.height,
    }


def audience_insights(audience: Audience) -> dict[str, Any]:
    """GET .../audiences/<id>/insights (CONTRACT "Audience insights"), plus labels, meta and timing."""
    started = time.perf_counter()
    entry, cache_stale = cache.get()
    mask = audience_mask(entry, audience)
    changed = freshness.data_changed_at(audience)
    dupes, read = _import_totals(audience)
    ctx = quality.Context(
        data_changed_at=changed, stale_days=freshness.stale_days(), duplicates_removed=dupes, rows_read=read
    )
    generation = audience.materialized_at.isoformat() if audience.materialized_at else audience.current_version_id
    memo_key = (audience.pk, audience.kind, generation, changed.isoformat() if changed else None, dupes, read)
    payload = _payload(entry, mask, ctx, stale=freshness.is_stale(changed), memo_key=memo_key)
    payload.update(
        {
            "id": audience.pk,
            "name": audience.name,
            "kind": audience.kind,
            "stale_days": freshness.stale_days(),
            "labels": {b.field: b.label for b in comp.BREAKDOWNS},
            "cache_stale": cache_stale,
            "elapsed_ms": round((time.perf_counter() - started) * 1000, 3),
        }
    )
    return payload


def tree_insights(tree: Any) -> dict[str, Any]:
    """POST .../audiences/insights {"tree"}: the same analytics for the builder's unsaved tree."""
    started = time.perf_counter()
    entry, cache_stale = cache.get()
    mask = tree_mask(entry, tree)
    ctx = quality.Context(data_changed_at=None, stale_days=freshness.stale_days())
    payload = _payload(entry, mask, ctx, stale=False)
    # An unsaved tree has no data of its own: its freshness part is the universe's latest import.
    payload["quality"]["parts"]["freshness"]["note"] = "an unsaved tree: saved audiences track their own freshness"
    payload.update(
        {
            "labels": {b.field: b.label for b in comp.BREAKDOWNS},
            "cache_stale": cache_stale,
            "elapsed_ms": round((time.perf_counter() - started) * 1000, 3),
        }
    )
    return payload


def breakdown_rows(audience: Audience, field: str) -> list[dict[str, Any]]:
    """Every value of one chart (uncapped), for its CSV download. KeyError for an unknown field."""
    spec = comp.BREAKDOWNS_BY_FIELD[field]
    entry, _ = cache.get()
    return comp.breakdown(entry, audience_mask(entry, audience), spec)


def count_history(audience: Audience) -> list[dict[str, Any]]:
    """Built: every materialisation's count. Imported: each version's record count when it was made."""
    if audience.kind == AudienceKind.BUILT:
        return [
            {"at": c.at.isoformat(), "count": c.count, "reason": c.reason}
            for c in audience.count_history.order_by("at", "id")[:1000]  # type: ignore[attr-defined]
        ]
    return [
        {"at": v.created_at.isoformat(), "count": v.record_count, "reason": f"version {v.number}: {v.note}".strip(": ")}
        for v in audience.versions.order_by("number")[:1000]  # type: ignore[attr-defined]
    ]


def most_similar(audience: Audience, *, limit: int = 5) -> list[dict[str, Any]]:
    """Memoised per data generation: the cache entry (imports, Bombora) and the built audiences' materialisations."""
    from django.db.models import Count, Max

    entry, _ = cache.get()
    built = Audience.objects.filter(kind=AudienceKind.BUILT).aggregate(n=Count("id"), at=Max("materialized_at"))
    others = Audience.objects.aggregate(n=Count("id"), top=Max("id"))
    generation = audience.materialized_at.isoformat() if audience.materialized_at else audience.current_version_id
    key = ("similar", audience.pk, generation, limit, built["n"], str(built["at"]), others["n"], others["top"])
    found = _memo(
        entry, key, lambda: similarity.most_similar(entry, audience.pk, audience_mask(entry, audience), limit=limit)
    )
    return copy.deepcopy(found)  # type: ignore[no-any-return]


def audience_usage(audience: Audience, org_id: int) -> dict[str, Any]:
    """GET .../audiences/<id>/usage: lineage both ways, count history, and the audit trail."""
    return {
        "id": audience.pk,
        "used_by": usage.used_by(audience),
        "built_from": usage.built_from(audience),
        "count_history": count_history(audience),
        "activity": usage.activity(audience, org_id),
        **freshness.freshness(audience),
    }
