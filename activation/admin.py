"""Org admin of activation: delivery configuration, destinations (credentials write-only), the delivery ledger
with re-run and dry-run actions, UID2 identities, TTD segment members and ICP seeds."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path
from unfold.admin import ModelAdmin
from unfold.decorators import action, display

from activation import services
from activation.delivery import diff_text, start_delivery
from activation.models import Delivery, DeliveryConfig, Destination, IcpSeed, TtdMember, Uid2Identity
from p360.core import formatting
from p360.core.admin_base import ReadOnlyAdmin, count_column
from p360.core.admin_sites import global_admin, org_admin
from tenants.access import orgs_visible_to
from tenants.services import ServiceError

SECRET_WIDGET = forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"})


class DestinationForm(forms.ModelForm):
    """Secrets are write-only: the fields are always rendered empty; leaving them empty keeps the stored ones."""

    password = forms.CharField(required=False, widget=SECRET_WIDGET, help_text="SFTP password (kept if empty).")
    private_key = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}),
                                  help_text="SFTP private key, OpenSSH format (kept if empty; never shown).")  # fmt: skip
    access_key_id = forms.CharField(required=False, widget=SECRET_WIDGET, help_text="S3 access key id.")
    secret_access_key = forms.CharField(required=False, widget=SECRET_WIDGET, help_text="S3 secret access key.")
    auth_token = forms.CharField(required=False, widget=SECRET_WIDGET, help_text="TTD-Auth token.")
    secret_key = forms.CharField(required=False, widget=SECRET_WIDGET, help_text="TTD advertiser secret key.")

    class Meta:
        model = Destination
        fields = ["name", "kind", "enabled", "audiences", "region", "host", "port", "username", "remote_dir",
                  "host_key", "bucket", "prefix", "endpoint_url", "advertiser_id", "base_url", "compression",
                  "pgp_public_key", "pgp_subkey_id"]  # fmt: skip

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.initial["private_key"] = ""  # never echo a secret back
        if "region" in self.fields:  # LiveRamp only: empty means US (the services default it)
            self.fields["region"].required = False

    def service_data(self, kind: str) -> dict[str, Any]:
        """The cleaned values as the destination services take them (credentials only when typed)."""
        data = {k: self.cleaned_data.get(k) for k in services.PLAIN_FIELDS if k in self.cleaned_data}
        creds = {k: self.cleaned_data.get(k) for k in services.CREDENTIAL_FIELDS.get(kind, ())}
        data["credentials"] = {k: v for k, v in creds.items() if v}
        return data

    def clean(self) -> dict[str, Any]:
        """The services' rules (host key, bucket, unique name ...) as form errors: a refusal is never a 500."""
        cleaned: dict[str, Any] = super().clean() or {}
        if self.errors:
            return cleaned
        existing = self.instance if self.instance.pk else None
        kind = existing.kind if existing is not None else str(cleaned.get("kind") or "")
        try:
            services.destination_check(destination=existing, name=str(cleaned.get("name") or ""), kind=kind,
                                       data=self.service_data(kind))  # fmt: skip
        except ServiceError as exc:
            raise forms.ValidationError(str(exc)) from exc
        return cleaned


@admin.register(DeliveryConfig, site=org_admin)
class DeliveryConfigAdmin(ModelAdmin):
    list_display = ["__str__", "enabled", "cadence", "lookback_days", "push_mode", "ttd_ttl_days", "ttd_base_bid_cpm"]
    fields = ["enabled", "cadence", "lookback_days", "push_mode", "shrink_alert_share", "alert_emails",
              "ttd_ttl_days", "ttd_base_bid_cpm"]  # fmt: skip

    def has_add_permission(self, request: HttpRequest) -> bool:
        return not DeliveryConfig.objects.exists()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: DeliveryConfig, form: Any, change: bool) -> None:
        values = {f: form.cleaned_data[f] for f in self.fields if f in form.cleaned_data}
        try:
            services.config_update(actor=request.user, **values)  # type: ignore[arg-type]
        except ServiceError as exc:
            messages.error(request, str(exc))
        obj.pk = services.config().pk


@admin.register(Destination, site=org_admin)
class DestinationAdmin(ModelAdmin):
    form = DestinationForm
    list_display = ["name", "kind", "enabled", "host_or_bucket", "credentials", "audience_count"]
    list_filter = ["kind", "enabled"]
    filter_horizontal = ["audiences"]
    actions = ["dry_run", "deliver_now"]

    @display(description="Target")
    def host_or_bucket(self, obj: Destination) -> str:
        return obj.host or obj.bucket or obj.advertiser_id

    @display(description="Credentials", boolean=True)
    def credentials(self, obj: Destination) -> bool:
        return obj.has_credentials

    @display(description="Audiences", ordering="audience_total")
    def audience_count(self, obj: Destination) -> str:
        return formatting.count(obj.audience_total)  # type: ignore[attr-defined]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Destination]:
        # The list's audience column from one query (it was one COUNT per row).
        return super().get_queryset(request).annotate(audience_total=Count("audiences", distinct=True))

    def save_model(self, request: HttpRequest, obj: Destination, form: Any, change: bool) -> None:
        """The form's clean() already ran the services' checks; a refusal that still happens here (a name taken
        in between) is shown as a message, never raised (an exception here is a 500)."""
        data = form.service_data(obj.kind)
        try:
            if change:
                saved = services.destination_update(actor=request.user, destination=obj, data=data)  # type: ignore[arg-type]
            else:
                saved = services.destination_create(actor=request.user, name=obj.name, kind=obj.kind, data=data)  # type: ignore[arg-type]
        except ServiceError as exc:
            messages.error(request, f"The destination was not saved: {exc}")
            return
        obj.pk = saved.pk

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        if form.instance.pk is None:  # save_model refused it: nothing to relate
            return
        form.instance = Destination.objects.get(pk=form.instance.pk)
        form.instance.audiences.set(form.cleaned_data.get("audiences") or [])

    def response_add(self, request: HttpRequest, obj: Destination, post_url_continue: str | None = None) -> Any:
        if obj.pk is None:  # refused in save_model: back to the list with the error message
            return self.response_post_save_add(request, obj)
        return super().response_add(request, obj, post_url_continue)

    @action(description="Dry run: files and diff, send nothing")
    def dry_run(self, request: HttpRequest, queryset: QuerySet[Destination]) -> None:
        for d in queryset:
            delivery = start_delivery(destination=d, actor=request.user, dry_run=True)  # type: ignore[arg-type]
            messages.info(request, f"{d.name}: {delivery.rows} rows, {diff_text(delivery)} "
                                   f"({delivery.get_status_display()}{': ' + delivery.error if delivery.error else ''})")  # fmt: skip

    @action(description="Deliver now")
    def deliver_now(self, request: HttpRequest, queryset: QuerySet[Destination]) -> None:
        for d in queryset:
            delivery = start_delivery(destination=d, actor=request.user, dry_run=False)  # type: ignore[arg-type]
            messages.info(request, f"{d.name}: delivery #{delivery.pk} started")


@admin.register(Delivery, site=org_admin)
class DeliveryAdmin(ReadOnlyAdmin):
    list_display = ["id", "destination", "status", "dry_run", count_column("rows", "Rows"), count_column("added", "Added"),
                    count_column("removed", "Removed"), "attempts", count_column("failed_lines", "Failed lines"),
                    "created_at", "finished_at"]  # fmt: skip
    list_filter = ["status", "dry_run", "destination"]
    readonly_fields = ["destination", "status", "dry_run", "job_id", "rows", "added", "removed", "diff_note", "checksum", "files",
                       "skipped", "attempts", "receipt", "staged", "failed_lines", "alerts", "error",
                       "created_by_email", "created_at", "started_at", "finished_at"]  # fmt: skip
    actions = ["rerun", "dry_run"]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @action(description="Re-run (a new delivery to the same destination)")
    def rerun(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> None:
        for destination in {d.destination for d in queryset}:
            delivery = start_delivery(destination=destination, actor=request.user, dry_run=False)  # type: ignore[arg-type]
            messages.info(request, f"{destination.name}: delivery #{delivery.pk} started")

    @action(description="Dry run against the last delivery")
    def dry_run(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> None:
        for destination in {d.destination for d in queryset}:
            delivery = start_delivery(destination=destination, actor=request.user, dry_run=True)  # type: ignore[arg-type]
            messages.info(request, f"{destination.name}: {delivery.rows} rows, {diff_text(delivery)}")


@admin.register(Uid2Identity, site=org_admin)
class Uid2IdentityAdmin(ReadOnlyAdmin):
    list_display = ["kind", "hashed", "status", "uid2", "previous_uid2", "refresh_from", "mapped_at"]
    list_filter = ["kind", "status"]
    search_fields = ["hashed", "uid2"]


@admin.register(TtdMember, site=org_admin)
class TtdMemberAdmin(ReadOnlyAdmin):
    list_display = ["segment", "uid2", "status", "sent_at", "expires_at", "error_code", "error_message"]
    list_filter = ["status", "segment", "error_code"]
    search_fields = ["uid2", "segment"]


@admin.register(IcpSeed, site=org_admin)
class IcpSeedAdmin(ReadOnlyAdmin):
    list_display = ["name", "audience", "destination", "ids", "last_exported_at", "last_error"]


@admin.register(Delivery, site=global_admin)
class GlobalDeliveryAdmin(ReadOnlyAdmin):
    """Deliveries across organisations (global admin): the ledger lives in each org's schema, so this list reads
    the schemas of the orgs the user may see (all for super admins, their own for others) in one query per page.
    Each row links to the delivery in its org's admin, where re-run and dry run live."""

    def _visible(self, request: HttpRequest) -> Any:
        return orgs_visible_to(request.user)  # type: ignore[arg-type]

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._visible(request).exists()

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return obj is None and self._visible(request).exists()

    def get_urls(self) -> list[Any]:
        info = self.opts.app_label, self.opts.model_name
        view = self.admin_site.admin_view(self.changelist_view)
        return [
            path("", view, name="%s_%s_changelist" % info),  # noqa: UP031 - Django's own URL naming
            path("<path:rest>", lambda request, rest: HttpResponseRedirect("../")),
        ]

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        from django.core.exceptions import PermissionDenied

        from activation.admin_ui import global_deliveries_page

        if not self.has_view_permission(request):
            raise PermissionDenied
        data = global_deliveries_page(
            self._visible(request),
            status=request.GET.get("status", ""),
            org_slug=request.GET.get("org", ""),
            query=request.GET.get("q", ""),
            page=request.GET.get("p", 1),
        )
        context = {
            **self.admin_site.each_context(request),
            "title": "Deliveries across organisations",
            "opts": self.opts,
            **data,
            **(extra_context or {}),
        }
        return TemplateResponse(request, "activation/admin/global_deliveries.html", context)
