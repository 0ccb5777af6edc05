"""Marketer pages of an organisation (under /o/<slug>/)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from p360.core import registry
from p360.core.jobs.models import Job


def org_home(request: HttpRequest) -> HttpResponse:
    """The org's home: each app's registered "home" tile adds its counts and recent items to the context.

    A tile may also return `home_kpis` (a list of {label, value, note, href}): those are collected from every
    tile in order, so apps added later (segments, activation) get a figure card without touching this view."""
    org = request.org  # type: ignore[attr-defined]
    context: dict[str, Any] = {"recent_jobs": Job.objects.filter(org=org)[:5]}
    kpis: list[dict[str, Any]] = []
    for tile in registry.dashboard_tiles("home"):
        built = dict(tile.build(request))
        kpis.extend(built.pop("home_kpis", []))
        context.update(built)
    context["home_kpis"] = kpis
    return render(request, "portal/org_home.html", context)
