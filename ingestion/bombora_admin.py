"""Bombora in the global admin (issue 5): loaded weeks, the topic catalogue, coverage per organisation, upload.

Super admins and campaign managers may view (the role permissions give both `bombora.view_*`); coverage lists
only the organisations the user manages. Uploading replaces a week for every organisation: super admins only.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from bombora import selectors, store
from bombora.models import BomboraTopic, BomboraWeek, BomboraWeekStatus
from ingestion.models import RunStatus, Source, Trigger
from ingestion.services import IngestionError, ingest_file
from p360.core.admin_base import ReadOnlyAdmin
from p360.core.admin_sites import global_admin
from tenants.access import orgs_manageable_by
from tenants.models import Role

UPLOAD_SUFFIXES = (".csv", ".gz", ".txt")
WEEK_COLOURS = {
    BomboraWeekStatus.LOADING: "bg-primary-600",
    BomboraWeekStatus.READY: "bg-green-600",
    BomboraWeekStatus.PRUNED: "bg-base-400",
}


class BomboraUploadForm(forms.Form):
    file = forms.FileField(
        label="Bombora file", help_text="Master Surge / ADAT (gzipped or not) or a CSV with a header."
    )
    week_date = forms.DateField(
        required=False,
        label="A day of the week (optional)",
        help_text="Needed only when the file name has no YYYYMMDD date and the file has no Week column.",
    )


def can_upload(request: HttpRequest) -> bool:
    user = request.user
    return bool(user.is_authenticated and getattr(user, "role", None) == Role.SUPER_ADMIN)


@admin.register(BomboraWeek, site=global_admin)
class BomboraWeekAdmin(ReadOnlyAdmin):
    list_display = [
        "week",
        "status_label",
        "rows_",
        "domains_",
        "topics",
        "surging_",
        "run_link",
        "file_name",
        "loaded_at",
    ]
    list_filter = ["status"]
    ordering = ["-week"]
    change_list_template = "bombora/admin/bombora_week_changelist.html"
    fields = ["week", "status", "rows", "domains", "topics", "surging_rows", "run_link", "file_name", "loaded_at"]
    readonly_fields = fields

    @admin.display(description="status", ordering="status")
    def status_label(self, week: BomboraWeek) -> str:
        current = store.current_week() == week.week
        return format_html(
            "<span class='inline-block rounded-default px-2 py-0.5 text-xs text-white {}'>{}</span>{}",
            WEEK_COLOURS.get(week.status, "bg-base-400"),  # type: ignore[call-overload]
            week.get_status_display(),
            " (current)" if current else "",
        )

    @admin.display(description="rows", ordering="rows")
    def rows_(self, week: BomboraWeek) -> str:
        return f"{week.rows:,}"

    @admin.display(description="domains", ordering="domains")
    def domains_(self, week: BomboraWeek) -> str:
        return f"{week.domains:,}"

    @admin.display(description="surging rows (score >= 60)", ordering="surging_rows")
    def surging_(self, week: BomboraWeek) -> str:
        return f"{week.surging_rows:,}"

    @admin.display(description="run")
    def run_link(self, week: BomboraWeek) -> str:
        if not week.run_id:
            return "—"
        url = reverse("admin:ingestion_ingestionrun_change", args=[week.run_id])
        return format_html("<a class='text-primary-600' href='{}'>run #{}</a>", url, week.run_id)

    def get_urls(self) -> list[Any]:
        return [
            path("coverage/", self.admin_site.admin_view(self.coverage_view), name="bombora_bomboraweek_coverage"),
            path("upload/", self.admin_site.admin_view(self.upload_view), name="bombora_bomboraweek_upload"),
            path("domain/", self.admin_site.admin_view(self.domain_view), name="bombora_bomboraweek_domain"),
            *super().get_urls(),
        ]

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        extra = {"can_upload": can_upload(request), "current_week": store.current_week(), **(extra_context or {})}
        return super().changelist_view(request, extra)

    def coverage_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        week = store.current_week()
        context = {
            **self.admin_site.each_context(request),
            "title": "Bombora coverage by organisation",
            "week": week,
            "rows": selectors.coverage(orgs_manageable_by(request.user), week),
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "bombora/admin/bombora_coverage.html", context)

    def domain_view(self, request: HttpRequest) -> HttpResponse:
        """Issue 18 (story 6.1): one domain's topics in a week with composite score, research volume and Bombora's
        surge indicator (what the file carried; empty when it did not), as the builder's Bombora fields read them."""
        import datetime as dt

        if not self.has_view_permission(request):
            raise PermissionDenied
        domain = request.GET.get("domain", "").strip()[:253]
        weeks = list(
            BomboraWeek.objects.filter(status=BomboraWeekStatus.READY).order_by("-week").values_list("week", flat=True)
        )
        raw = request.GET.get("week", "")
        try:
            week = dt.date.fromisoformat(raw) if raw else (weeks[0] if weeks else None)
        except ValueError:
            week, raw = (weeks[0] if weeks else None), ""
            messages.error(request, "The week must be a date (YYYY-MM-DD).")
        rows = store.domain_signals(domain, week) if domain and week else []
        context = {
            **self.admin_site.each_context(request),
            "title": "Bombora signals of a domain",
            "domain": domain,
            "week": week,
            "weeks": weeks,
            "rows": rows,
            "carried": any(r["volume"] is not None or r["surging"] is not None for r in rows),
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "bombora/admin/bombora_domain.html", context)

    def upload_view(self, request: HttpRequest) -> HttpResponse:
        if not can_upload(request):
            raise PermissionDenied
        form = BomboraUploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            problem = _upload_problem(upload)
            if problem:
                messages.error(request, problem)
            else:
                run = _load_upload(request, upload, form.cleaned_data["week_date"])
                if run is not None:
                    return redirect("admin:ingestion_ingestionrun_change", run.pk)
        context = {
            **self.admin_site.each_context(request),
            "title": "Upload a Bombora file",
            "form": form,
            "max_mb": settings.P360_INGEST_MAX_UPLOAD_MB,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "bombora/admin/bombora_upload.html", context)


def _upload_problem(upload: Any) -> str:
    name = upload.name or "the file"
    if not name.lower().endswith(UPLOAD_SUFFIXES):
        return f"{name}: only {', '.join(UPLOAD_SUFFIXES)} files are accepted"
    if upload.size == 0:
        return f"{name} is empty"
    if upload.size > settings.P360_INGEST_MAX_UPLOAD_MB * 1024 * 1024:
        return (
            f"{name} is {upload.size / 1e6:,.1f} MB; the upload limit is {settings.P360_INGEST_MAX_UPLOAD_MB} MB "
            "(load bigger files with `manage.py ingest bombora FILE` or through the S3 pickup)"
        )
    return ""


def _load_upload(request: HttpRequest, upload: Any, day: Any) -> Any:
    import tempfile
    from pathlib import Path

    suffix = "".join(Path(upload.name).suffixes[-2:]) or ".csv"
    with tempfile.NamedTemporaryFile(suffix=suffix) as tmp:
        for chunk in upload.chunks():
            tmp.write(chunk)
        tmp.flush()
        try:
            run = ingest_file(
                source=Source.BOMBORA,
                org=None,
                path=Path(tmp.name),
                run_date=day,
                actor=request.user,  # type: ignore[arg-type]
                trigger=Trigger.UPLOAD,
                file_name=upload.name,
            )
        except IngestionError as exc:
            messages.error(request, str(exc))
            return None
    if run.status == RunStatus.SUCCEEDED:
        messages.success(
            request,
            f"Loaded the week of {run.run_date}: {run.rows_loaded:,} scores, {run.rows_quarantined:,} rows "
            f"quarantined, {run.duplicates:,} duplicates merged.",
        )
    else:
        messages.error(request, f"The file was not loaded: {run.error}")
    return run


@admin.register(BomboraTopic, site=global_admin)
class BomboraTopicAdmin(ReadOnlyAdmin):
    list_display = ["name", "category", "week_domains_", "week_surging_", "first_seen_week", "last_seen_week"]
    search_fields = ["name", "category"]
    list_per_page = 100
    fields = ["name", "category", "first_seen_week", "last_seen_week"]
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[BomboraTopic]:
        return selectors.topics_with_counts().order_by("-week_surging", "name")  # type: ignore[misc]

    @admin.display(description="domains this week", ordering="week_domains")
    def week_domains_(self, topic: Any) -> str:
        return f"{topic.week_domains:,}"

    @admin.display(description="surging this week (>= 60)", ordering="week_surging")
    def week_surging_(self, topic: Any) -> str:
        return f"{topic.week_surging:,}"
