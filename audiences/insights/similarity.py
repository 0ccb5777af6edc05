"""Similarity between audiences: overlap, union and Jaccard from the cache's membership masks, circles sized by
audience for a two-circle diagram, the most similar audiences of one audience, and the exclusion tree."""

from __future__ import annotations

import math
from typing import Any

import polars as pl

from audiences import cache
from audiences.catalogue import audience_refs
from audiences.models import Audience
from audiences.preview import _membership

MOST_SIMILAR_SCAN = 200  # audiences compared on an audience page (newest first)
CIRCLE_MAX_RADIUS = 90.0


def masks(entry: cache.Entry, ids: list[int]) -> dict[int, pl.Series]:
    refs = audience_refs()
    return {i: _membership(entry, refs.get(i)) for i in ids}


def pair_figures(a: pl.Series, b: pl.Series) -> dict[str, Any]:
    size_a, size_b = int(a.sum()), int(b.sum())
    overlap = int((a & b).sum())
    union = size_a + size_b - overlap
    return {
        "size_a": size_a,
        "size_b": size_b,
        "overlap": overlap,
        "union": union,
        "jaccard": round(overlap / union, 6) if union else 0.0,
        "share_of_a": round(overlap / size_a, 6) if size_a else 0.0,
        "share_of_b": round(overlap / size_b, 6) if size_b else 0.0,
    }


def _lens_area(r1: float, r2: float, d: float) -> float:
    if d >= r1 + r2:
        return 0.0
    if d <= abs(r1 - r2):
        return math.pi * min(r1, r2) ** 2
    a = r1 * r1 * math.acos((d * d + r1 * r1 - r2 * r2) / (2 * d * r1))
    b = r2 * r2 * math.acos((d * d + r2 * r2 - r1 * r1) / (2 * d * r2))
    c = 0.5 * math.sqrt(max(0.0, (-d + r1 + r2) * (d + r1 - r2) * (d - r1 + r2) * (d + r1 + r2)))
    return a + b - c


def circles(size_a: int, size_b: int, overlap: int) -> dict[str, float]:
    """Two circles whose areas are proportional to the sizes and whose lens is (about) the overlap."""
    biggest = max(size_a, size_b, 1)
    r1 = CIRCLE_MAX_RADIUS * math.sqrt(size_a / biggest)
    r2 = CIRCLE_MAX_RADIUS * math.sqrt(size_b / biggest)
    target = math.pi * CIRCLE_MAX_RADIUS**2 * overlap / biggest
    low, high = abs(r1 - r2), r1 + r2
    for _ in range(60):  # lens area falls as the centres move apart: bisect on the distance
        mid = (low + high) / 2
        if _lens_area(r1, r2, mid) > target:
            low = mid
        else:
            high = mid
    d = (low + high) / 2 if overlap else r1 + r2 + 10
    width = r1 + d + r2 + 20
    return {"r1": round(r1, 2), "r2": round(r2, 2), "cx1": round(r1 + 10, 2), "cx2": round(r1 + 10 + d, 2),
            "cy": round(CIRCLE_MAX_RADIUS + 10, 2), "width": round(width, 2), "height": round(2 * CIRCLE_MAX_RADIUS + 20, 2)}  # fmt: skip


def compare(a_id: int, b_id: int) -> dict[str, Any]:
    """Overlap and Jaccard of two audiences of this org (LookupError for an unknown id)."""
    names = dict(Audience.objects.filter(pk__in=[a_id, b_id]).values_list("id", "name"))
    for i in (a_id, b_id):
        if i not in names:
            raise LookupError(f"no audience with id {i} in this organisation")
    entry, _ = cache.get()
    found = masks(entry, [a_id, b_id])
    figures = pair_figures(found[a_id], found[b_id])
    return {
        "a": {"id": a_id, "name": names[a_id], "size": figures["size_a"]},
        "b": {"id": b_id, "name": names[b_id], "size": figures["size_b"]},
        **{k: v for k, v in figures.items() if k not in ("size_a", "size_b")},
        "circles": circles(figures["size_a"], figures["size_b"], figures["overlap"]),
    }


def most_similar(entry: cache.Entry, audience_id: int, mask: pl.Series, *, limit: int = 5) -> list[dict[str, Any]]:
    """The audiences sharing the most of this one's people, by Jaccard (ties: larger overlap, then name)."""
    others = list(
        Audience.objects.exclude(pk=audience_id).order_by("-updated_at").values_list("id", "name")[:MOST_SIMILAR_SCAN]
    )
    if not others:
        return []
    found = masks(entry, [i for i, _ in others])
    rows = []
    for other_id, name in others:
        figures = pair_figures(mask, found[other_id])
        if figures["overlap"]:
            rows.append({"id": other_id, "name": name, "size": figures["size_b"], "overlap": figures["overlap"],
                         "jaccard": figures["jaccard"]})  # fmt: skip
    rows.sort(key=lambda r: (-r["jaccard"], -r["overlap"], r["name"]))
    return rows[:limit]


def exclusion_tree(base_id: int, exclude_ids: list[int]) -> dict[str, Any]:
    """Members of `base_id` who are not in any of `exclude_ids`: the tree the builder and a saved audience use."""
    return {
        "op": "and",
        "children": [
            {"field": "audience", "operator": "in", "value": [base_id]},
            {"op": "not", "children": [{"field": "audience", "operator": "in", "value": list(exclude_ids)}]},
        ],
    }
