"""Org admin: audiences of the current organisation."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from unfold.admin import ModelAdmin

from audiences.models import Audience
from audiences.services import audience_delete, audience_save
from p360.admin_sites import org_admin


@admin.register(Audience, site=org_admin)
class AudienceAdmin(ModelAdmin):
    list_display = ["name", "kind", "status", "record_count", "created_by", "updated_at"]
    list_filter = ["kind", "status"]
    search_fields = ["name", "description"]
    readonly_fields = ["record_count", "created_by", "created_at", "updated_at"]
    fields = ["name", "description", "kind", "status", "record_count", "created_by", "created_at", "updated_at"]
    list_per_page = 50
    list_select_related = ["created_by"]

    def save_model(self, request: HttpRequest, obj: Audience, form: Any, change: bool) -> None:
        audience_save(audience=obj, actor=request.user)  # type: ignore[arg-type]

    def delete_model(self, request: HttpRequest, obj: Audience) -> None:
        audience_delete(audience=obj, actor=request.user)  # type: ignore[arg-type]

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Audience]) -> None:
        for audience in queryset:
            audience_delete(audience=audience, actor=request.user)  # type: ignore[arg-type]
