"""Ingestion runs in both admins: filters, counts and errors, quarantined rows, retry / re-run,
and the Facebook upload form inside the org admin."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import Q, QuerySet, Value
from django.db.models.fields.json import KeyTransform
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.html import format_html
from unfold.admin import TabularInline
from unfold.contrib.filters.admin import RangeDateFilter
from unfold.decorators import action

from ingestion.admin_ops import RunTracebackMixin
from ingestion.models import IngestionRun, QuarantinedRow, RunStatus, Source
from ingestion.selectors import runs_for_org_q
from ingestion.services import rerun
from ingestion.uploads import UploadRejected, handle_upload
from ingestion.views import upload_result_message
from p360.core import formatting
from p360.core.admin_base import OrgIdListFilter, ReadOnlyAdmin
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


class RunOrgFilter(OrgIdListFilter):
    extra_values = {"none": {"org__isnull": True}}

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("none", "REDS (routed)")] + [(str(o.pk), o.name) for o in orgs_manageable_by(request.user)]


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


class OrgQuarantineInline(QuarantineInline):
    """An org admin sees the quarantined lines of its own runs, and of a multi-organisation REDS run
    only the lines carrying its advertiser id (never another org's raw data, nor lines of no org)."""

    def get_queryset(self, request: HttpRequest) -> QuerySet[QuarantinedRow]:
        org = request.org  # type: ignore[attr-defined]
        return super().get_queryset(request).filter(Q(run__org=org) | Q(run__org__isnull=True, org_slug=org.slug))


def org_slice(run: IngestionRun) -> dict[str, Any] | None:
    """The org admin's slice of a multi-organisation run (None: the run is the org's own, show it whole).

    Set by `OrgIngestionRunAdmin.get_queryset` (annotations); runs loaded before slices were recorded
    fall back to the org's routed count and nothing else."""
    if run.org_id is not None or not hasattr(run, "slice_org"):
        return None
    found = getattr(run, "slice_data", None)
    if isinstance(found, dict):
        return found
    routed = getattr(run, "slice_routed", None) or 0
    return {"rows_read": routed, "rows_loaded": routed, "rows_quarantined": 0, "dates": [], "warnings": []}


def slice_error(run: IngestionRun) -> str:
    part = org_slice(run)
    if part is None:
        return run.error
    return str(part.get("error") or "; ".join(part.get("warnings") or []))


class _RunAdminBase(RunTracebackMixin, ReadOnlyAdmin):  # issue 15: tracebacks for staff
    list_display = [
        "id",
        "source",
        "days",
        "status_label",
        "counts",
        "file_label",
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
        "error_text",
        "traceback_text",  # issue 15
        "counts",
        "file_name",
        "file_size",
        "content_hash",
        "days",
        "routed_rows",
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
            slice_error(run)[:300],
            run.get_status_display(),
        )

    @admin.display(description="read / loaded / quarantined")
    def counts(self, run: IngestionRun) -> str:
        part = org_slice(run)
        read, loaded, quarantined = (
            (run.rows_read, run.rows_loaded, run.rows_quarantined)
            if part is None
            else (int(part.get("rows_read", 0)), int(part.get("rows_loaded", 0)), int(part.get("rows_quarantined", 0)))
        )
        return format_html(
            "<span class='tabular-nums'>{} / {} / <span class='{}'>{}</span></span>",
            f"{read:,}",
            f"{loaded:,}",
            "text-red-600" if quarantined else "",
            f"{quarantined:,}",
        )

    @admin.display(description="days", ordering="run_date")
    def days(self, run: IngestionRun) -> str:
        # one short line ("9-22 Nov 2026 · 14 days"): a long date list must not wrap the cell onto five lines;
        # an org admin reads the days of its own slice of a multi-organisation run
        part = org_slice(run)
        dates = run.dates if part is None else list(part.get("dates") or [])
        if dates:
            first, last = dates[0], dates[-1]
            text = (
                formatting.day(first) if len(dates) == 1 else f"{formatting.day_span(first, last)} · {len(dates)} days"
            )
        else:
            text = formatting.day(run.run_date)
        return format_html("<span class='whitespace-nowrap tabular-nums'>{}</span>", text)

    @admin.display(description="file", ordering="file_name")
    def file_label(self, run: IngestionRun) -> str:
        # S3 keys run to 100+ characters: the list shows the file's own name, cut short, with the whole key on
        # hover, so the changelist fits a 1440 px screen without scrolling sideways
        name = run.file_name or ""
        short = name.rsplit("/", 1)[-1]
        if len(short) > 40:
            short = short[:24] + "…" + short[-15:]
        return format_html("<span class='whitespace-nowrap' title='{}'>{}</span>", name, short or "—")

    @admin.display(description="error")
    def error_text(self, run: IngestionRun) -> str:
        return slice_error(run)

    @admin.display(description="routed")
    def routed_rows(self, run: IngestionRun) -> str:
        part = org_slice(run)
        routed = run.routed if part is None else {run.slice_org: part.get("rows_loaded", 0)}  # type: ignore[attr-defined]
        return ", ".join(f"{slug}: {count:,}" for slug, count in routed.items()) or "—"

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

    def rerun_scope(self, request: HttpRequest) -> Any:
        """The organisation a re-run is limited to (None: the whole run; the global admin)."""
        return None

    @action(description="Re-run selected runs (failed ones are retried; replaces their rows exactly)")
    def rerun_runs(self, request: HttpRequest, queryset: QuerySet[IngestionRun]) -> None:
        started = []
        scope = self.rerun_scope(request)
        for run in queryset:
            if run.status in (RunStatus.QUEUED, RunStatus.RUNNING):
                continue
            started.append(rerun(run=run, actor=request.user, org=scope).pk)  # type: ignore[arg-type]
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
    inlines = [OrgQuarantineInline]
    # Never the error text: a search would tell whether another org's error matches (issue 15).
    search_fields = ["file_name", "content_hash"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[IngestionRun]:
        org = request.org  # type: ignore[attr-defined]
        # REDS runs have no org (one file feeds several): they show where the org has rows, and only the
        # org's slice of them (annotated here, read by every display method through `org_slice`).
        return (
            super()
            .get_queryset(request)
            .filter(runs_for_org_q(org))
            .annotate(
                slice_org=Value(org.slug),
                slice_data=KeyTransform(org.slug, "org_slices"),
                slice_routed=KeyTransform(org.slug, "routed"),
            )
        )

    def rerun_scope(self, request: HttpRequest) -> Any:
        return request.org  # type: ignore[attr-defined]

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
