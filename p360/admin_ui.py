"""Callbacks for the Unfold admin chrome: environment badge, org switcher, dashboards."""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.db.models import Count, Q
from django.http import HttpRequest
from django.templatetags.static import static
from django.urls import reverse
from django.utils import timezone

from p360.admin.audit_selectors import events_visible_to
from p360.core import registry
from p360.core.audit.models import AuditEvent
from p360.core.jobs.models import Job, JobStatus
from p360.core.jobs.services import last_heartbeat
from p360.core.registry import Site
from tenants.access import orgs_visible_to, restrict_by_org
from tenants.middleware import ORG_PREFIX

_OBJECT_PATH = re.compile(r"^(?P<model>admin/[^/]+/[^/]+/)(?P<rest>[^/]+/.*)$")


def environment_badge(request: HttpRequest) -> list[str]:
    if settings.IS_PROD:
        return ["Production", "danger"]
    return ["Test" if settings.TESTING else "Development", "warning"]


def admin_styles(request: HttpRequest) -> str:
    """Unfold's STYLES entry: our admin stylesheet through the static storage (hashed name in prod)."""
    return static("p360/admin.css")


def switch_org_path(path: str, target_slug: str) -> str:
    """The same page in another org: /o/a/admin/x/y/ -> /o/b/admin/x/y/.

    Object pages (ids differ between orgs) fall back to the model's list; global pages go to the
    target org's home of the same kind (admin or marketer pages).
    """
    if path.startswith(ORG_PREFIX):
        rest = path[len(ORG_PREFIX) :].split("/", 1)[1] if "/" in path[len(ORG_PREFIX) :] else ""
        match = _OBJECT_PATH.match(rest)
        if match:
            rest = match.group("model")
        elif not rest.startswith("admin/") and rest.count("/") > 1:
            rest = rest.split("/", 1)[0] + "/"
        return f"{ORG_PREFIX}{target_slug}/{rest}"
    if path.startswith("/admin/"):
        return f"{ORG_PREFIX}{target_slug}/admin/"
    return f"{ORG_PREFIX}{target_slug}/"


def org_switcher_items(request: HttpRequest) -> list[dict[str, Any]]:
    current = getattr(getattr(request, "org", None), "slug", None)
    items: list[dict[str, Any]] = []
    if request.user.is_authenticated and request.user.is_staff:
        items.append({"title": "Global admin", "link": "/admin/", "icon": "public"})
    for org in orgs_visible_to(request.user).only("name", "slug"):
        items.append(
            {
                "title": f"{org.name}{' (current)' if org.slug == current else ''}",
                "link": switch_org_path(request.path, org.slug),
                "icon": "check" if org.slug == current else "domain",
            }
        )
    return items


def current_org_name(request: HttpRequest) -> str:
    org = getattr(request, "org", None)
    return org.name if org is not None else "P360"


def org_home_url(request: HttpRequest) -> str:
    org = getattr(request, "org", None)
    return f"{ORG_PREFIX}{org.slug}/" if org is not None else "/"


def _job_rows(jobs: list[Job]) -> list[dict[str, Any]]:
    return [
        {
            "job": job,
            "percent": job.percent,
            "org": job.org.slug if job.org else "global",
        }
        for job in jobs
    ]


def _cluster_status() -> dict[str, Any]:
    beat = last_heartbeat()
    if beat is None:
        return {"ok": False, "label": "no heartbeat yet"}
    age = (timezone.now() - beat.seen_at).total_seconds()
    ok = age <= settings.P360_HEARTBEAT_STALE_SECONDS
    return {"ok": ok, "label": f"last heartbeat {int(age)} s ago"}


def _with_tiles(site: Site, request: HttpRequest, core_kpis: list[dict[str, Any]], context: dict[str, Any]) -> None:
    """KPI cards and extra context from every app's registered dashboard tiles, the core's cards at order 30."""
    kpis: list[dict[str, Any]] = []
    placed = False
    for tile in registry.dashboard_tiles(site):
        if not placed and tile.order > CORE_TILE_ORDER:
            kpis.extend(core_kpis)
            placed = True
        part = tile.build(request)
        kpis.extend(part.get("kpis", []))
        context.update({key: value for key, value in part.items() if key != "kpis"})
    if not placed:
        kpis.extend(core_kpis)
    context["kpis"] = kpis


CORE_TILE_ORDER = 30  # the core's "Jobs running" card sits between the apps' tiles of lower and higher order


def global_dashboard(request: HttpRequest, context: dict[str, Any]) -> dict[str, Any]:
    jobs = restrict_by_org(Job.objects.select_related("org"), request.user)
    audit = events_visible_to(request.user)
    job_counts = jobs.aggregate(
        running=Count("pk", filter=Q(status=JobStatus.RUNNING)),
        queued=Count("pk", filter=Q(status=JobStatus.QUEUED)),
        failed=Count("pk", filter=Q(status=JobStatus.FAILED)),
    )
    job = {
        "title": "Jobs running",
        "value": job_counts["running"],
        "footer": f"{job_counts['queued']} queued, {job_counts['failed']} failed",
        "href": reverse("admin:jobs_job_changelist"),
    }
    context.update(
        {
            "dashboard_scope": "global",
            "cluster": _cluster_status(),
            "recent_jobs": _job_rows(list(jobs[:8])),
            "recent_events": list(audit[:10]),
            "audit_url": reverse("admin:audit_auditevent_changelist"),
            "jobs_url": reverse("admin:jobs_job_changelist"),
        }
    )
    _with_tiles("global", request, [job], context)
    context["kpi_grid"] = kpi_grid_class(len(context.get("kpis", [])))
    return context


def kpi_grid_class(cards: int) -> str:
    """Columns for the dashboard cards so that no card sits alone on its last row (4 -> 2x2 or 4 in a row)."""
    if cards % 3 == 0 or cards <= 3:
        return "md:grid-cols-3" if cards >= 3 else "md:grid-cols-2"
    if cards % 4 == 0:
        return "md:grid-cols-2 xl:grid-cols-4"
    return "md:grid-cols-2 lg:grid-cols-3" if cards % 3 == 2 else "md:grid-cols-2 xl:grid-cols-4"


def org_dashboard(request: HttpRequest, context: dict[str, Any]) -> dict[str, Any]:
    org = request.org  # type: ignore[attr-defined]
    jobs = Job.objects.filter(org=org).select_related("org")
    job = {
        "title": "Jobs running",
        "value": jobs.filter(status=JobStatus.RUNNING).count(),
        "footer": f"{jobs.filter(status=JobStatus.FAILED).count()} failed",
        "href": reverse("admin:jobs_job_changelist"),
    }
    context.update(
        {
            "dashboard_scope": "org",
            "cluster": _cluster_status(),
            "recent_jobs": _job_rows(list(jobs[:8])),
            "recent_events": list(AuditEvent.objects.filter(org_id=org.pk)[:10]),
            "jobs_url": reverse("admin:jobs_job_changelist"),
            "audit_url": reverse("admin:audit_auditevent_changelist"),
        }
    )
    _with_tiles("org", request, [job], context)
    context["kpi_grid"] = kpi_grid_class(len(context.get("kpis", [])))
    return context


def register_core_navigation() -> None:
    """The sidebar entries of the core's own models (jobs, audit log, uploads, django-q2); called from P360Config.ready().

    Each app registers its own entries (`<app>/registrations.py`); orders interleave within a group."""
    for site, order, title, icon, url_name, perm in (
        ("global", 10, "Jobs", "pending_actions", "admin:jobs_job_changelist", "jobs.view_job"),
        ("global", 30, "Audit log", "history", "admin:audit_auditevent_changelist", "audit.view_auditevent"),
        (
            "global",
            60,
            "Worker heartbeats",
            "monitor_heart",
            "admin:jobs_workerheartbeat_changelist",
            "jobs.view_workerheartbeat",
        ),
        ("org", 20, "Jobs", "pending_actions", "admin:jobs_job_changelist", "jobs.view_job"),
        ("org", 30, "Audit log", "history", "admin:audit_auditevent_changelist", "audit.view_auditevent"),
    ):
        registry.register_nav(
            site=site,  # type: ignore[arg-type]
            group="Operations",
            title=title,
            icon=icon,
            url_name=url_name,
            permission=perm,
            order=order,
        )
    registry.register_nav(
        site="org",
        group="Data",
        title="Uploads",
        icon="upload_file",
        url_name="admin:uploads_upload_changelist",
        permission="uploads.view_upload",
        order=70,
    )
    for order, (title, icon, model) in enumerate(
        (
            ("Scheduled tasks", "schedule", "schedule"),
            ("Queued tasks", "queue", "ormq"),
            ("Successful tasks", "task_alt", "success"),
            ("Failed tasks", "error", "failure"),
        )
    ):
        registry.register_nav(
            site="global",
            group="Task queue",
            title=title,
            icon=icon,
            url_name=f"admin:django_q_{model}_changelist",
            permission=f"django_q.view_{model}",
            order=order,
        )


def _groups(request: HttpRequest, site: Site) -> list[dict[str, Any]]:
    """The registered sidebar groups of `site`; entries the user's role may not view are left out."""
    groups = []
    for title in registry.NAV_GROUPS[site]:
        items = [
            {"title": item.title, "icon": item.icon, "link": reverse(item.url_name)}
            for item in registry.nav_items(site, title)
            if request.user.has_perm(item.permission)
        ]
        if items:
            groups.append({"title": title, "separator": True, "items": items})
    return groups


def global_navigation(request: HttpRequest) -> list[dict[str, Any]]:
    """Sidebar of the global admin; entries the user's role may not view are left out."""
    return [
        {"title": "Overview", "items": [{"title": "Dashboard", "icon": "dashboard", "link": reverse("admin:index")}]},
        *_groups(request, "global"),
    ]


def org_navigation(request: HttpRequest) -> list[dict[str, Any]]:
    """Sidebar of an organisation's admin."""
    org = getattr(request, "org", None)
    overview: list[dict[str, Any]] = [{"title": "Dashboard", "icon": "dashboard", "link": reverse("admin:index")}]
    if org is not None:
        overview.append(
            {"title": "Marketer pages", "icon": "open_in_new", "link": f"{ORG_PREFIX}{org.slug}/", "active": False}
        )
        # attribution (issue 7): the model comparison page
        overview.append(
            {
                "title": "Attribution",
                "icon": "insights",
                "link": f"{ORG_PREFIX}{org.slug}/reports/attribution/",
                "active": False,
            }
        )
    return [{"title": "Overview", "items": overview}, *_groups(request, "org")]
