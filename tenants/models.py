"""Organisations (one PostgreSQL schema each), users, their roles and org assignments, API tokens.

All of these live in the public schema: one login covers every org a user may see.
"""

from __future__ import annotations

import hashlib
from typing import ClassVar

from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.core.validators import RegexValidator
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone
from django_tenants.models import DomainMixin, TenantMixin

SLUG_PATTERN = r"^[a-z0-9][a-z0-9-]{0,38}[a-z0-9]$"
slug_validator = RegexValidator(
    SLUG_PATTERN, "A slug is 2-40 characters of a-z, 0-9 and '-', not starting or ending with '-'."
)
# Slugs that would be confusing or collide with our own URL segments or schemas.
RESERVED_SLUGS = frozenset({"public", "admin", "api", "static", "media", "accounts", "oidc", "o", "www", "p360"})


def schema_name_for(slug: str) -> str:
    """PostgreSQL schema name for an org slug (schema names may not contain '-')."""
    return "org_" + slug.replace("-", "_")


class OrganizationQuerySet(models.QuerySet["Organization"]):
    def customers(self) -> OrganizationQuerySet:
        """Real organisations: never the public schema's placeholder."""
        return self.exclude(schema_name="public")

    def active(self) -> OrganizationQuerySet:
        return self.customers().filter(is_active=True)


class Organization(TenantMixin):
    name = models.CharField(max_length=200)
    slug = models.CharField(max_length=40, unique=True, validators=[slug_validator])
    is_active = models.BooleanField(default=True, help_text="Inactive organisations 404 everywhere; data is kept.")
    ttd_advertiser_id = models.CharField("TTD advertiser id", max_length=64, blank=True, db_index=True)
    salesforce_account_id = models.CharField("Salesforce account id", max_length=64, blank=True)
    require_mfa = models.BooleanField(default=False, help_text="Marketers of this org must set up MFA.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    auto_create_schema = True
    auto_drop_schema = False

    objects = OrganizationQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        verbose_name = "organisation"

    def __str__(self) -> str:
        return self.name


class Domain(DomainMixin):
    """Routing row: django-tenants' subfolder routing looks orgs up by `domain` (= the slug)."""

    class Meta:
        verbose_name = "routing domain"


class Role(models.TextChoices):
    SUPER_ADMIN = "super_admin", "Super admin"
    CAMPAIGN_MANAGER = "campaign_manager", "Campaign manager"
    MARKETER = "marketer", "Marketer"


STAFF_ROLES = frozenset({Role.SUPER_ADMIN, Role.CAMPAIGN_MANAGER})


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def get_by_natural_key(self, username: str | None) -> User:
        return self.get(email__iexact=username)

    def create_user(self, email: str, password: str | None = None, **extra: object) -> User:
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password) if password else user.set_unusable_password()
        user.sync_flags_from_role()
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **extra: object) -> User:
        extra["role"] = Role.SUPER_ADMIN
        return self.create_user(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    email = models.EmailField(unique=True)
    full_name = models.CharField(max_length=200, blank=True)
    role = models.CharField(max_length=32, choices=Role.choices, default=Role.MARKETER)
    is_active = models.BooleanField(default=True)
    # Derived from the role (admin access); kept as a column because Django's admin reads it.
    is_staff = models.BooleanField(default=False, editable=False)
    date_joined = models.DateTimeField(default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    class Meta:
        ordering = ["email"]
        constraints = [models.UniqueConstraint(Lower("email"), name="user_email_ci_unique")]

    def __str__(self) -> str:
        return self.email

    def sync_flags_from_role(self) -> None:
        self.is_staff = self.role in STAFF_ROLES
        self.is_superuser = self.role == Role.SUPER_ADMIN

    @property
    def is_super_admin(self) -> bool:
        return self.is_active and self.role == Role.SUPER_ADMIN

    @property
    def is_campaign_manager(self) -> bool:
        return self.is_active and self.role == Role.CAMPAIGN_MANAGER

    @property
    def is_marketer(self) -> bool:
        return self.role == Role.MARKETER

    def get_full_name(self) -> str:
        return self.full_name or self.email

    def get_short_name(self) -> str:
        return (self.full_name or self.email).split(" ")[0]


class Membership(models.Model):
    """A user's access to one org: campaign managers' assignments, and each marketer's one org."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "org"], name="membership_user_org_unique")]
        ordering = ["org__name", "user__email"]
        verbose_name = "org assignment"

    def __str__(self) -> str:
        return f"{self.user} @ {self.org}"


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiToken(models.Model):
    """A named API token; only its SHA-256 is stored, the value is shown once at creation."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12, help_text="First characters, to recognise a token in lists.")
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class IdentityProvider(models.TextChoices):
    ENTRA = "entra", "Microsoft Entra ID"
    AUTH0 = "auth0", "Auth0"


class ExternalIdentity(models.Model):
    """A user's account at an identity provider, keyed by what the provider guarantees is stable.

    Entra ID: `tenant` = `tid`, `subject` = `oid` (never the email or UPN, which users can change).
    """

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="external_identities")
    provider = models.CharField(max_length=16, choices=IdentityProvider.choices)
    tenant = models.CharField(max_length=100, help_text="Entra `tid` (tenant id); the issuer for other providers.")
    subject = models.CharField(max_length=255, help_text="Entra `oid` (object id); `sub` for other providers.")
    last_claims = models.JSONField(default=dict, blank=True, help_text="Role-bearing claims of the last sign-in.")
    # Set when a sign-in found no mapped role and the account was deactivated for that reason, so a
    # later sign-in with a role may reactivate it (an admin's own deactivation is never undone).
    deactivated_by_sync = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_login_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["provider", "tenant", "subject"], name="external_identity_unique")
        ]
        verbose_name = "external identity"
        verbose_name_plural = "external identities"

    def __str__(self) -> str:
        return f"{self.get_provider_display()} {self.tenant}/{self.subject}"


class InvitationQuerySet(models.QuerySet["Invitation"]):
    def pending(self) -> InvitationQuerySet:
        return self.filter(accepted_at__isnull=True, revoked_at__isnull=True, expires_at__gt=timezone.now())


class Invitation(models.Model):
    """An email invited to an org with a role. The link is signed and carries `nonce`: resending
    rotates the nonce (older links stop working); accepting or revoking ends it."""

    org = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="invitations", verbose_name="organisation"
    )
    email = models.EmailField()
    role = models.CharField(max_length=32, choices=Role.choices, default=Role.MARKETER)
    invited_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    nonce = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(default=timezone.now)
    send_count = models.PositiveIntegerField(default=1)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_user = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = InvitationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(Lower("email"), name="invitation_email_ci")]

    def __str__(self) -> str:
        return f"{self.email} → {self.org} ({self.get_role_display()})"

    @property
    def status(self) -> str:
        if self.accepted_at is not None:
            return "accepted"
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at <= timezone.now():
            return "expired"
        return "pending"
