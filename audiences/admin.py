"""Org admin: audiences of the current organisation."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db import connection
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.defaultfilters import filesizeformat
from django.utils.html import format_html
from unfold.admin import ModelAdmin, TabularInline
from unfold.decorators import display

from audiences.models import Audience, AudienceImport, AudienceVersion, MappingTemplate
from audiences.services import audience_delete, audience_save, import_rerun
from p360.core.admin_base import BoundedDateHierarchyMixin, count_column
from p360.core.admin_sites import org_admin
from tenants.services import ServiceError


@admin.register(Audience, site=org_admin)
class AudienceAdmin(ModelAdmin):
    list_display = [
        "name",
        "kind",
        "status",
        count_column("record_count", "Records"),
        "current_version",
        "created_by",
        "updated_at",
    ]
    list_filter = ["kind", "status"]
    search_fields = ["name", "description"]
    readonly_fields = ["record_count", "current_version", "created_by", "created_at", "updated_at"]

    fields = [
        "name",
        "description",
        "kind",
        "status",
        "retention_versions",
        "record_count",
        "current_version",
        "created_by",
        "created_at",
        "updated_at",
    ]
    list_per_page = 50
    list_select_related = ["created_by", "current_version"]

    def save_model(self, request: HttpRequest, obj: Audience, form: Any, change: bool) -> None:
        audience_save(audience=obj, actor=request.user)  # type: ignore[arg-type]

    def delete_model(self, request: HttpRequest, obj: Audience) -> None:
        audience_delete(audience=obj, actor=request.user)  # type: ignore[arg-type]

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Audience]) -> None:
        for audience in queryset:
            audience_delete(audience=audience, actor=request.user)  # type: ignore[arg-type]


class VersionInline(TabularInline):
    model = AudienceVersion
    fk_name = "audience"
    extra = 0
    can_delete = False
    fields = ["number", "status", "record_count", "note", "created_by_email", "created_at"]
    readonly_fields = fields
    ordering = ["-number"]
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


AudienceAdmin.inlines = [VersionInline]


@admin.register(AudienceImport, site=org_admin)
class AudienceImportAdmin(BoundedDateHierarchyMixin, ModelAdmin):
    list_display = [
        "id",
        "source_name",
        "audience_name",
        "status_badge",
        count_column("rows_read", "Rows read"),
        count_column("rows_loaded", "Rows loaded"),
        count_column("rows_quarantined", "Rows quarantined"),
        count_column("duplicates", "Duplicates"),
        "uid2_ready",
        "created_by_email",
        "created_at",
    ]
    list_display_links = ["id", "source_name"]
    list_filter = ["status", "mode", "dedupe_rule", "file_kind", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["source_name", "audience_name", "created_by_email", "file_sha256"]
    date_hierarchy = "created_at"
    list_per_page = 50
    actions = ["rerun_imports"]
    readonly_fields = [
        "report_link",
        "audience",
        "audience_name",
        "status",
        "source_name",
        "file_kind",
        "file_size_display",
        "file_sha256",
        "encoding",
        "delimiter",
        "mode",
        "dedupe_key",
        "dedupe_rule",
        "default_country",
        "mapping",
        "custom_types",
        "version",
        "rows_read",
        "rows_loaded",
        "rows_quarantined",
        "duplicates",
        "blank_lines",
        "quality",
        "quarantine_link",
        "error",
        "job_id",
        "created_by_email",
        "created_at",
        "started_at",
        "finished_at",
    ]
    fields = readonly_fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # imports start from a file: the import page, the API or the command

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a record of what happened: read-only (view permission shows it)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # the upload history is a record; it is kept

    @display(
        description="Status",
        label={
            "succeeded": "success",
            "failed": "danger",
            "rejected": "danger",
            "running": "info",
            "queued": "warning",
            "mapping": "warning",
        },
    )
    def status_badge(self, obj: AudienceImport) -> str:
        return str(obj.status)

    @display(description="UID2-ready")
    def uid2_ready(self, obj: AudienceImport) -> str:
        share = (obj.quality or {}).get("uid2_ready_share")
        return f"{share:.0%}" if isinstance(share, int | float) else "—"

    @display(description="Report")
    def report_link(self, obj: AudienceImport) -> str:
        url = f"/o/{connection.tenant.slug}/audiences/imports/{obj.pk}/"  # type: ignore[attr-defined]
        return format_html('<a href="{}">Open the import report (counts, reasons, field quality)</a>', url)

    @display(description="File size")
    def file_size_display(self, obj: AudienceImport) -> str:
        return filesizeformat(obj.file_size)

    @display(description="Quarantined rows")
    def quarantine_link(self, obj: AudienceImport) -> str:
        if not obj.quarantine_file:
            return "none"
        url = f"/o/{connection.tenant.slug}/audiences/imports/{obj.pk}/quarantine.csv"  # type: ignore[attr-defined]
        return format_html('<a href="{}">Download CSV ({} rows)</a>', url, obj.rows_quarantined)

    @admin.action(description="Run the selected imports again (same file, same options)")
    def rerun_imports(self, request: HttpRequest, queryset: QuerySet[AudienceImport]) -> None:
        started = 0
        for imp in queryset:
            try:
                import_rerun(imp=imp, actor=request.user)  # type: ignore[arg-type]
                started += 1
            except ServiceError as exc:
                self.message_user(request, f"#{imp.pk} {imp.source_name}: {exc}", level=messages.ERROR)
        if started:
            self.message_user(request, f"{started} import(s) started again.", level=messages.SUCCESS)


@admin.register(MappingTemplate, site=org_admin)
class MappingTemplateAdmin(ModelAdmin):
    list_display = ["name", "created_by_email", "updated_at"]
    search_fields = ["name"]
    readonly_fields = ["created_by_email", "created_at", "updated_at"]


# issue 5: built audiences, templates and the builder cache
from audiences import builder_admin  # noqa: E402, F401
