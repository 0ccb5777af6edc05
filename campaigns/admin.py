"""Org admin: campaigns of the current organisation."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from unfold.admin import ModelAdmin

from campaigns.models import Campaign
from campaigns.services import campaign_delete, campaign_save
from p360.admin_sites import org_admin


@admin.register(Campaign, site=org_admin)
class CampaignAdmin(ModelAdmin):
    list_display = ["name", "status", "start_date", "end_date", "budget", "currency"]
    list_filter = ["status", "currency"]
    search_fields = ["name"]
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
