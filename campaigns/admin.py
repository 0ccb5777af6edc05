"""Org admin: campaigns of the current organisation."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from unfold.admin import ModelAdmin
from unfold.contrib.filters.admin import RangeDateFilter

from campaigns.models import Campaign, ClientSettings, CpmRate, DailyMetric, Strategy
from campaigns.selectors import client_settings
from campaigns.services import campaign_delete, campaign_save, client_settings_save, cpm_set
from p360.core.admin_base import ReadOnlyAdmin
from p360.core.admin_sites import org_admin


@admin.register(Campaign, site=org_admin)
class CampaignAdmin(ModelAdmin):
    list_display = ["name", "source", "status", "start_date", "end_date", "budget", "currency"]
    list_filter = ["status", "source", "currency"]
    search_fields = ["name", "external_id"]
    date_hierarchy = "start_date"
    filter_horizontal = ["audiences"]
    list_per_page = 50

    def save_model(self, request: HttpRequest, obj: Campaign, form: Any, change: bool) -> None:
        campaign_save(campaign=obj, actor=request.user)  # type: ignore[arg-type]

    def delete_model(self, request: HttpRequest, obj: Campaign) -> None:
        campaign_delete(campaign=obj, actor=request.user)  # type: ignore[arg-type]

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        for campaign in queryset:
            campaign_delete(campaign=campaign, actor=request.user)  # type: ignore[arg-type]


# --- Client settings, CPM history, hierarchy and daily metrics (ingestion issue) -------------------


@admin.register(CpmRate, site=org_admin)
class CpmRateAdmin(ModelAdmin):
    """CPM history: rates are added (or a day's rate replaced), never edited away; the rate in force
    on a date is the latest effective on or before it."""

    list_display = ["effective_date", "cpm", "currency", "note", "created_by_email", "created_at"]
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
        "impressions",
        "clicks",
        "conversions",
        "spend_2dp",
        "ctr",
        "cpc",
        "cpa",
        "roas",
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
        return f"{obj.spend.quantize(Decimal('0.01'), rounding=ROUND_HALF_UP):,}"


@admin.register(Strategy, site=org_admin)
class StrategyAdmin(ReadOnlyAdmin):
    list_display = ["name", "campaign", "created_at"]
    search_fields = ["name", "campaign__name"]
    list_select_related = ["campaign"]
    list_filter = ["campaign__source"]
