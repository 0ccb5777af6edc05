"""Org admin: the organisation's uploads, read-only (written only by the tus endpoint and its services)."""

from __future__ import annotations

from django.contrib import admin
from django.template.defaultfilters import filesizeformat
from django.utils.html import format_html
from unfold.contrib.filters.admin import RangeDateTimeFilter

from p360.core.admin_base import ReadOnlyAdmin
from p360.core.admin_sites import org_admin
from p360.core.uploads.models import Upload, UploadStatus

STATUS_COLOURS = {
    UploadStatus.UPLOADING: "bg-primary-600",
    UploadStatus.COMPLETE: "bg-green-600",
    UploadStatus.EXPIRED: "bg-base-400",
    UploadStatus.ABORTED: "bg-red-600",
}


class PurposeFilter(admin.SimpleListFilter):
    title = "purpose"
    parameter_name = "purpose"

    def lookups(self, request, model_admin):  # type: ignore[no-untyped-def]
        purposes = Upload.objects.exclude(purpose="").order_by("purpose").values_list("purpose", flat=True).distinct()
        return [(value, value) for value in purposes[:50]]

    def queryset(self, request, queryset):  # type: ignore[no-untyped-def]
        return queryset.filter(purpose=self.value()) if self.value() else queryset


@admin.register(Upload, site=org_admin)
class UploadAdmin(ReadOnlyAdmin):
    list_display = [
        "filename_label",
        "purpose",
        "size_label",
        "status_label",
        "progress_bar",
        "created_by_email",
        "created_at",
    ]
    list_filter = ["status", PurposeFilter, ("created_at", RangeDateTimeFilter)]
    list_filter_submit = True
    search_fields = ["filename", "sha256", "created_by_email", "=id"]
    list_per_page = 50
    date_hierarchy = "created_at"
    fields = [
        "id",
        "filename",
        "purpose",
        "status_label",
        "progress_bar",
        "size_label",
        "sha256",
        "metadata",
        "storage_name",
        "created_by_email",
        "created_at",
        "updated_at",
        "completed_at",
        "expires_at",
    ]
    readonly_fields = fields

    @admin.display(description="file", ordering="filename")
    def filename_label(self, upload: Upload) -> str:
        return upload.filename or "(no name)"

    @admin.display(description="by", ordering="created_by_email")
    def uploaded_by(self, upload: Upload) -> str:
        return upload.created_by_email or "—"

    @admin.display(description="size", ordering="size")
    def size_label(self, upload: Upload) -> str:
        if upload.size < 1024:
            return str(filesizeformat(upload.size))
        return f"{filesizeformat(upload.size)} ({upload.size:,} bytes)"

    @admin.display(description="status", ordering="status")
    def status_label(self, upload: Upload) -> str:
        return format_html(
            "<span class='inline-block rounded-default px-2 py-0.5 text-xs text-white {}'>{}</span>",
            STATUS_COLOURS.get(upload.status, "bg-base-400"),  # type: ignore[call-overload]
            upload.get_status_display(),
        )

    @admin.display(description="progress")
    def progress_bar(self, upload: Upload) -> str:
        percent = upload.percent
        return format_html(
            "<div class='min-w-40' role='progressbar' aria-valuenow='{}' aria-valuemin='0' aria-valuemax='100'>"
            "<div class='h-1.5 rounded-default bg-base-200 dark:bg-base-800'>"
            "<div class='h-1.5 rounded-default {}' style='width: {}%'></div></div>"
            "<div class='text-xs text-subtle mt-1'>{} of {} · {}%</div></div>",
            round(percent),
            STATUS_COLOURS.get(upload.status, "bg-primary-600"),  # type: ignore[call-overload]
            round(percent, 1),
            filesizeformat(upload.offset),
            filesizeformat(upload.size),
            f"{percent:.0f}",
        )
