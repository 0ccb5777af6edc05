"""Global pages: landing redirect, the staff org picker, health."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from p360.core.jobs.services import last_heartbeat
from tenants.access import landing_url_for, orgs_visible_to


@login_required
def home(request: HttpRequest) -> HttpResponse:
    return redirect(landing_url_for(request.user))  # type: ignore[arg-type]


@login_required
def org_picker(request: HttpRequest) -> HttpResponse:
    orgs = orgs_visible_to(request.user)
    query = request.GET.get("q", "").strip()
    if query:
        orgs = orgs.filter(Q(name__icontains=query) | Q(slug__icontains=query))
    return render(request, "portal/org_picker.html", {"orgs": orgs.order_by("name"), "query": query})


def _timed(check: Any) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        detail = check()
        ok = True
    except Exception as exc:  # noqa: BLE001  a health check reports, it never raises
        detail, ok = f"{type(exc).__name__}: {exc}", False
    return {"ok": ok, "detail": detail, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


def _check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return "reachable"


def _check_cluster() -> str:
    beat = last_heartbeat()
    if beat is None:
        raise RuntimeError("no worker heartbeat recorded; is the task cluster running?")
    age = (timezone.now() - beat.seen_at).total_seconds()
    if age > settings.P360_HEARTBEAT_STALE_SECONDS:
        raise RuntimeError(f"last worker heartbeat {int(age)} s ago")
    return f"last heartbeat {int(age)} s ago"


def _check_storage() -> str:
    name = default_storage.save("healthz/probe.txt", ContentFile(b"ok"))
    try:
        with default_storage.open(name) as handle:
            if handle.read() != b"ok":
                raise RuntimeError("read back different bytes")
    finally:
        default_storage.delete(name)
    return type(default_storage).__name__


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    checks = {
        "database": _timed(_check_database),
        "task_cluster": _timed(_check_cluster),
        "storage": _timed(_check_storage),
    }
    healthy = all(check["ok"] for check in checks.values())
    return JsonResponse({"status": "ok" if healthy else "unhealthy", "checks": checks}, status=200 if healthy else 503)
