"""Org admin: programs > campaigns > line items (the orchestration's main surface), CPM, settings, metrics.

Every save goes through the services (budget guard with row locks, flights, currency, audit). When a
service refuses (for example `budget_exceeded`), the whole change form is rolled back, nothing is
saved, and the form is shown again with the reason.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import OuterRef, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce, Least
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from unfold.admin import ModelAdmin, TabularInline
from unfold.contrib.filters.admin import RangeDateFilter

from campaigns.models import (
    AutomationAction,
    Campaign,
    ClientSettings,
    CpmRate,
    DailyMetric,
    LineItem,
    PacingAlert,
    PerformanceRule,
    Program,
    Strategy,
    SyncLog,
)
from campaigns.selectors import client_settings
from campaigns.services import (
    CampaignServiceError,
    campaign_delete,
    campaign_save,
    client_settings_save,
    cpm_set,
    duplicate_campaign,
    line_item_delete,
    line_item_save,
    program_save,
    transition,
)
from p360.core import formatting
from p360.core.admin_base import BoundedDateHierarchyMixin, ReadOnlyAdmin, money_column
from p360.core.admin_sites import org_admin

# --- Client settings, CPM history, hierarchy and daily metrics (ingestion issue) -------------------


@admin.register(CpmRate, site=org_admin)
class CpmRateAdmin(BoundedDateHierarchyMixin, ModelAdmin):
    """CPM history: rates are added (or a day's rate replaced), never edited away; the rate in force
    on a date is the latest effective on or before it."""

    list_display = ["effective_date", money_column("cpm", "CPM"), "currency", "note", "created_by_email", "created_at"]
    fields = ["cpm", "effective_date", "currency", "note"]
    date_hierarchy = "effective_date"
    list_per_page = 50

    def save_model(self, request: HttpRequest, obj: CpmRate, form: Any, change: bool) -> None:
        saved = cpm_set(
            cpm=obj.cpm,
            effective_date=obj.effective_date,
            currency=obj.currency,
            note=obj.note,
            actor=request.user,  # type: ignore[arg-type]
        )
        obj.pk = saved.pk

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change, **kwargs)
        # The same day replaces its rate (through the service); the unique check would refuse it.
        form.validate_unique = lambda self: None  # type: ignore[method-assign]
        return form


class ClientSettingsForm(forms.ModelForm):
    vibe_api_key = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Stored encrypted; leave empty to keep the current key.",
    )

    class Meta:
        model = ClientSettings
        fields = [
            "currency",
            "alert_emails",
            "surfside_enabled",
            "surfside_prefix",
            "surfside_pattern",
            "vibe_enabled",
            "vibe_advertiser_id",
        ]


@admin.register(ClientSettings, site=org_admin)
class ClientSettingsAdmin(ModelAdmin):
    form = ClientSettingsForm
    list_display = ["__str__", "currency", "surfside_enabled", "vibe_enabled", "vibe_key_set", "updated_at"]
    fieldsets = [
        (None, {"fields": ["currency", "alert_emails"]}),
        ("Surfside (S3)", {"fields": ["surfside_enabled", "surfside_prefix", "surfside_pattern"]}),
        ("Vibe (reporting API)", {"fields": ["vibe_enabled", "vibe_advertiser_id", "vibe_api_key"]}),
    ]

    @admin.display(description="Vibe key", boolean=True)
    def vibe_key_set(self, obj: ClientSettings) -> bool:
        return obj.has_vibe_key

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # one row per organisation, created on first use

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        # A list of one row is noise: open the organisation's settings directly.
        return redirect("admin:campaigns_clientsettings_change", client_settings().pk)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: ClientSettings, form: Any, change: bool) -> None:
        client_settings_save(
            settings_row=obj,
            actor=request.user,  # type: ignore[arg-type]
            vibe_api_key=form.cleaned_data.get("vibe_api_key") or None,
        )


@admin.register(DailyMetric, site=org_admin)
class DailyMetricAdmin(ReadOnlyAdmin):
    list_display = [
        "date",
        "source",
        "campaign",
        "strategy",
        "placement",
        "creative",
        "impressions_shown",
        "clicks_shown",
        "conversions_shown",
        "spend_2dp",
        "ctr_shown",
        "cpc_shown",
        "cpa_shown",
        "roas_shown",
    ]
    list_filter = ["source", ("date", RangeDateFilter)]
    list_filter_submit = True
    search_fields = ["campaign__name", "strategy__name", "placement__name", "creative__name"]
    list_select_related = ["campaign", "strategy", "placement", "creative"]
    date_hierarchy = "date"
    list_per_page = 100
    show_full_result_count = False

    @admin.display(description="spend", ordering="spend")
    def spend_2dp(self, obj: DailyMetric) -> str:
        return formatting.money(obj.spend)

    # Figures through the one formatting layer (p360.core.formatting); exports and the API keep exact values.
    @admin.display(description="impressions", ordering="impressions")
    def impressions_shown(self, obj: DailyMetric) -> str:
        return formatting.count(obj.impressions)

    @admin.display(description="clicks", ordering="clicks")
    def clicks_shown(self, obj: DailyMetric) -> str:
        return formatting.count(obj.clicks)

    @admin.display(description="conversions", ordering="conversions")
    def conversions_shown(self, obj: DailyMetric) -> str:
        return formatting.count(obj.conversions)

    @admin.display(description="CTR", ordering="ctr")
    def ctr_shown(self, obj: DailyMetric) -> str:
        return formatting.metric("ctr", obj.ctr)

    @admin.display(description="CPC", ordering="cpc")
    def cpc_shown(self, obj: DailyMetric) -> str:
        return formatting.metric("cpc", obj.cpc)

    @admin.display(description="CPA", ordering="cpa")
    def cpa_shown(self, obj: DailyMetric) -> str:
        return formatting.metric("cpa", obj.cpa)

    @admin.display(description="ROAS", ordering="roas")
    def roas_shown(self, obj: DailyMetric) -> str:
        return formatting.metric("roas", obj.roas)


@admin.register(Strategy, site=org_admin)
class StrategyAdmin(ReadOnlyAdmin):
    list_display = ["name", "campaign", "created_at"]
    search_fields = ["name", "campaign__name"]
    list_select_related = ["campaign"]
    list_filter = ["campaign__source"]


# --- Orchestration (issue 14): programs, campaigns, line items, rules, automatic actions, sync -------


def budget_bar(budget: Decimal, allocated: Decimal, spent: Decimal, currency: str) -> str:
    """Planned (allocated to children), spent and remaining as one bar with the figures beside it."""
    budget = budget or Decimal("0")
    pct = lambda v: 0 if not budget else min(100, float(v / budget * 100))  # noqa: E731
    remaining = budget - spent
    figures = [formatting.money(v, currency) for v in (allocated, spent, remaining)]  # $1,000.00, as the pages show
    return format_html(
        '<div title="planned {} / spent {} / remaining {}" style="min-width:12rem">'
        '<div style="position:relative;height:.6rem;background:#e5e7eb;border-radius:.3rem;overflow:hidden">'
        '<div style="position:absolute;inset:0 auto 0 0;width:{}%;background:#93c5fd"></div>'
        '<div style="position:absolute;inset:0 auto 0 0;width:{}%;background:{}"></div></div>'
        "<small>planned {} · spent {} · remaining {}</small></div>",
        *figures,
        f"{pct(allocated):.1f}",
        f"{pct(spent):.1f}",
        "#dc2626" if spent > budget else "#2563eb",
        *figures,
    )


class ServiceFormMixin:
    """A refusal the service finds only under the row lock (the form's own checks passed) is shown on the form
    again as a form error, with what the user typed: the admin's transaction is rolled back (nothing saved),
    then the view runs once more with the refusal attached to the form's `clean()`, so Django renders the
    form (and its inlines) invalid, exactly as for any other form error."""

    def changeform_view(  # type: ignore[no-untyped-def]
        self, request: HttpRequest, object_id: str | None = None, form_url: str = "", extra_context: Any = None
    ):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)  # type: ignore[misc]
        except CampaignServiceError as exc:
            if request.method != "POST" or getattr(request, "_service_refusal", None) is not None:
                raise
            request._service_refusal = exc  # type: ignore[attr-defined]
        response = super().changeform_view(request, object_id, form_url, extra_context)  # type: ignore[misc]
        response.status_code = 400  # the form again, with the refusal: nothing was saved
        return response

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form_class = super().get_form(request, obj, change, **kwargs)  # type: ignore[misc]
        found: CampaignServiceError | None = getattr(request, "_service_refusal", None)
        if found is None:
            return form_class
        refusal: CampaignServiceError = found

        class RefusedForm(form_class):  # type: ignore[misc, valid-type]
            def clean(self) -> Any:
                data = super().clean()
                field = refusal.details.get("field")
                target = {"end": "end_date", "start": "start_date"}.get(str(field), field)
                self.add_error(target if target in self.fields else None, f"{refusal} ({refusal.code})")
                return data

        return RefusedForm


def _transition_action(name: str, label: str):  # type: ignore[no-untyped-def]
    @admin.action(description=label)
    def act(modeladmin: Any, request: HttpRequest, queryset: QuerySet) -> None:
        done, refused = 0, []
        for obj in queryset:
            try:
                transition(obj=obj, action=name, actor=request.user)  # type: ignore[arg-type]
                done += 1
            except CampaignServiceError as exc:
                refused.append(f"{obj}: {exc}")
        if done:
            modeladmin.message_user(request, f"{label}: {done} done.", messages.SUCCESS)
        for line in refused:
            modeladmin.message_user(request, line, messages.ERROR)

    act.__name__ = f"action_{name}"
    return act


WORKFLOW_ACTIONS = [
    _transition_action("submit", "Submit for approval"),
    _transition_action("approve", "Approve"),
    _transition_action("launch", "Launch"),
    _transition_action("pause", "Pause"),
    _transition_action("resume", "Resume"),
    _transition_action("complete", "Complete"),
]


class GuardedFormSet(BaseInlineFormSet):
    """Children of one parent may not sum above its budget: checked on the form for a clear message
    (the service checks again under the row lock when saving)."""

    parent_budget_field = "budget"

    def clean(self) -> None:
        super().clean()
        parent_budget = self.data.get(self.parent_budget_field)
        try:
            parent = Decimal(str(parent_budget)) if parent_budget not in (None, "") else self.instance.budget
        except Exception:  # noqa: BLE001 - the parent form reports its own bad number
            return
        total = Decimal("0")
        for form in self.forms:
            if not hasattr(form, "cleaned_data") or form.cleaned_data.get("DELETE"):
                continue
            total += form.cleaned_data.get("budget") or Decimal("0")
        if parent is not None and total > parent:
            raise forms.ValidationError(
                f"budget_exceeded: these add up to {total:,.2f}, above the parent's budget of {parent:,.2f}"
            )


class CampaignInline(TabularInline):
    model = Campaign
    formset = GuardedFormSet
    fields = ["name", "status", "budget", "currency", "start_date", "end_date"]
    readonly_fields = ["status"]
    extra = 0
    show_change_link = True


class LineItemInline(TabularInline):
    model = LineItem
    formset = GuardedFormSet
    fields = [
        "name",
        "external_id",
        "status",
        "budget",
        "bid",
        "pricing_model",
        "pacing",
        "creatives",
        "start_date",
        "end_date",
        "auto_pause_at_budget",
    ]
    readonly_fields = ["status"]
    extra = 0
    show_change_link = True


class PerformanceRuleInline(TabularInline):
    model = PerformanceRule
    fields = ["metric", "target", "min_spend", "active"]
    extra = 0


class _SaveInlinesThroughServices:
    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        if formset.model not in (Campaign, LineItem):
            return super().save_formset(request, form, formset, change)  # type: ignore[misc]
        instances = formset.save(commit=False)
        for obj in formset.deleted_objects:
            if isinstance(obj, LineItem):
                line_item_delete(line_item=obj, actor=request.user)  # type: ignore[arg-type]
            else:
                campaign_delete(campaign=obj, actor=request.user)  # type: ignore[arg-type]
        # Lowered budgets first, so freeing room before using it never trips the guard.
        for obj in sorted(instances, key=lambda o: o.budget - _stored_budget(o)):
            if isinstance(obj, LineItem):
                line_item_save(line_item=obj, actor=request.user)  # type: ignore[arg-type]
            else:
                campaign_save(campaign=obj, actor=request.user)  # type: ignore[arg-type]
        formset.save_m2m()


def _stored_budget(obj: Any) -> Decimal:
    if obj.pk is None:
        return Decimal("0")
    return type(obj).objects.filter(pk=obj.pk).values_list("budget", flat=True).first() or Decimal("0")


def _spent_subquery() -> Subquery:
    """A campaign's spend over its flight (else its program's) up to today, as the pacing reports it."""
    today = timezone.localdate()
    rows = DailyMetric.objects.filter(
        campaign=OuterRef("pk"),
        date__gte=Coalesce(OuterRef("start_date"), OuterRef("program__start_date"), Value(dt.date.min)),
        date__lte=Least(
            Coalesce(OuterRef("end_date"), OuterRef("program__end_date"), Value(dt.date.max)), Value(today)
        ),
    )
    return Subquery(rows.values("campaign").annotate(total=Sum("spend")).values("total"))


@admin.register(Program, site=org_admin)
class ProgramAdmin(ServiceFormMixin, _SaveInlinesThroughServices, ModelAdmin):
    list_display = ["name", "flight", "budget_bars", "salesforce"]
    search_fields = ["name", "salesforce_opportunity_id"]
    fields = ["name", "budget", "currency", "start_date", "end_date", "salesforce_opportunity_id"]
    inlines = [CampaignInline]
    change_form_after_template = "admin/campaigns/program_after.html"
    list_before_template = "admin/campaigns/program_list_before.html"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Program]:
        return super().get_queryset(request).annotate(allocated=Sum("campaigns__budget"))

    @admin.display(description="flight")
    def flight(self, obj: Program) -> str:
        return f"{obj.start_date or '…'} → {obj.end_date or '…'}"

    @admin.display(description="budget (planned / spent / remaining)")
    def budget_bars(self, obj: Program) -> str:
        from campaigns.pacing import program_figures

        spent = program_figures(obj, timezone.localdate()).spend
        return budget_bar(obj.budget, getattr(obj, "allocated", None) or Decimal("0"), spent, obj.currency)

    @admin.display(description="Salesforce")
    def salesforce(self, obj: Program) -> str:
        from campaigns.selectors import salesforce_opportunity_url

        url = salesforce_opportunity_url(obj.salesforce_opportunity_id)
        return (
            format_html('<a href="{}" target="_blank" rel="noopener">{}</a>', url, obj.salesforce_opportunity_id)
            if url
            else "—"
        )

    def save_model(self, request: HttpRequest, obj: Program, form: Any, change: bool) -> None:
        program_save(program=obj, actor=request.user)  # type: ignore[arg-type]

    def get_urls(self) -> list[Any]:
        return [
            path("calendar/", self.admin_site.admin_view(self.calendar_view), name="campaigns_program_calendar"),
            *super().get_urls(),
        ]

    def calendar_view(self, request: HttpRequest) -> HttpResponse:
        from campaigns.selectors import flight_calendar

        context = {
            **self.admin_site.each_context(request),
            "title": "Flight calendar",
            "calendar": flight_calendar(request.GET.get("month")),
        }
        return TemplateResponse(request, "admin/campaigns/calendar.html", context)

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None) -> Any:
        from campaigns.pacing import labelled_pacing, program_pacing

        program = Program.objects.filter(pk=object_id).first()
        extra = {**(extra_context or {})}
        if program is not None:
            extra["pacing"] = labelled_pacing(program_pacing(program, timezone.localdate()))
            extra["calendar_url"] = reverse("admin:campaigns_program_calendar")
        return super().change_view(request, object_id, form_url, extra)


@admin.register(Campaign, site=org_admin)
class CampaignAdmin(BoundedDateHierarchyMixin, ServiceFormMixin, _SaveInlinesThroughServices, ModelAdmin):
    list_display = ["name", "program", "source", "status", "start_date", "end_date", "budget_bars"]
    list_filter = ["status", "source", "program", "currency"]
    search_fields = ["name", "external_id"]
    date_hierarchy = "start_date"
    filter_horizontal = ["audiences"]
    list_per_page = 50
    list_select_related = ["program"]
    fields = [
        "program",
        "name",
        "source",
        "external_id",
        "status",
        "budget",
        "currency",
        "start_date",
        "end_date",
        "audiences",
    ]
    readonly_fields = ["status"]
    inlines = [LineItemInline, PerformanceRuleInline]
    change_form_after_template = "admin/campaigns/campaign_after.html"
    actions = [*WORKFLOW_ACTIONS, "duplicate", "sync_to_ttd", "apply_suggested_reallocation"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Campaign]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                allocated=Subquery(
                    LineItem.objects.filter(campaign=OuterRef("pk"))
                    .values("campaign")
                    .annotate(total=Sum("budget"))
                    .values("total")
                ),
                spent=_spent_subquery(),
            )
        )

    @admin.display(description="budget (planned / spent / remaining)")
    def budget_bars(self, obj: Campaign) -> str:
        return budget_bar(
            obj.budget,
            getattr(obj, "allocated", None) or Decimal("0"),
            getattr(obj, "spent", None) or Decimal("0"),
            obj.currency,
        )

    def save_model(self, request: HttpRequest, obj: Campaign, form: Any, change: bool) -> None:
        campaign_save(campaign=obj, actor=request.user)  # type: ignore[arg-type]

    def delete_model(self, request: HttpRequest, obj: Campaign) -> None:
        campaign_delete(campaign=obj, actor=request.user)  # type: ignore[arg-type]

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        for campaign in queryset:
            campaign_delete(campaign=campaign, actor=request.user)  # type: ignore[arg-type]

    @admin.action(description="Duplicate (as a draft, with its line items)")
    def duplicate(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        for campaign in queryset:
            try:
                copy = duplicate_campaign(campaign=campaign, actor=request.user)  # type: ignore[arg-type]
                self.message_user(request, f"{campaign} duplicated as {copy}.", messages.SUCCESS)
            except CampaignServiceError as exc:
                self.message_user(request, f"{campaign}: not duplicated ({exc.code}): {exc}", messages.ERROR)

    @admin.action(description="Sync to The Trade Desk")
    def sync_to_ttd(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        from campaigns.ttd import TtdError, sync_campaign

        for campaign in queryset:
            try:
                logs = sync_campaign(campaign=campaign, actor=request.user)  # type: ignore[arg-type]
            except TtdError as exc:
                self.message_user(request, f"{campaign}: {exc}", messages.ERROR)
                continue
            summary = ", ".join(f"{log.object_type} {log.object_id}: {log.action}" for log in logs)
            level = messages.WARNING if any(log.action in ("drift", "error") for log in logs) else messages.SUCCESS
            self.message_user(request, f"{campaign}: {summary}", level)

    @admin.action(description="Apply the suggested budget reallocation")
    def apply_suggested_reallocation(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        from campaigns.automation import apply_reallocation, suggest_reallocation

        for campaign in queryset:
            moves = suggest_reallocation(campaign, timezone.localdate())
            if not moves:
                self.message_user(request, f"{campaign}: nothing to reallocate (needs two ranked line items).")
                continue
            try:
                row = apply_reallocation(
                    campaign=campaign,
                    moves=[{"from": m.source.pk, "to": m.target.pk, "amount": str(m.amount)} for m in moves],
                    actor=request.user,  # type: ignore[arg-type]
                )
                self.message_user(request, f"{campaign}: {row.reason}", messages.SUCCESS)
            except CampaignServiceError as exc:
                self.message_user(request, f"{campaign}: {exc}", messages.ERROR)

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None) -> Any:
        from campaigns.automation import suggest_reallocation
        from campaigns.pacing import campaign_flight, chart_data, daily_spend, line_item_flight, line_item_paces

        campaign = Campaign.objects.select_related("program").filter(pk=object_id).first()
        extra = {**(extra_context or {})}
        if campaign is not None:
            start, end = campaign_flight(campaign)
            charts = [
                {
                    "id": f"c{campaign.pk}",
                    "title": f"Campaign {campaign.name}",
                    "data": chart_data(
                        budget=campaign.budget, start=start, end=end, days=daily_spend(campaign=campaign), pacing="even"
                    ),
                }
            ]
            for li in campaign.line_items.select_related("campaign__program"):
                li_start, li_end = line_item_flight(li)
                charts.append(
                    {
                        "id": f"l{li.pk}",
                        "title": f"Line item {li.name}",
                        "data": chart_data(
                            budget=li.budget,
                            start=li_start,
                            end=li_end,
                            days=daily_spend(line_item=li),
                            pacing=li.pacing,
                        ),
                    }
                )
            extra["pacing_charts"] = charts
            extra["line_item_pacing"] = [
                p.as_json() for p in line_item_paces([campaign], timezone.localdate()).values()
            ]
            extra["suggestion"] = [m.as_json() for m in suggest_reallocation(campaign, timezone.localdate())]
            extra["sync_logs"] = SyncLog.objects.filter(object_type="campaign", object_id=campaign.pk)[:10]
        return super().change_view(request, object_id, form_url, extra)


@admin.register(LineItem, site=org_admin)
class LineItemAdmin(ServiceFormMixin, ModelAdmin):
    list_display = [
        "name",
        "campaign",
        "status",
        "pricing_model",
        "pacing",
        money_column("bid", "Bid"),
        money_column("budget", "Budget"),
        "start_date",
        "end_date",
    ]
    list_filter = ["status", "pricing_model", "pacing", "campaign__program"]
    search_fields = ["name", "external_id", "campaign__name"]
    list_select_related = ["campaign"]
    readonly_fields = ["status", "ttd_ad_group_id"]
    actions = WORKFLOW_ACTIONS

    def save_model(self, request: HttpRequest, obj: LineItem, form: Any, change: bool) -> None:
        line_item_save(line_item=obj, actor=request.user)  # type: ignore[arg-type]

    def delete_model(self, request: HttpRequest, obj: LineItem) -> None:
        line_item_delete(line_item=obj, actor=request.user)  # type: ignore[arg-type]


@admin.register(AutomationAction, site=org_admin)
class AutomationActionAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "kind", "campaign", "reason", "actor_email", "reverted_at", "reverted_by_email"]
    list_filter = ["kind", ("created_at", RangeDateFilter)]
    actions = ["revert"]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return obj is None and request.user.has_perm("campaigns.change_automationaction")  # actions only

    @admin.action(description="Revert (restore exactly what the action changed)")
    def revert(self, request: HttpRequest, queryset: QuerySet[AutomationAction]) -> None:
        from campaigns.automation import revert_action

        for row in queryset:
            try:
                revert_action(action_row=row, actor=request.user)  # type: ignore[arg-type]
                self.message_user(request, f"Reverted: {row.reason}", messages.SUCCESS)
            except CampaignServiceError as exc:
                self.message_user(request, f"Not reverted: {exc}", messages.ERROR)


class PacingStatusFilter(admin.SimpleListFilter):
    """The alerts' status filter in words (the field has no choices: its values are the pacing codes)."""

    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        from campaigns.pacing import PACING_LABELS

        codes = model_admin.get_queryset(request).values_list("status", flat=True).distinct().order_by("status")
        return [(code, PACING_LABELS.get(code, code.replace("_", " ").capitalize())) for code in codes]

    def queryset(self, request: HttpRequest, queryset: QuerySet[PacingAlert]) -> QuerySet[PacingAlert]:
        return queryset.filter(status=self.value()) if self.value() else queryset


@admin.register(PacingAlert, site=org_admin)
class PacingAlertAdmin(ReadOnlyAdmin):
    list_display = ["day", "status_shown", "message", "emailed", "acknowledged"]
    list_filter = [PacingStatusFilter, "acknowledged", ("day", RangeDateFilter)]
    actions = ["acknowledge"]

    @admin.display(description="Status", ordering="status")
    def status_shown(self, obj: PacingAlert) -> str:
        """Words as the programs page says them ("Under-pacing", not `under`)."""
        from campaigns.pacing import PACING_LABELS

        return PACING_LABELS.get(obj.status, obj.status.replace("_", " ").capitalize())

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return obj is None and request.user.has_perm("campaigns.change_pacingalert")

    @admin.action(description="Acknowledge")
    def acknowledge(self, request: HttpRequest, queryset: QuerySet[PacingAlert]) -> None:
        queryset.update(acknowledged=True)


@admin.register(SyncLog, site=org_admin)
class SyncLogAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "object_type", "object_id", "action", "remote_id", "attempts", "message"]
    list_filter = ["action", "object_type"]
