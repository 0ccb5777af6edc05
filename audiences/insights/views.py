"""Marketer pages of audience insights: the insights section of an audience page, one chart's CSV, the
similarity page and the exclusion helper. Figures come from audiences.insights.selectors (the API's too)."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from audiences.insights import selectors, services, similarity
from audiences.insights.composition import BREAKDOWNS, BREAKDOWNS_BY_FIELD
from audiences.logic.tree import TreeError
from audiences.models import Audience
from p360.core.exports import neutralise  # page downloads are opened by people: formula-safe
from tenants.services import ServiceError

CHART_WIDTH = 100.0  # percent


def _base(request: HttpRequest) -> str:
    return f"/o/{request.org.slug}/audiences/"  # type: ignore[attr-defined]


def bars(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows with the bar's width (share of the largest count) and a label for the missing value."""
    top = max((r["count"] for r in rows), default=0) or 1
    return [
        {
            **r,
            "label": "(missing)" if r["value"] is None else str(r["value"]),
            "width": round(CHART_WIDTH * r["count"] / top, 2),
        }
        for r in rows
    ]


PART_LABELS = {
    "completeness": "Completeness",
    "validity": "Validity",
    "uid2_ready": "UID2-ready",
    "freshness": "Freshness",
    "bombora_freshness": "Bombora week",
    "duplicates": "Duplicates",
    "size": "Size",
}


def _when(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


def history_points(history: list[dict[str, Any]], width: int = 600, height: int = 140) -> dict[str, Any]:
    """An SVG polyline of the count history (x: order of the refreshes, y: count); one point is a flat line."""
    if not history:
        return {"points": "", "width": width, "height": height, "max": 0, "min": 0}
    counts = [h["count"] for h in history]
    if len(counts) == 1:
        counts = counts * 2
    high, low = max(counts), min(counts)
    span = (high - low) or 1
    step = width / max(1, len(counts) - 1)
    points = " ".join(
        f"{round(i * step, 1)},{round(height - 10 - (c - low) / span * (height - 20), 1)}" for i, c in enumerate(counts)
    )
    return {"points": points, "width": width, "height": height, "max": high, "min": low}


def insights_context(request: HttpRequest, audience: Audience) -> dict[str, Any]:
    """Everything the insights section of an audience page shows (one cache pass)."""
    data = selectors.audience_insights(audience)
    charts = [
        {
            "field": spec.field,
            "label": spec.label,
            "rows": bars(data["composition"][spec.field]),
            "meta": data["composition_meta"][spec.field],
        }
        for spec in BREAKDOWNS
    ]
    services.audience_viewed(audience=audience, actor=request.user, org=request.org, surface="page")  # type: ignore[arg-type,attr-defined]
    history = [{**h, "when": _when(h["at"])} for h in selectors.count_history(audience)]
    usage = selectors.audience_usage(audience, request.org.pk)  # type: ignore[attr-defined]
    usage["activity"] = [{**a, "when": _when(a["at"])} for a in usage["activity"]]
    return {
        "insights": data,
        "charts": charts,
        "quality_parts": [
            {"name": name, "label": PART_LABELS.get(name, name), **part}
            for name, part in data["quality"]["parts"].items()
        ],
        "changed_at": _when(data["data_changed_at"]),
        "similar": selectors.most_similar(audience),
        "history": history,
        "history_chart": history_points(history),
        "usage": usage,
        "others": list(Audience.objects.exclude(pk=audience.pk).order_by("name").values("pk", "name")[:500]),
    }


def chart_csv(request: HttpRequest, pk: int, field: str) -> HttpResponse:
    """One chart's full breakdown (every value, not only those drawn) as CSV."""
    audience = get_object_or_404(Audience, pk=pk)
    if field not in BREAKDOWNS_BY_FIELD:
        raise Http404("No such chart.")
    rows = selectors.breakdown_rows(audience, field)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([field, "count"])
    for row in rows:
        writer.writerow([neutralise(row["value"]) if row["value"] is not None else "", row["count"]])
    response = HttpResponse(buffer.getvalue(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="audience-{audience.pk}-{field}.csv"'
    services.audience_exported(
        audience=audience,
        actor=request.user,  # type: ignore[arg-type]
        org=request.org,  # type: ignore[attr-defined]
        what=f"chart:{field}",
        fmt="csv",
        rows=len(rows),
    )
    return response


def similarity_page(request: HttpRequest) -> HttpResponse:
    """Compare two audiences: overlap, Jaccard, and circles sized by audience."""
    choices = list(Audience.objects.order_by("name").values("pk", "name", "record_count")[:500])
    existing = {c["pk"] for c in choices}
    picked: list[int] = []
    for key in ("a", "b"):
        raw = request.GET.get(key, "").strip()
        picked.append(int(raw) if raw.isdecimal() and int(raw) in existing else 0)  # isdigit() lets "²" crash int()
    result = None
    error = ""
    if all(picked):
        if picked[0] == picked[1]:
            error = "Choose two different audiences."
        else:
            result = similarity.compare(picked[0], picked[1])
    context = {"choices": choices, "a": picked[0], "b": picked[1], "result": result, "error": error,
               "base": _base(request)}  # fmt: skip
    return render(request, "audiences/similarity.html", context)


@require_POST
def exclude_view(request: HttpRequest, pk: int) -> HttpResponse:
    """ "Remove members of X": save `<audience> without <X>` and open it."""
    base = get_object_or_404(Audience, pk=pk)
    raw = request.POST.getlist("exclude")
    ids = [int(v) for v in raw if v.isdecimal()]  # not isdigit(): int("²") raises
    try:
        result = services.exclusion_create(
            base=base,
            exclude=ids,
            actor=request.user,  # type: ignore[arg-type]
            name=request.POST.get("name", ""),
            save=True,
        )
    except (ServiceError, TreeError) as exc:
        messages.error(request, str(exc))
        return redirect(f"{_base(request)}{pk}/")
    saved = result["audience"]
    messages.success(request, f"Saved “{saved.name}”: {saved.record_count:,} members.")
    return redirect(f"{_base(request)}{saved.pk}/")
