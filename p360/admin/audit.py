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


class _AuditAdminBase(ReadOnlyAdmin):
    list_display = ["created_at", "action", "actor_email", "org_slug", "entity", "ip"]
    list_filter = [("created_at", RangeDateTimeFilter), "action"]
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
        return f"{obj.entity_type} {obj.entity_id}".strip()

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
    list_display = ["created_at", "action", "actor_email", "entity", "ip"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[AuditEvent]:
        return super().get_queryset(request).filter(org_id=request.org.pk)  # type: ignore[attr-defined]
