"""Callbacks for the Unfold admin chrome: environment badge, org switcher, dashboards."""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.db.models import Count, Q
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

# --- ingestion (issue 6) ---
from ingestion.models import IngestionRun
from ingestion.selectors import health_kpi as _ingestion_kpi
from ingestion.selectors import runs_for_org
from p360.audit.models import AuditEvent
from p360.audit.selectors import events_visible_to
from p360.jobs.models import Job, JobStatus
from p360.jobs.services import last_heartbeat

# --- reporting (issue 7) ---
from reporting.admin_ui import cross_org_overview as _reporting_overview
from reporting.admin_ui import org_kpis as _reporting_org_kpis
from tenants.access import orgs_manageable_by, orgs_visible_to, restrict_by_org, users_manageable_by
from tenants.middleware import ORG_PREFIX

_OBJECT_PATH = re.compile(r"^(?P<model>admin/[^/]+/[^/]+/)(?P<rest>[^/]+/.*)$")


def environment_badge(request: HttpRequest) -> list[str]:
    if settings.IS_PROD:
        return ["Production", "danger"]
    return ["Test" if settings.TESTING else "Development", "warning"]


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


def global_dashboard(request: HttpRequest, context: dict[str, Any]) -> dict[str, Any]:
    orgs = orgs_manageable_by(request.user)
    jobs = restrict_by_org(Job.objects.select_related("org"), request.user)
    audit = events_visible_to(request.user)
    job_counts = jobs.aggregate(
        running=Count("pk", filter=Q(status=JobStatus.RUNNING)),
        queued=Count("pk", filter=Q(status=JobStatus.QUEUED)),
        failed=Count("pk", filter=Q(status=JobStatus.FAILED)),
    )
    context.update(
        {
            "dashboard_scope": "global",
            "kpis": [
                {
                    "title": "Organisations",
                    "value": orgs.filter(is_active=True).count(),
                    "footer": f"{orgs.filter(is_active=False).count()} inactive",
                    "href": reverse("admin:tenants_organization_changelist"),
                },
                {
                    "title": "Users",
                    "value": users_manageable_by(request.user).filter(is_active=True).count(),
                    "footer": "active accounts",
                    "href": reverse("admin:tenants_user_changelist"),
                },
                {
                    "title": "Jobs running",
                    "value": job_counts["running"],
                    "footer": f"{job_counts['queued']} queued, {job_counts['failed']} failed",
                    "href": reverse("admin:jobs_job_changelist"),
                },
                # --- ingestion (issue 6): health of the paid-media sources ---
                _ingestion_kpi(restrict_by_org(IngestionRun.objects.all(), request.user)),
            ],
            "cluster": _cluster_status(),
            "recent_jobs": _job_rows(list(jobs[:8])),
            "recent_events": list(audit[:10]),
            # --- reporting (issue 7): per visible org, spend/conversions 7 days vs 7 before, ingestion health ---
            "org_overview": _reporting_overview(orgs_visible_to(request.user)),
            "audit_url": reverse("admin:audit_auditevent_changelist"),
            "jobs_url": reverse("admin:jobs_job_changelist"),
        }
    )
    return context


def org_dashboard(request: HttpRequest, context: dict[str, Any]) -> dict[str, Any]:
    from audiences.models import Audience
    from campaigns.models import Campaign, CampaignStatus

    org = request.org  # type: ignore[attr-defined]
    jobs = Job.objects.filter(org=org).select_related("org")
    context.update(
        {
            "dashboard_scope": "org",
            "kpis": [
                {
                    "title": "Audiences",
                    "value": Audience.objects.count(),
                    "footer": "imported and built",
                    "href": reverse("admin:audiences_audience_changelist"),
                },
                {
                    "title": "Campaigns",
                    "value": Campaign.objects.count(),
                    "footer": f"{Campaign.objects.filter(status=CampaignStatus.ACTIVE).count()} active",
                    "href": reverse("admin:campaigns_campaign_changelist"),
                },
                {
                    "title": "Jobs running",
                    "value": jobs.filter(status=JobStatus.RUNNING).count(),
                    "footer": f"{jobs.filter(status=JobStatus.FAILED).count()} failed",
                    "href": reverse("admin:jobs_job_changelist"),
                },
                # --- ingestion (issue 6): health of the paid-media sources ---
                _ingestion_kpi(runs_for_org(org)),
                # --- reporting (issue 7): spend and conversions of the last 7 days ---
                *_reporting_org_kpis(org),
            ],
            "cluster": _cluster_status(),
            "recent_jobs": _job_rows(list(jobs[:8])),
            "recent_events": list(AuditEvent.objects.filter(org_id=org.pk)[:10]),
            "jobs_url": reverse("admin:jobs_job_changelist"),
            "audit_url": reverse("admin:audit_auditevent_changelist"),
        }
    )
    return context


def _item(title: str, icon: str, url_name: str, request: HttpRequest, perm: str) -> dict[str, Any] | None:
    if not request.user.has_perm(perm):
        return None
    return {"title": title, "icon": icon, "link": reverse(url_name)}


def _groups(request: HttpRequest, spec: list[tuple[str, list[tuple[str, str, str, str]]]]) -> list[dict[str, Any]]:
    groups = []
    for title, entries in spec:
        items = [item for entry in entries if (item := _item(*entry[:3], request, entry[3])) is not None]
        if items:
            groups.append({"title": title, "separator": True, "items": items})
    return groups


def global_navigation(request: HttpRequest) -> list[dict[str, Any]]:
    """Sidebar of the global admin; entries the user's role may not view are left out."""
    return [
        {"title": "Overview", "items": [{"title": "Dashboard", "icon": "dashboard", "link": reverse("admin:index")}]},
        *_groups(
            request,
            [
                (
                    "Organisations and people",
                    [
                        (
                            "Organisations",
                            "domain",
                            "admin:tenants_organization_changelist",
                            "tenants.view_organization",
                        ),
                        ("Users", "group", "admin:tenants_user_changelist", "tenants.view_user"),
                        (
                            "Org assignments",
                            "assignment_ind",
                            "admin:tenants_membership_changelist",
                            "tenants.view_membership",
                        ),
                        ("API tokens", "key", "admin:tenants_apitoken_changelist", "tenants.view_apitoken"),
                        # identity (issue 3)
                        ("Invitations", "mail", "admin:tenants_invitation_changelist", "tenants.view_invitation"),
                    ],
                ),
                (
                    "Operations",
                    [
                        ("Jobs", "pending_actions", "admin:jobs_job_changelist", "jobs.view_job"),
                        (
                            "Ingestion runs",
                            "cloud_download",
                            "admin:ingestion_ingestionrun_changelist",
                            "ingestion.view_ingestionrun",
                        ),
                        ("Audit log", "history", "admin:audit_auditevent_changelist", "audit.view_auditevent"),
                        # Bombora intent data (issue 5)
                        (
                            "Bombora weeks",
                            "trending_up",
                            "admin:ingestion_bomboraweek_changelist",
                            "ingestion.view_bomboraweek",
                        ),
                        (
                            "Bombora topics",
                            "topic",
                            "admin:ingestion_bomboratopic_changelist",
                            "ingestion.view_bomboratopic",
                        ),
                        (
                            "Worker heartbeats",
                            "monitor_heart",
                            "admin:jobs_workerheartbeat_changelist",
                            "jobs.view_workerheartbeat",
                        ),
                    ],
                ),
                (
                    "Task queue",
                    [
                        ("Scheduled tasks", "schedule", "admin:django_q_schedule_changelist", "django_q.view_schedule"),
                        ("Queued tasks", "queue", "admin:django_q_ormq_changelist", "django_q.view_ormq"),
                        ("Successful tasks", "task_alt", "admin:django_q_success_changelist", "django_q.view_success"),
                        ("Failed tasks", "error", "admin:django_q_failure_changelist", "django_q.view_failure"),
                    ],
                ),
            ],
        ),
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
    return [
        {"title": "Overview", "items": overview},
        *_groups(
            request,
            [
                (
                    "Data",
                    [
                        ("Audiences", "groups", "admin:audiences_audience_changelist", "audiences.view_audience"),
                        (
                            "Audience imports",
                            "upload_file",
                            "admin:audiences_audienceimport_changelist",
                            "audiences.view_audienceimport",
                        ),
                        (
                            "Mapping templates",
                            "table_rows",
                            "admin:audiences_mappingtemplate_changelist",
                            "audiences.view_mappingtemplate",
                        ),
                        # --- issue 5: the audience builder ---
                        (
                            "Built audiences",
                            "account_tree",
                            "admin:audiences_builtaudience_changelist",
                            "audiences.view_builtaudience",
                        ),
                        (
                            "Audience templates",
                            "library_books",
                            "admin:audiences_audiencetemplate_changelist",
                            "audiences.view_audiencetemplate",
                        ),
                        ("Campaigns", "campaign", "admin:campaigns_campaign_changelist", "campaigns.view_campaign"),
                        ("Uploads", "upload_file", "admin:uploads_upload_changelist", "uploads.view_upload"),
                        # --- ingestion (issue 6) ---
                        (
                            "Strategies",
                            "account_tree",
                            "admin:campaigns_strategy_changelist",
                            "campaigns.view_strategy",
                        ),
                        (
                            "Daily metrics",
                            "monitoring",
                            "admin:campaigns_dailymetric_changelist",
                            "campaigns.view_dailymetric",
                        ),
                        ("CPM rates", "payments", "admin:campaigns_cpmrate_changelist", "campaigns.view_cpmrate"),
                        # reporting (issue 7)
                        ("Summaries", "summarize", "admin:reporting_summary_changelist", "reporting.view_summary"),
                        # issue 13: event segments
                        ("Event segments", "join_inner", "admin:segments_segment_changelist", "segments.view_segment"),
                        (
                            "Trigger campaigns",
                            "campaign",
                            "admin:segments_triggercampaign_changelist",
                            "segments.view_triggercampaign",
                        ),
                        ("Trigger sends", "send", "admin:segments_send_changelist", "segments.view_send"),
                        (
                            "Client settings",
                            "tune",
                            "admin:campaigns_clientsettings_changelist",
                            "campaigns.view_clientsettings",
                        ),
                    ],
                ),
                (
                    "Operations",
                    [
                        (
                            "Ingestion runs",
                            "cloud_download",
                            "admin:ingestion_ingestionrun_changelist",
                            "ingestion.view_ingestionrun",
                        ),
                        ("Jobs", "pending_actions", "admin:jobs_job_changelist", "jobs.view_job"),
                        ("Audit log", "history", "admin:audit_auditevent_changelist", "audit.view_auditevent"),
                    ],
                ),
            ],
        ),
    ]
