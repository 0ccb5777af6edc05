"""Marketer pages of the audience builder (issue 5, item 7): build, edit, templates, overlap.

The pages are thin: they check access (the org middleware already did; object lookups here run in the
org's schema, so another org's id is a 404), then hand the page a small JSON config. The browser talks to
the org API (fields, preview, saved audiences, templates, overlap) with the session and CSRF token, so the
pages and API clients share one implementation of every rule.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from audiences.models import Audience, AudienceKind
from tenants.services import ServiceError

MAX_OVERLAP = 3


def _urls(request: HttpRequest) -> dict[str, str]:
    slug = request.org.slug  # type: ignore[attr-defined]
    return {"pages": f"/o/{slug}/audiences/", "api": f"/o/{slug}/api/v1/"}


def _config(request: HttpRequest, **extra: Any) -> dict[str, Any]:
    urls = _urls(request)
    return {"pagesUrl": urls["pages"], "apiUrl": urls["api"], **extra}


def builder_new(request: HttpRequest) -> HttpResponse:
    """An empty builder, or one started from a template (?template=<id>)."""
    template_id = request.GET.get("template", "").strip()
    config = _config(request, audienceId=None, templateId=template_id or None)
    context = {"config": config, "audience": None, "base": _urls(request)["pages"]}
    return render(request, "audiences/builder.html", context)


def builder_edit(request: HttpRequest, pk: int) -> HttpResponse:
    """The builder on a saved (built) audience: the tree is loaded from the API, saving makes a new version."""
    audience = get_object_or_404(Audience, pk=pk, kind=AudienceKind.BUILT)
    config = _config(request, audienceId=audience.pk, templateId=None)
    context = {"config": config, "audience": audience, "base": _urls(request)["pages"]}
    return render(request, "audiences/builder.html", context)


def builder_templates(request: HttpRequest) -> HttpResponse:
    """Pick a template (built-in or saved by the org) to start the builder from."""
    context = {"config": _config(request), "base": _urls(request)["pages"]}
    return render(request, "audiences/builder_templates.html", context)


def _selected_ids(request: HttpRequest) -> list[int]:
    """The ?ids=1,2,3 (or repeated ?ids=) of the overlap page: valid ids of this org's audiences, at most three."""
    raw = ",".join(request.GET.getlist("ids"))
    wanted: list[int] = []
    for part in raw.split(","):
        part = part.strip()
        if part.isdigit() and int(part) not in wanted:
            wanted.append(int(part))
    existing = set(Audience.objects.filter(pk__in=wanted).values_list("pk", flat=True))
    return [pk for pk in wanted if pk in existing][:MAX_OVERLAP]


def overlap(request: HttpRequest) -> HttpResponse:
    """Choose two or three audiences; the page draws their Venn regions from the overlap API."""
    selected = _selected_ids(request)
    choices = list(Audience.objects.order_by("name").values("pk", "name", "kind", "record_count")[:500])
    config = _config(request, selected=selected)
    context = {"config": config, "choices": choices, "selected": selected, "base": _urls(request)["pages"]}
    return render(request, "audiences/overlap.html", context)


@require_POST
def audience_refresh(request: HttpRequest, pk: int) -> HttpResponse:
    """Re-materialise a built audience now (the same service as the API and the schedule)."""
    from audiences.saved import built_audience_refresh  # the engine's service (helper B's module)

    audience = get_object_or_404(Audience, pk=pk, kind=AudienceKind.BUILT)
    try:
        count = built_audience_refresh(audience=audience, actor=request.user, reason="manual")  # type: ignore[arg-type]
    except ServiceError as exc:
        messages.error(request, f"Refresh failed: {exc}")
    else:
        messages.success(request, f"Refreshed: {count:,} members.")
    return redirect(f"{_urls(request)['pages']}{audience.pk}/")
