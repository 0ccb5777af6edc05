"""Ingestion runs in both admins: filters, counts and errors, quarantined rows, retry / re-run,
and the Facebook upload form inside the org admin."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.html import format_html
from unfold.admin import TabularInline
from unfold.contrib.filters.admin import RangeDateFilter
from unfold.decorators import action

from ingestion.models import IngestionRun, QuarantinedRow, RunStatus, Source
from ingestion.services import rerun
from ingestion.uploads import UploadRejected, handle_upload
from ingestion.views import upload_result_message
from p360.core.admin_base import ReadOnlyAdmin
from p360.core.admin_sites import global_admin, org_admin
from tenants.access import orgs_manageable_by, restrict_by_org


class AdminUploadForm(forms.Form):
    source = forms.ChoiceField(
        choices=[
            (Source.FACEBOOK, "Facebook (Meta Ads Manager export)"),
            (Source.SURFSIDE, "Surfside (daily CSV/XLSX)"),
            (Source.VIBE, "Vibe (reporting API CSV)"),
            (Source.REDS, "TTD REDS events (this organisation's rows only)"),
        ],
        initial=Source.FACEBOOK,
        required=False,
    )
    file = forms.FileField(label="File")
    run_date = forms.DateField(
        required=False, label="Day the file is for (optional)", help_text="Rows of other days are quarantined."
    )
    load_again = forms.BooleanField(required=False, widget=forms.HiddenInput)


STATUS_COLOURS = {
    RunStatus.QUEUED: "bg-base-400",
    RunStatus.RUNNING: "bg-primary-600",
    RunStatus.SUCCEEDED: "bg-green-600",
    RunStatus.FAILED: "bg-red-600",
}


class RunOrgFilter(admin.SimpleListFilter):
    title = "organisation"
    parameter_name = "org"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("none", "REDS (routed)")] + [(str(o.pk), o.name) for o in orgs_manageable_by(request.user)]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "none":
            return queryset.filter(org__isnull=True)
        return queryset.filter(org_id=self.value()) if self.value() else queryset


class QuarantineInline(TabularInline):
    model = QuarantinedRow
    fields = ["line_no", "reason", "raw"]
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    per_page = 50
    show_change_link = False
    tab = True

    def get_queryset(self, request: HttpRequest) -> QuerySet[QuarantinedRow]:
        return super().get_queryset(request).order_by("line_no")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class _RunAdminBase(ReadOnlyAdmin):
    list_display = [
        "id",
        "source",
        "days",
        "status_label",
        "counts",
        "file_name",
        "trigger",
        "created_at",
        "duration",
    ]
    list_filter = [
        "source",
        "status",
        "trigger",
        ("run_date", RangeDateFilter),
    ]
    list_filter_submit = True
    search_fields = ["file_name", "error", "content_hash"]
    date_hierarchy = "created_at"
    list_per_page = 50
    actions = ["rerun_runs"]
    inlines = [QuarantineInline]
    fields = [
        "source",
        "org",
        "run_date",
        "status",
        "trigger",
        "error",
        "counts",
        "file_name",
        "file_size",
        "content_hash",
        "dates",
        "routed",
        "params",
        "job_link",
        "rerun_of",
        "created_by_email",
        "created_at",
        "started_at",
        "finished_at",
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[IngestionRun]:
        return super().get_queryset(request).select_related("org")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return list(self.fields)

    @admin.display(description="status", ordering="status")
    def status_label(self, run: IngestionRun) -> str:
        return format_html(
            "<span class='inline-block rounded-default px-2 py-0.5 text-xs text-white {}' title='{}'>{}</span>",
            STATUS_COLOURS.get(run.status, "bg-base-400"),  # type: ignore[call-overload]
            run.error[:300],
            run.get_status_display(),
        )

    @admin.display(description="read / loaded / quarantined")
    def counts(self, run: IngestionRun) -> str:
        return format_html(
            "<span class='tabular-nums'>{} / {} / <span class='{}'>{}</span></span>",
            f"{run.rows_read:,}",
            f"{run.rows_loaded:,}",
            "text-red-600" if run.rows_quarantined else "",
            f"{run.rows_quarantined:,}",
        )

    @admin.display(description="days", ordering="run_date")
    def days(self, run: IngestionRun) -> str:
        if run.dates:
            return run.dates[0] if len(run.dates) == 1 else f"{run.dates[0]} to {run.dates[-1]} ({len(run.dates)})"
        return run.run_date.isoformat() if run.run_date else "—"

    @admin.display(description="duration")
    def duration(self, run: IngestionRun) -> str:
        seconds = run.duration_seconds
        if seconds is None:
            return "—"
        return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"

    @admin.display(description="job")
    def job_link(self, run: IngestionRun) -> str:
        if not run.job_id:
            return "—"
        return format_html(
            "<a class='text-primary-600' href='../../../../jobs/job/{}/change/'>job #{}</a>", run.job_id, run.job_id
        )

    @action(description="Re-run selected runs (failed ones are retried; replaces their rows exactly)")
    def rerun_runs(self, request: HttpRequest, queryset: QuerySet[IngestionRun]) -> None:
        started = []
        for run in queryset:
            if run.status in (RunStatus.QUEUED, RunStatus.RUNNING):
                continue
            started.append(rerun(run=run, actor=request.user).pk)  # type: ignore[arg-type]
        skipped = queryset.count() - len(started)
        messages.info(
            request,
            f"Started {len(started)} run(s): {', '.join(f'#{pk}' for pk in started) or 'none'}"
            + (f"; skipped {skipped} still queued or running" if skipped else "")
            + ".",
        )

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Needed for the re-run action; the change form itself stays read-only.
        return obj is None and request.user.has_perm("ingestion.view_ingestionrun")


@admin.register(IngestionRun, site=global_admin)
class IngestionRunAdmin(_RunAdminBase):
    list_display = ["id", "source", "org", *_RunAdminBase.list_display[2:]]
    list_filter = [*_RunAdminBase.list_filter, RunOrgFilter]  # type: ignore[list-item]

    def get_queryset(self, request: HttpRequest) -> QuerySet[IngestionRun]:
        base = super().get_queryset(request)
        # Bombora runs are global data (no org): every admin user may see them (issue 5).
        return restrict_by_org(base, request.user) | base.filter(source=Source.BOMBORA, org__isnull=True)


@admin.register(IngestionRun, site=org_admin)
class OrgIngestionRunAdmin(_RunAdminBase):
    change_list_template = "ingestion/admin/run_changelist.html"

    def get_queryset(self, request: HttpRequest) -> QuerySet[IngestionRun]:
        org = request.org  # type: ignore[attr-defined]
        # REDS runs have no org (one file feeds several); they show where they loaded rows.
        return super().get_queryset(request).filter(Q(org=org) | Q(org__isnull=True, routed__has_key=org.slug))

    def get_urls(self) -> list[Any]:
        return [
            path(
                "upload-facebook/",
                self.admin_site.admin_view(self.upload_facebook_view),
                name="ingestion_ingestionrun_upload_facebook",
            ),
            *super().get_urls(),
        ]

    def upload_facebook_view(self, request: HttpRequest) -> HttpResponse:
        """Upload a file of any per-org source (Facebook by default) and load it now."""
        if not request.user.has_perm("ingestion.add_ingestionrun"):
            return redirect("admin:ingestion_ingestionrun_changelist")
        form = AdminUploadForm(request.POST or None, request.FILES or None)
        duplicate = None
        if request.method == "POST" and form.is_valid():
            try:
                outcome = handle_upload(
                    org=request.org,  # type: ignore[attr-defined]
                    upload=form.cleaned_data["file"],
                    actor=request.user,  # type: ignore[arg-type]
                    source=form.cleaned_data["source"] or Source.FACEBOOK,
                    run_date=form.cleaned_data["run_date"],
                    load_again=form.cleaned_data["load_again"],
                )
            except UploadRejected as exc:
                messages.error(request, str(exc))
            else:
                if outcome.run is None:
                    duplicate = outcome.duplicate_of
                    messages.warning(
                        request,
                        f"This exact file was already loaded (run #{duplicate.pk}). Submit again to load it anyway: "  # type: ignore[union-attr]
                        "rows are replaced, never doubled.",
                    )
                else:
                    upload_result_message(request, outcome)
                    return redirect("admin:ingestion_ingestionrun_change", outcome.run.pk)
        context = {
            **self.admin_site.each_context(request),
            "title": "Upload a file",
            "form": form,
            "duplicate": duplicate,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "ingestion/admin/upload_facebook.html", context)


# Issue 5: Bombora weeks, topics, coverage and upload in the global admin (ingestion/bombora/admin.py).
from ingestion import bombora_admin as _bombora_admin  # noqa: E402, F401
