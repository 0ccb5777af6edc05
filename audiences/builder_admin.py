"""Org admin for built audiences (issue 5): tree, definition versions, count history, members, refresh, cache."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.db import connection
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.html import format_html
from unfold.admin import ModelAdmin, TabularInline
from unfold.decorators import display

from audiences import cache
from audiences.models import AudienceCount, AudienceDefinition, AudienceTemplate, BuiltAudience, SegmentChange
from p360.core.admin_sites import org_admin
from tenants.services import ServiceError


class ReadOnlyInline(TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class DefinitionInline(ReadOnlyInline):
    model = AudienceDefinition
    fields = ["number", "changes", "note", "created_by_email", "created_at"]
    readonly_fields = fields
    ordering = ["-number"]


class CountInline(ReadOnlyInline):
    model = AudienceCount
    fields = ["at", "count", "reason"]
    readonly_fields = fields
    ordering = ["-at"]
    verbose_name_plural = "count history"


@admin.register(BuiltAudience, site=org_admin)
class BuiltAudienceAdmin(ModelAdmin):
    list_display = ["name", "record_count", "definition_number", "materialized_at", "refresh_problem", "updated_at"]
    search_fields = ["name", "description"]
    fields = ["name", "description", "tree_pretty", "record_count", "definition_number", "materialized_at",
              "follows_segments", "refresh_error", "members_link", "created_by", "created_at", "updated_at"]  # fmt: skip
    readonly_fields = [f for f in fields if f not in ("name", "description")]
    inlines = [DefinitionInline, CountInline]
    actions = ["refresh_members"]
    list_before_template = "admin_builder/cache_stats.html"
    list_per_page = 50
    list_select_related = ["created_by"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[BuiltAudience]:
        return super().get_queryset(request).filter(kind="built")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # built on the builder page or through the API (a tree needs the builder)

    def save_model(self, request: HttpRequest, obj: BuiltAudience, form: Any, change: bool) -> None:
        from audiences.saved import built_audience_update

        built_audience_update(audience=obj, actor=request.user, name=obj.name, description=obj.description)  # type: ignore[arg-type]

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        extra = {
            "builder_cache": cache.entry_stats(connection.schema_name),  # type: ignore[attr-defined]
            "builder_cache_budget_mb": settings.P360_BUILDER_CACHE_MB,
        }
        return super().changelist_view(request, {**(extra_context or {}), **extra})

    @display(description="Definition (tree)")
    def tree_pretty(self, obj: BuiltAudience) -> str:
        return format_html('<pre class="text-xs whitespace-pre-wrap">{}</pre>', json.dumps(obj.tree, indent=2))

    @display(description="Members")
    def members_link(self, obj: BuiltAudience) -> str:
        url = f"/o/{connection.tenant.slug}/api/v1/audiences/{obj.pk}/members?format=csv"  # type: ignore[attr-defined]
        return format_html('<a href="{}">Download CSV ({} members)</a>', url, obj.record_count)

    @display(description="Follows event segments")
    def follows_segments(self, obj: BuiltAudience) -> str:
        """Issue 13: a membership change of these segments refreshes the audience (debounced)."""
        ids = [int(i) for i in obj.segment_ids or []]
        if not ids:
            return "—"
        due = SegmentChange.objects.filter(segment_id__in=ids).order_by("due_at").values_list("due_at", flat=True)
        pending = f"; membership changed, refresh due {due[0]:%Y-%m-%d %H:%M:%S} UTC" if due else ""
        refreshed = f"{obj.materialized_at:%Y-%m-%d %H:%M:%S} UTC" if obj.materialized_at else "never"
        return (
            ", ".join(f"#{i}" for i in ids)
            + f": refreshed when their membership changes (last refreshed {refreshed}{pending})"
        )

    @display(description="Refresh problem")
    def refresh_problem(self, obj: BuiltAudience) -> str:
        return obj.refresh_error[:80] if obj.refresh_error else ""

    @admin.action(description="Refresh the selected audiences' members now")
    def refresh_members(self, request: HttpRequest, queryset: QuerySet[BuiltAudience]) -> None:
        from audiences.saved import built_audience_refresh

        done = 0
        for audience in queryset:
            try:
                count = built_audience_refresh(audience=audience, actor=request.user, reason="admin")  # type: ignore[arg-type]
                done += 1
                self.message_user(request, f"{audience.name}: {count} members.", level=messages.SUCCESS)
            except ServiceError as exc:
                self.message_user(request, f"{audience.name}: {exc}", level=messages.ERROR)
        if not done and not queryset:
            self.message_user(request, "Nothing selected.", level=messages.WARNING)


@admin.register(AudienceTemplate, site=org_admin)
class AudienceTemplateAdmin(ModelAdmin):
    list_display = ["name", "builtin", "created_by_email", "created_at"]
    list_filter = ["builtin"]
    search_fields = ["name", "description"]
    readonly_fields = ["builtin", "created_by_email", "created_at"]
