"""Issue 15 (document 004 A.4) in the admins: failed runs' tracebacks for staff, and the source circuit breakers
(state, failures in a row, last error, "Reset" and "Run now")."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from unfold.decorators import action

from ingestion.breaker import BreakerError, close_breaker, open_breakers, run_now
from ingestion.models import IngestionRun, SourceBreaker
from p360.core.admin_base import ReadOnlyAdmin
from p360.core.admin_sites import global_admin, org_admin
from tenants.access import restrict_by_org
from tenants.models import Role


def traceback_html(text: str) -> str:
    if not text:
        return "—"
    return format_html("<pre class='text-xs whitespace-pre-wrap overflow-x-auto max-h-96'>{}</pre>", text)


class RunTracebackMixin:
    """The failed run's traceback, readable by staff in the admin (never on marketer pages or the API).

    In an org admin it shows only for the org's own runs: a REDS run routed to several orgs may carry another
    org's values in its traceback, so that one is read in the global admin."""

    @admin.display(description="traceback (staff only)")
    def traceback_text(self, run: IngestionRun) -> str:
        return traceback_html(run.traceback)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        fields = list(super().get_fields(request, obj))  # type: ignore[misc]
        org = getattr(request, "org", None)
        if org is not None and obj is not None and obj.org_id != org.pk and "traceback_text" in fields:
            fields.remove("traceback_text")
        return fields


class _BreakerAdminBase(ReadOnlyAdmin):
    list_display = [
        "source",
        "scope",
        "state_label",
        "consecutive_failures",
        "last_error_short",
        "opened_at",
        "updated_at",
    ]
    list_filter = ["state", "source"]
    actions = ["reset_breakers", "run_now_breakers"]
    fields = [
        "source",
        "org",
        "state",
        "consecutive_failures",
        "last_error",
        "last_failed_run",
        "opened_at",
        "closed_at",
        "updated_at",
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[SourceBreaker]:
        return super().get_queryset(request).select_related("org")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return list(self.fields)

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        opened = self.get_queryset(request).filter(pk__in=open_breakers().values("pk"))
        for breaker in opened:
            messages.warning(
                request,
                f"Circuit breaker OPEN: {breaker} after {breaker.consecutive_failures} failures in a row; its "
                'scheduled pickup is paused. Fix the cause, then use "Run now" or "Reset".',
            )
        return super().changelist_view(request, extra_context)

    @admin.display(description="organisation")
    def scope(self, breaker: SourceBreaker) -> str:
        return breaker.org.slug if breaker.org_id else "all (global source)"  # type: ignore[union-attr]

    @admin.display(description="state", ordering="state")
    def state_label(self, breaker: SourceBreaker) -> str:
        colour = "bg-red-600" if breaker.is_open else "bg-green-600"
        return format_html(
            "<span class='inline-block rounded-default px-2 py-0.5 text-xs text-white {}'>{}</span>",
            colour,
            "OPEN (paused)" if breaker.is_open else "closed",
        )

    @admin.display(description="last error")
    def last_error_short(self, breaker: SourceBreaker) -> str:
        return breaker.last_error[:120] or "—"

    def _may_act(self, request: HttpRequest, breaker: SourceBreaker) -> bool:
        # A global source's breaker pauses every org's data: only super admins reset or run it.
        return breaker.org_id is not None or request.user.role == Role.SUPER_ADMIN  # type: ignore[union-attr]

    @action(description="Reset (close) selected breakers: the schedule resumes")
    def reset_breakers(self, request: HttpRequest, queryset: QuerySet[SourceBreaker]) -> None:
        done = 0
        for breaker in queryset:
            if self._may_act(request, breaker):
                close_breaker(breaker=breaker, actor=request.user, reason="reset in the admin")  # type: ignore[arg-type]
                done += 1
        messages.info(request, f"Reset {done} of {queryset.count()} breaker(s).")

    @action(description="Run now (a manual run; closes the breaker when it succeeds)")
    def run_now_breakers(self, request: HttpRequest, queryset: QuerySet[SourceBreaker]) -> None:
        for breaker in queryset:
            if not self._may_act(request, breaker):
                messages.error(request, f"{breaker}: only a super admin may run a global source.")
                continue
            try:
                run = run_now(breaker=breaker, actor=request.user)  # type: ignore[arg-type]
            except BreakerError as exc:
                messages.error(request, f"{breaker}: {exc}")
            else:
                messages.info(request, f"{breaker}: started run #{run.pk}.")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Needed for the actions; the change form itself stays read-only.
        return obj is None and request.user.has_perm("ingestion.change_sourcebreaker")


@admin.register(SourceBreaker, site=global_admin)
class SourceBreakerAdmin(_BreakerAdminBase):
    def get_queryset(self, request: HttpRequest) -> QuerySet[SourceBreaker]:
        base = super().get_queryset(request)
        return restrict_by_org(base, request.user) | base.filter(org__isnull=True)


@admin.register(SourceBreaker, site=org_admin)
class OrgSourceBreakerAdmin(_BreakerAdminBase):
    list_display = [c for c in _BreakerAdminBase.list_display if c != "scope"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[SourceBreaker]:
        return super().get_queryset(request).filter(org=request.org)  # type: ignore[attr-defined]
