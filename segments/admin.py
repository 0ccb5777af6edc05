"""Org admin: segments, trigger campaigns, sends, user profiles and the membership ledger.

Segments are edited on the marketers' editor page (and the API), where the rule is validated and
versioned; here they are browsed and switched on or off (through the services, audited).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from unfold.admin import ModelAdmin

from p360.core import formatting
from p360.core.admin_base import ReadOnlyAdmin
from p360.core.admin_sites import org_admin
from segments import selectors, services
from segments.models import EventType, Segment, SegmentSettings, Send, Transition, TriggerCampaign, UserProfile


@admin.register(Segment, site=org_admin)
class SegmentAdmin(ReadOnlyAdmin):
    list_display = [
        "name",
        "kind",
        "active",
        "version",
        "event_type",
        "attribute",
        "operator",
        "value_shown",
        "window_shown",
        "members",
        "updated_at",
    ]
    list_filter = ["kind", "active", "event_type"]
    search_fields = ["name", "description"]
    actions = ["activate", "deactivate"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Segment]:
        self._counts = selectors.member_counts()
        return super().get_queryset(request)

    @admin.display(description="value", ordering="value")
    def value_shown(self, obj: Segment) -> str:
        """200, 2.5, 1,000 (the stored 200.0000 read like a price)."""
        if obj.value is None:
            return formatting.DASH
        places = max(0, -int(obj.value.normalize().as_tuple().exponent))
        return formatting.decimal(obj.value, places=min(places, 4))

    @admin.display(description="window", ordering="window_minutes")
    def window_shown(self, obj: Segment) -> str:
        return formatting.DASH if obj.window_minutes is None else f"{formatting.count(obj.window_minutes)} min"

    @admin.display(description="members")
    def members(self, obj: Segment) -> str:
        return formatting.count(getattr(self, "_counts", {}).get(obj.pk, 0))

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.has_perm("segments.change_segment"))  # for the actions; fields stay read-only

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name for f in Segment._meta.fields]

    def _toggle(self, request: HttpRequest, queryset: QuerySet[Segment], active: bool) -> None:
        for segment in queryset:
            services.segment_update(segment=segment, data={"active": active}, actor=request.user)
            if active:
                services.reevaluate_soon(segment, actor=request.user)
        self.message_user(
            request, f"{queryset.count()} segment(s) {'activated' if active else 'deactivated'}.", messages.SUCCESS
        )

    @admin.action(description="Activate")
    def activate(self, request: HttpRequest, queryset: QuerySet[Segment]) -> None:
        self._toggle(request, queryset, True)

    @admin.action(description="Deactivate (members exit)")
    def deactivate(self, request: HttpRequest, queryset: QuerySet[Segment]) -> None:
        self._toggle(request, queryset, False)


@admin.register(TriggerCampaign, site=org_admin)
class TriggerCampaignAdmin(ModelAdmin):
    list_display = ["name", "segment", "channel", "on", "status", "scheduled_at", "frequency_cap", "frequency_hours"]
    list_filter = ["status", "channel", "on"]
    search_fields = ["name"]
    autocomplete_fields = ["segment"]

    def save_model(self, request: HttpRequest, obj: TriggerCampaign, form: Any, change: bool) -> None:
        services.campaign_save(campaign=obj, actor=request.user)


@admin.register(Send, site=org_admin)
class SendAdmin(ReadOnlyAdmin):
    list_display = ["id", "campaign", "user_id", "channel", "status", "attempts", "not_before", "sent_at", "detail"]
    list_filter = ["status", "channel", "campaign"]
    search_fields = ["user_id", "provider_id"]


@admin.register(Transition, site=org_admin)
class TransitionAdmin(ReadOnlyAdmin):
    list_display = ["recorded_at", "segment", "user_id", "kind", "entered_at", "exited_at", "rule_version", "reason"]
    list_filter = ["kind", "segment"]
    search_fields = ["user_id", "event_id"]


@admin.register(UserProfile, site=org_admin)
class UserProfileAdmin(ReadOnlyAdmin):
    list_display = ["user_id", "email", "phone", "last_active_at", "created_at"]
    search_fields = ["user_id", "email", "phone"]


@admin.register(EventType, site=org_admin)
class EventTypeAdmin(ModelAdmin):
    list_display = ["name", "description", "created_at"]
    fields = ["name", "description"]

    def save_model(self, request: HttpRequest, obj: EventType, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
        else:
            services.event_type_create(name=obj.name, description=obj.description, actor=request.user)


@admin.register(SegmentSettings, site=org_admin)
class SegmentSettingsAdmin(ModelAdmin):
    list_display = ["retention_days", "time_zone", "quiet_start", "quiet_end"]
