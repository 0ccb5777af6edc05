"""Global admin for organisations, users, org assignments and API tokens. Writes go through services."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Exists, OuterRef, QuerySet
from django.forms import ModelForm
from django.http import HttpRequest
from django.shortcuts import redirect
from django.utils import timezone
from django.utils.html import format_html
from unfold.admin import ModelAdmin, TabularInline
from unfold.decorators import action

from p360.core import formatting
from p360.core.admin_base import OrgIdListFilter
from p360.core.admin_sites import global_admin
from p360.core.audit.services import record
from p360.core.jobs.services import job_start
from p360.core.salesforce import account_url
from tenants import invitations, services
from tenants.access import orgs_manageable_by, users_manageable_by
from tenants.models import ApiToken, ExternalIdentity, Invitation, Membership, Organization, Role, User


def _service_call(fn: Any, **kwargs: Any) -> Any:
    """Run a service from an admin form; a refused change becomes a form-level error."""
    try:
        return fn(**kwargs)
    except services.ServiceError as exc:
        raise ValidationError(str(exc)) from exc


# --- Organisations -------------------------------------------------------------------------------


class OrganizationAddForm(ModelForm):
    class Meta:
        model = Organization
        fields = ["name", "slug", "ttd_advertiser_id", "salesforce_account_id"]

    def clean_slug(self) -> str:
        try:
            return services.validate_slug(self.cleaned_data["slug"])
        except services.ServiceError as exc:
            raise ValidationError(str(exc)) from exc


class MembershipInline(TabularInline):
    model = Membership
    extra = 0
    fields = ["user", "created_at"]
    readonly_fields = ["user", "created_at"]
    can_delete = False
    verbose_name_plural = "assigned users"

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Organization, site=global_admin)
class OrganizationAdmin(ModelAdmin):
    list_display = ["name", "slug", "status", "ttd_advertiser_id", "salesforce", "user_count", "created_at", "links"]
    list_filter = ["is_active"]
    search_fields = ["name", "slug", "ttd_advertiser_id", "salesforce_account_id"]
    ordering = ["name"]
    list_per_page = 50
    inlines = [MembershipInline]
    actions = ["deactivate", "activate", "run_health_check"]
    readonly_fields = ["slug", "schema_name", "created_at", "updated_at", "salesforce", "links"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Organization]:
        # An explicit order: Meta.ordering is not applied to a GROUP BY query (the count), so the autocomplete
        # paginated an unordered list (UnorderedObjectListWarning, and pages could repeat or skip orgs).
        return orgs_manageable_by(request.user).annotate(user_total=Count("memberships")).order_by("name", "pk")

    def get_inlines(self, request: HttpRequest, obj: Any = None) -> list[Any]:
        return list(self.inlines) if obj is not None else []

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        if obj is None:
            kwargs["form"] = OrganizationAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        if obj is None:
            return ["name", "slug", "ttd_advertiser_id", "salesforce_account_id"]
        return [
            "name",
            "slug",
            "schema_name",
            "is_active",
            "require_mfa",
            "ttd_advertiser_id",
            "salesforce_account_id",
            "salesforce",
            "created_at",
            "updated_at",
            "links",
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [] if obj is None else list(self.readonly_fields)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # deactivate instead: a schema holds the org's data

    @admin.display(description="status", boolean=True, ordering="is_active")
    def status(self, org: Organization) -> bool:
        return org.is_active

    @admin.display(description="users", ordering="user_total")
    def user_count(self, org: Organization) -> str:
        return formatting.count(getattr(org, "user_total", 0))

    @admin.display(description="Salesforce account", ordering="salesforce_account_id")
    def salesforce(self, org: Organization) -> str:
        """The account's Lightning page under P360_SALESFORCE_URL (as programs link their opportunity)."""
        url = account_url(org.salesforce_account_id)
        if not url:
            return "—"
        return format_html(
            '<a class="text-primary-600" href="{}" target="_blank" rel="noopener">{}</a>',
            url,
            org.salesforce_account_id,
        )

    @admin.display(description="open")
    def links(self, org: Organization) -> str:
        if not org.pk or not org.is_active:
            return "—"
        return format_html(
            "<a class='text-primary-600' href='/o/{0}/admin/'>org admin</a> · "
            "<a class='text-primary-600' href='/o/{0}/'>pages</a>",
            org.slug,
        )

    def save_model(self, request: HttpRequest, obj: Organization, form: Any, change: bool) -> None:
        if not change:
            created = _service_call(
                services.org_create,
                slug=obj.slug,
                name=obj.name,
                ttd_advertiser_id=obj.ttd_advertiser_id,
                salesforce_account_id=obj.salesforce_account_id,
                actor=request.user,
            )
            obj.pk, obj.schema_name = created.pk, created.schema_name
            return
        changes = {field: getattr(obj, field) for field in form.changed_data}
        original = Organization.objects.get(pk=obj.pk)
        _service_call(services.org_update, org=original, actor=request.user, **changes)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        form.save_m2m()  # the membership inline is read-only; assignments go through their own admin

    @action(description="Deactivate selected organisations (URLs 404, data kept)")
    def deactivate(self, request: HttpRequest, queryset: QuerySet[Organization]) -> None:
        self._require_super_admin(request)
        for org in queryset:
            services.org_set_active(org=org, active=False, actor=request.user)  # type: ignore[arg-type]
        messages.success(request, f"Deactivated {queryset.count()} organisations.")

    @action(description="Reactivate selected organisations")
    def activate(self, request: HttpRequest, queryset: QuerySet[Organization]) -> None:
        self._require_super_admin(request)
        for org in queryset:
            services.org_set_active(org=org, active=True, actor=request.user)  # type: ignore[arg-type]
        messages.success(request, f"Reactivated {queryset.count()} organisations.")

    @action(description="Run a health check job for selected organisations")
    def run_health_check(self, request: HttpRequest, queryset: QuerySet[Organization]) -> None:
        actor = request.user if isinstance(request.user, User) else None
        jobs = [job_start(kind="org.health_check", org=org, actor=actor) for org in queryset.filter(is_active=True)]
        messages.success(request, f"Queued {len(jobs)} health check jobs; follow them under Jobs.")

    @staticmethod
    def _require_super_admin(request: HttpRequest) -> None:
        if not request.user.is_super_admin:  # type: ignore[union-attr]
            raise PermissionDenied


# --- Users ---------------------------------------------------------------------------------------


class ExternalIdentityInline(TabularInline):
    model = ExternalIdentity
    extra = 0
    fields = ["provider", "tenant", "subject", "last_login_at", "deactivated_by_sync"]
    readonly_fields = ["last_login_at", "deactivated_by_sync"]
    verbose_name_plural = "single sign-on identities (Entra: tenant id + object id; never the email)"

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_super_admin)  # type: ignore[union-attr]  # linking grants sign-in

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_super_admin)  # type: ignore[union-attr]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_super_admin)  # type: ignore[union-attr]


class UserAdminForm(ModelForm):
    orgs = forms.ModelMultipleChoiceField(
        queryset=Organization.objects.none(),
        required=False,
        help_text="Campaign managers: the orgs they manage. Marketers: exactly one.",
    )
    password = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Optional. Leave empty to keep the current password (or to invite later).",
    )

    class Meta:
        model = User
        fields = ["email", "full_name", "role", "is_active"]

    def __init__(self, *args: Any, request: HttpRequest, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.request = request
        self.fields["orgs"].queryset = orgs_manageable_by(request.user)  # type: ignore[attr-defined]
        if not request.user.is_super_admin:  # type: ignore[union-attr]
            self.fields["role"].choices = [(Role.MARKETER.value, Role.MARKETER.label)]  # type: ignore[attr-defined]
        if self.instance.pk:
            self.fields["orgs"].initial = list(self.instance.memberships.values_list("org_id", flat=True))
            self.fields["email"].disabled = True

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        role, orgs = data.get("role"), list(data.get("orgs") or [])
        if role == Role.MARKETER and len(orgs) != 1:
            self.add_error("orgs", "A marketer belongs to exactly one organisation.")
        if role == Role.SUPER_ADMIN and orgs:
            self.add_error("orgs", "A super admin sees every organisation; leave this empty.")
        return data


@admin.register(User, site=global_admin)
class UserAdmin(ModelAdmin):
    list_display = ["email", "full_name", "role", "is_active", "org_list", "sign_in", "last_login"]
    list_filter = ["role", "is_active"]
    search_fields = ["email", "full_name"]
    ordering = ["email"]
    list_per_page = 50
    actions = ["deactivate_users", "activate_users"]
    readonly_fields = ["last_login", "date_joined"]
    inlines = [ExternalIdentityInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[User]:
        from allauth.mfa.models import Authenticator

        return (
            users_manageable_by(request.user)
            .prefetch_related("memberships__org")
            .annotate(
                has_sso=Exists(ExternalIdentity.objects.filter(user=OuterRef("pk"))),
                has_mfa=Exists(Authenticator.objects.filter(user=OuterRef("pk"), type="totp")),
            )
        )

    @admin.display(description="sign-in")
    def sign_in(self, user: User) -> str:
        if getattr(user, "has_sso", False):
            return "Microsoft (SSO)"
        return "password + MFA" if getattr(user, "has_mfa", False) else "password"

    def get_inlines(self, request: HttpRequest, obj: Any = None) -> list[Any]:
        # Linking an SSO identity grants sign-in: super admins only, on existing users.
        return list(self.inlines) if obj is not None and request.user.is_super_admin else []  # type: ignore[union-attr]

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        kwargs["form"] = UserAdminForm
        form_class = super().get_form(request, obj, change=change, **kwargs)

        class RequestBoundForm(form_class):  # type: ignore[misc, valid-type]
            def __init__(self, *args: Any, **kw: Any) -> None:
                super().__init__(*args, request=request, **kw)

        return RequestBoundForm

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        fields = ["email", "full_name", "role", "orgs", "password"]
        return fields + (["is_active", "last_login", "date_joined"] if obj else [])

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and not request.user.is_super_admin and obj.role != Role.MARKETER:  # type: ignore[union-attr]
            return False  # campaign managers manage marketers, not other staff
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # deactivate instead: audit rows and history name the user

    @admin.display(description="organisations")
    def org_list(self, user: User) -> str:
        if user.role == Role.SUPER_ADMIN:
            return "all"
        return ", ".join(m.org.slug for m in user.memberships.all()) or "—"

    def save_model(self, request: HttpRequest, obj: User, form: Any, change: bool) -> None:
        data = form.cleaned_data
        orgs = list(data.get("orgs") or [])
        actor = request.user
        if not change:
            created = _service_call(
                services.user_create,
                email=data["email"],
                role=data["role"],
                orgs=orgs,
                password=data.get("password") or None,
                full_name=data.get("full_name", ""),
                actor=actor,
            )
            obj.pk = created.pk
            return
        user = User.objects.get(pk=obj.pk)
        if "full_name" in form.changed_data:
            _service_call(services.user_set_name, user=user, full_name=data["full_name"], actor=actor)
        if {"role", "orgs"} & set(form.changed_data):
            _service_call(services.user_set_role, user=user, role=data["role"], orgs=orgs, actor=actor)
        if "is_active" in form.changed_data:
            _service_call(services.user_set_active, user=user, active=data["is_active"], actor=actor)
        if data.get("password"):
            _service_call(services.user_set_password, user=user, password=data["password"], actor=actor)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        # Assignments were saved by the service; only the SSO identity links remain (super admins).
        for formset in formsets:
            before = {(i.provider, i.tenant, i.subject) for i in formset.queryset}
            formset.save()
            for identity in formset.queryset.model.objects.filter(user_id=form.instance.pk):
                key = (identity.provider, identity.tenant, identity.subject)
                if key not in before:
                    record(
                        action="identity.linked",
                        actor=request.user,  # type: ignore[arg-type]
                        entity_type="tenants.user",
                        entity_id=form.instance.pk,
                        after={"provider": identity.provider, "tenant": identity.tenant, "subject": identity.subject},
                    )

    @action(description="Deactivate selected users")
    def deactivate_users(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        self._set_active(request, queryset, active=False)

    @action(description="Reactivate selected users")
    def activate_users(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        self._set_active(request, queryset, active=True)

    def _set_active(self, request: HttpRequest, queryset: QuerySet[User], *, active: bool) -> None:
        done = 0
        for user in queryset:
            if not self.has_change_permission(request, user):
                continue
            try:
                services.user_set_active(user=user, active=active, actor=request.user)  # type: ignore[arg-type]
                done += 1
            except services.ServiceError as exc:
                messages.warning(request, f"{user.email}: {exc}")
        messages.success(request, f"{'Reactivated' if active else 'Deactivated'} {done} users.")


# --- Org assignments -----------------------------------------------------------------------------


class MembershipOrgFilter(OrgIdListFilter):
    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(str(org.pk), org.name) for org in orgs_manageable_by(request.user)]


@admin.register(Membership, site=global_admin)
class MembershipAdmin(ModelAdmin):
    list_display = ["user", "user_role", "org", "created_at"]
    list_filter = [MembershipOrgFilter, "user__role"]
    search_fields = ["user__email", "org__name", "org__slug"]
    autocomplete_fields = ["user", "org"]
    list_select_related = ["user", "org"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Membership]:
        return super().get_queryset(request).filter(org__in=orgs_manageable_by(request.user))

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # an assignment is added or removed, never edited

    @admin.display(description="role", ordering="user__role")
    def user_role(self, membership: Membership) -> str:
        return membership.user.get_role_display()

    def save_model(self, request: HttpRequest, obj: Membership, form: Any, change: bool) -> None:
        if obj.org not in orgs_manageable_by(request.user) or obj.user not in users_manageable_by(request.user):
            raise PermissionDenied
        created = _service_call(services.membership_add, user=obj.user, org=obj.org, actor=request.user)
        obj.pk = created.pk

    def delete_model(self, request: HttpRequest, obj: Membership) -> None:
        services.membership_remove(membership=obj, actor=request.user)  # type: ignore[arg-type]

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Membership]) -> None:
        for membership in queryset:
            services.membership_remove(membership=membership, actor=request.user)  # type: ignore[arg-type]


# --- API tokens ----------------------------------------------------------------------------------


@admin.register(ApiToken, site=global_admin)
class ApiTokenAdmin(ModelAdmin):
    list_display = ["name", "user", "prefix", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["name", "user__email", "prefix"]
    list_select_related = ["user"]
    actions = ["revoke"]
    readonly_fields = ["user", "name", "prefix", "created_at", "last_used_at", "revoked_at"]
    fields = readonly_fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[ApiToken]:
        return super().get_queryset(request).filter(user__in=users_manageable_by(request.user))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # tokens are created by their owner (profile page, `create_api_token`)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @action(description="Revoke selected tokens")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        for token in queryset.filter(revoked_at__isnull=True):
            services.api_token_revoke(token=token, actor=request.user)  # type: ignore[arg-type]
        messages.success(request, "Revoked the selected tokens.")


# --- Invitations ---------------------------------------------------------------------------------


class InvitationStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("pending", "Pending"), ("accepted", "Accepted"), ("expired", "Expired"), ("revoked", "Revoked")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        now = timezone.now()
        value = self.value()
        if value == "pending":
            return queryset.filter(accepted_at__isnull=True, revoked_at__isnull=True, expires_at__gt=now)
        if value == "accepted":
            return queryset.filter(accepted_at__isnull=False)
        if value == "expired":
            return queryset.filter(accepted_at__isnull=True, revoked_at__isnull=True, expires_at__lte=now)
        if value == "revoked":
            return queryset.filter(revoked_at__isnull=False, accepted_at__isnull=True)
        return queryset


class InvitationAddForm(ModelForm):
    class Meta:
        model = Invitation
        fields = ["email", "org", "role"]

    def __init__(self, *args: Any, request: HttpRequest, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["org"].queryset = orgs_manageable_by(request.user).filter(is_active=True)  # type: ignore[attr-defined]
        allowed = [Role.MARKETER] if not request.user.is_super_admin else [Role.MARKETER, Role.CAMPAIGN_MANAGER]  # type: ignore[union-attr]
        self.fields["role"].choices = [(role.value, role.label) for role in allowed]  # type: ignore[attr-defined]
        days = settings.P360_INVITATION_DAYS
        self.fields["email"].help_text = f"They get a link to set a password (single use, valid {days} days)."


@admin.register(Invitation, site=global_admin)
class InvitationAdmin(ModelAdmin):
    list_display = ["email", "org", "role", "status_pill", "invited_by", "sent_at", "expires_at", "send_count"]
    list_filter = [InvitationStatusFilter, MembershipOrgFilter, "role"]
    search_fields = ["email", "org__name", "org__slug"]
    list_select_related = ["org", "invited_by"]
    actions = ["resend", "revoke"]
    ordering = ["-created_at"]
    list_per_page = 50

    def get_queryset(self, request: HttpRequest) -> QuerySet[Invitation]:
        return super().get_queryset(request).filter(org__in=orgs_manageable_by(request.user))

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        kwargs["form"] = InvitationAddForm
        form_class = super().get_form(request, obj, change=change, **kwargs)

        class RequestBoundForm(form_class):  # type: ignore[misc, valid-type]
            def __init__(self, *args: Any, **kw: Any) -> None:
                super().__init__(*args, request=request, **kw)

        return RequestBoundForm

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        if obj is None:
            return ["email", "org", "role"]
        return [
            "email",
            "org",
            "role",
            "status_pill",
            "invited_by",
            "created_at",
            "sent_at",
            "send_count",
            "expires_at",
            "accepted_at",
            "accepted_user",
            "revoked_at",
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [] if obj is None else self.get_fields(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # revoke instead: the list keeps the history

    @admin.display(description="status")
    def status_pill(self, invitation: Invitation) -> str:
        colours = {"pending": "primary", "accepted": "green", "expired": "orange", "revoked": "red"}
        status = invitation.status
        return format_html(
            "<span class='inline-block rounded px-2 text-xs font-semibold text-{}-700 bg-{}-100'>{}</span>",
            colours.get(status, "gray"),
            colours.get(status, "gray"),
            status,
        )

    def save_model(self, request: HttpRequest, obj: Invitation, form: Any, change: bool) -> None:
        if change:
            return
        created = _service_call(
            invitations.invitation_create,
            org=form.cleaned_data["org"],
            email=form.cleaned_data["email"],
            role=form.cleaned_data["role"],
            actor=request.user,
            base_url=request.build_absolute_uri("/"),
        )
        obj.pk = created.pk

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        pass

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: dict | None = None) -> Any:
        try:
            return super().add_view(request, form_url, extra_context)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
            return redirect(request.get_full_path())

    @action(description="Resend selected invitations (new link, new expiry)")
    def resend(self, request: HttpRequest, queryset: QuerySet[Invitation]) -> None:
        done = 0
        for invitation in queryset.select_related("org"):
            try:
                invitations.invitation_resend(
                    invitation=invitation,
                    actor=request.user,  # type: ignore[arg-type]
                    base_url=request.build_absolute_uri("/"),
                )
                done += 1
            except services.ServiceError as exc:
                messages.warning(request, str(exc))
        messages.success(request, f"Resent {done} invitations; earlier links no longer work.")

    @action(description="Revoke selected invitations")
    def revoke(self, request: HttpRequest, queryset: QuerySet[Invitation]) -> None:
        done = 0
        for invitation in queryset.select_related("org"):
            try:
                invitations.invitation_revoke(invitation=invitation, actor=request.user)  # type: ignore[arg-type]
                done += 1
            except services.ServiceError as exc:
                messages.warning(request, str(exc))
        messages.success(request, f"Revoked {done} invitations.")
