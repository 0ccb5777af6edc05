"""Audit log in both admins: everything (scoped by role) globally, the current org's in the org admin."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from unfold.contrib.filters.admin import FieldTextFilter, RangeDateTimeFilter

from p360.admin.audit_selectors import events_visible_to
from p360.core.admin_base import ReadOnlyAdmin
from p360.core.admin_sites import global_admin, org_admin
from p360.core.audit.models import AuditEvent
from tenants.access import orgs_manageable_by


class OrgSlugFilter(admin.SimpleListFilter):
    """Filter by organisation, offering only the orgs the viewer may manage."""

    title = "organisation"
    parameter_name = "org"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(org.slug, org.name) for org in orgs_manageable_by(request.user)]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(org_slug=self.value()) if self.value() else queryset


class SystemJobsFilter(admin.SimpleListFilter):
    """The default view is what people did: `job.*` events (the task cluster's bookkeeping) only on request."""

    title = "system jobs"
    parameter_name = "jobs"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("include", "Shown with everything else"), ("only", "Only job events")]

    def choices(self, changelist: Any) -> Any:
        for choice in super().choices(changelist):
            if choice.get("display") == "All":
                choice["display"] = "Hidden (default)"
            yield choice

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "include":
            return queryset
        if self.value() == "only":
            return queryset.filter(action__startswith=JOB_PREFIX)
        return queryset.exclude(action__startswith=JOB_PREFIX)


JOB_PREFIX = "job."
# Snapshot keys that name an entity, best first (audit rows keep the entity's before/after snapshot).
NAME_KEYS = ("name", "email", "audience_name", "source_name", "slug", "title", "label")


def entity_label(event: AuditEvent) -> str:
    """The entity by name where its snapshot has one ("Campaign “Acme Q4” #3"), else its type and id."""
    kind = event.entity_type.rsplit(".", 1)[-1].replace("_", " ").capitalize() if event.entity_type else ""
    ident = f"#{event.entity_id}" if event.entity_id else ""
    if event.entity_type.endswith(".user") and event.actor_email and event.entity_id == str(event.actor_id or ""):
        return f"{kind} {event.actor_email} {ident}".strip()  # sign-ins and profile changes: the user themself
    for snapshot in (event.after, event.before):
        if isinstance(snapshot, dict):
            name = next(
                (snapshot[key] for key in NAME_KEYS if isinstance(snapshot.get(key), str) and snapshot[key]), ""
            )
            if name:
                return f"{kind} “{name[:80]}” {ident}".strip()
    return f"{kind} {ident}".strip() or "—"


class _AuditAdminBase(ReadOnlyAdmin):
    list_display = ["created_at", "action", "actor_email", "org_slug", "entity", "ip_address"]
    list_filter = [("created_at", RangeDateTimeFilter), SystemJobsFilter, "action"]
    list_filter_submit = True
    search_fields = ["actor_email", "action", "entity_id", "entity_type", "request_id"]
    date_hierarchy = "created_at"
    list_per_page = 50
    readonly_fields = ["changes"]
    fields = [
        "created_at",
        "action",
        "actor_email",
        "actor_id",
        "org_slug",
        "org_id",
        "entity_type",
        "entity_id",
        "changes",
        "ip",
        "user_agent",
        "request_id",
    ]

    @admin.display(description="entity")
    def entity(self, obj: AuditEvent) -> str:
        return entity_label(obj)

    @admin.display(description="IP", ordering="ip")
    def ip_address(self, obj: AuditEvent) -> str:
        return obj.ip or "—"

    @admin.display(description="before / after")
    def changes(self, obj: AuditEvent) -> str:
        return format_html(
            "<pre class='text-xs whitespace-pre-wrap'>before: {}\nafter:  {}</pre>",
            json.dumps(obj.before, indent=1, sort_keys=True),
            json.dumps(obj.after, indent=1, sort_keys=True),
        )


@admin.register(AuditEvent, site=global_admin)
class AuditEventAdmin(_AuditAdminBase):
    # identity (issue 3): filter by actor (email contains) as well as org, action and date
    list_filter = [*_AuditAdminBase.list_filter, OrgSlugFilter, ("actor_email", FieldTextFilter)]  # type: ignore[list-item]

    def get_queryset(self, request: HttpRequest) -> QuerySet[AuditEvent]:
        return events_visible_to(request.user)


@admin.register(AuditEvent, site=org_admin)
class OrgAuditEventAdmin(_AuditAdminBase):
    list_display = ["created_at", "action", "actor_email", "entity", "ip_address"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[AuditEvent]:
        return super().get_queryset(request).filter(org_id=request.org.pk)  # type: ignore[attr-defined]
