"""Jobs in both admins, with progress bars; the task queue's own tables for super admins only."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from django_q import models as q_models
from unfold.admin import ModelAdmin
from unfold.decorators import action

from p360.core.admin_base import OrgIdListFilter, ReadOnlyAdmin
from p360.core.admin_sites import global_admin, org_admin
from p360.core.jobs.models import Job, JobStatus, WorkerHeartbeat
from p360.core.jobs.services import JobError, job_cancel
from tenants.access import orgs_manageable_by, restrict_by_org

STATUS_COLOURS = {
    JobStatus.QUEUED: "bg-base-400",
    JobStatus.RUNNING: "bg-primary-600",
    JobStatus.SUCCEEDED: "bg-green-600",
    JobStatus.FAILED: "bg-red-600",
    JobStatus.CANCELLED: "bg-base-400",
}


class JobOrgFilter(OrgIdListFilter):
    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(str(org.pk), org.name) for org in orgs_manageable_by(request.user)]


class _JobAdminBase(ReadOnlyAdmin):
    list_display = ["id", "kind", "status_label", "progress_bar", "created_at", "duration", "created_by"]
    list_filter = ["status", "kind"]
    search_fields = ["kind", "error"]
    list_per_page = 50
    actions = ["cancel_jobs"]
    readonly_fields = ["progress_bar", "log_lines"]
    fields = [
        "kind",
        "org",
        "status",
        "progress_bar",
        "params",
        "counts",
        "result",
        "error",
        "attempts",
        "max_attempts",
        "claimed_by",
        "created_by",
        "created_at",
        "started_at",
        "finished_at",
        "heartbeat_at",
        "log_lines",
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Job]:
        return super().get_queryset(request).select_related("org", "created_by")

    @admin.display(description="status", ordering="status")
    def status_label(self, job: Job) -> str:
        return format_html(
            "<span class='inline-block rounded-default px-2 py-0.5 text-xs text-white {}'>{}</span>",
            STATUS_COLOURS.get(job.status, "bg-base-400"),  # type: ignore[call-overload]
            job.get_status_display(),
        )

    @admin.display(description="progress")
    def progress_bar(self, job: Job) -> str:
        percent = job.percent
        label = f"{job.progress_done:,}" + (f" / {job.progress_total:,}" if job.progress_total else "")
        width = 0 if percent is None else percent
        return format_html(
            "<div class='min-w-40' role='progressbar' aria-valuenow='{}' aria-valuemin='0' aria-valuemax='100'>"
            "<div class='h-1.5 rounded-default bg-base-200 dark:bg-base-800'>"
            "<div class='h-1.5 rounded-default {}' style='width: {}%'></div></div>"
            "<div class='text-xs text-subtle mt-1'>{}{}</div></div>",
            round(width),
            STATUS_COLOURS.get(job.status, "bg-primary-600"),  # type: ignore[call-overload]
            round(width, 1),
            label,
            f" · {percent:.0f}%" if percent is not None else "",
        )

    @admin.display(description="duration")
    def duration(self, job: Job) -> str:
        if not job.started_at:
            return "—"
        end = job.finished_at or job.heartbeat_at or job.started_at
        seconds = (end - job.started_at).total_seconds()
        return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"

    @admin.display(description="log")
    def log_lines(self, job: Job) -> str:
        lines = "\n".join(f"{line['at'][:19]} {line['level'].upper():7} {line['message']}" for line in job.log[-200:])
        return format_html("<pre class='text-xs whitespace-pre-wrap'>{}</pre>", lines or "(no log lines)")

    @action(description="Cancel selected queued jobs")
    def cancel_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        cancelled = 0
        for job in queryset:
            try:
                job_cancel(job=job, actor=request.user)  # type: ignore[arg-type]
                cancelled += 1
            except JobError:
                pass
        messages.info(request, f"Cancelled {cancelled} of {queryset.count()} selected jobs.")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Needed for the cancel action; the form itself stays read-only (all fields readonly).
        return obj is None and request.user.has_perm("jobs.view_job")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return list(self.fields)


@admin.register(Job, site=global_admin)
class JobAdmin(_JobAdminBase):
    list_display = ["id", "kind", "org", "status_label", "progress_bar", "created_at", "duration", "created_by"]
    list_filter = ["status", "kind", JobOrgFilter]  # type: ignore[list-item]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Job]:
        return restrict_by_org(super().get_queryset(request), request.user)


@admin.register(Job, site=org_admin)
class OrgJobAdmin(_JobAdminBase):
    def get_queryset(self, request: HttpRequest) -> QuerySet[Job]:
        return super().get_queryset(request).filter(org=request.org)  # type: ignore[attr-defined]


@admin.register(WorkerHeartbeat, site=global_admin)
class WorkerHeartbeatAdmin(ReadOnlyAdmin):
    list_display = ["name", "seen_at"]


# django-q2's own tables hold every org's tasks: global admin, super admins only (see RoleBackend).
@admin.register(q_models.Schedule, site=global_admin)
class ScheduleAdmin(ModelAdmin):
    list_display = ["name", "func", "schedule_type", "minutes", "cron", "next_run", "repeats"]
    search_fields = ["name", "func"]


@admin.register(q_models.Success, site=global_admin)
class SuccessfulTaskAdmin(ReadOnlyAdmin):
    list_display = ["name", "func", "started", "stopped", "group"]
    search_fields = ["name", "func", "group"]
    list_filter = ["group"]


@admin.register(q_models.Failure, site=global_admin)
class FailedTaskAdmin(ReadOnlyAdmin):
    list_display = ["name", "func", "started", "stopped", "group", "result"]
    search_fields = ["name", "func", "group"]
    list_filter = ["group"]


@admin.register(q_models.OrmQ, site=global_admin)
class QueuedTaskAdmin(ReadOnlyAdmin):
    list_display = ["id", "key", "name", "lock"]

    @admin.display(description="task")
    def name(self, obj: q_models.OrmQ) -> str:
        return obj.name()
