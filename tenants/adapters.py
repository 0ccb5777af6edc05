"""allauth adapters: sign-up closed (accounts come from staff and invitations), where users land,
and Auth0 sign-in (OpenID Connect provider `auth0`) with its namespaced roles/org claims."""

from __future__ import annotations

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.core.exceptions import ImmediateHttpResponse
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from django.conf import settings
from django.http import HttpRequest
from django.shortcuts import render

from p360.core.audit.services import record
from p360.core.middleware import client_ip
from tenants.access import landing_url_for
from tenants.models import Organization, Role

INVITATION_SESSION_KEY = "p360_invitation_key"


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest) -> bool:
        return False

    def get_login_redirect_url(self, request: HttpRequest) -> str:
        return landing_url_for(request.user)  # type: ignore[arg-type]

    def _get_login_attempts_cache_key(self, request: HttpRequest, **credentials: Any) -> str:
        # allauth keys its `login_failed` "/key" limit by email alone: failures from anywhere would then
        # lock the victim out from every address. Keyed by (email, IP) instead, so the limits are per IP
        # (`/ip`) and per (email, IP) (`/key`), like django-axes on the admins' sign-in form (issue 15).
        # The name is allauth 65's private hook (also used to clear the limit after a password reset).

        return f"{super()._get_login_attempts_cache_key(request, **credentials)}@{client_ip(request) or '-'}"

    def send_password_reset_mail(self, user: Any, email: str, context: dict[str, Any]) -> None:
        # Staff who sign in with Microsoft get no local password: a reset would bypass Entra's role
        # checks. They get a pointer to single sign-on instead of a reset link.
        from tenants.models import ExternalIdentity, IdentityProvider

        if ExternalIdentity.objects.filter(user=user, provider=IdentityProvider.ENTRA).exists():
            record(action="auth.password_reset_refused", actor=user, entity=user, after={"reason": "sso_user"})
            self.send_mail("tenants/email/sso_no_password", email, context)
            return
        super().send_password_reset_mail(user, email, context)


def _refuse(request: HttpRequest, reason: str, message: str, email: str = "") -> ImmediateHttpResponse:
    record(action="auth.login_failed", actor_email=email, after={"method": "auth0", "reason": reason, "email": email})
    response = render(request, "account/sso_failed.html", {"message": message, "sso_enabled": False}, status=403)
    return ImmediateHttpResponse(response)


def auth0_claims(extra_data: dict[str, Any]) -> dict[str, Any]:
    """The claims allauth kept: the verified ID token, with userinfo (when fetched) on top."""
    if "id_token" in extra_data or "userinfo" in extra_data:
        return {**(extra_data.get("id_token") or {}), **(extra_data.get("userinfo") or {})}
    return dict(extra_data)


def auth0_claim_role(claims: dict[str, Any]) -> str | bool | None:
    """The P360 role the namespaced roles claim maps to; True when the claim is absent (nothing to check)."""
    if settings.AUTH0_ROLES_CLAIM not in claims:
        return True
    values = claims.get(settings.AUTH0_ROLES_CLAIM) or []
    if isinstance(values, str):
        values = [values]
    mapped = {settings.AUTH0_ROLE_MAP[v] for v in values if v in settings.AUTH0_ROLE_MAP}
    # Auth0 is for customers: it can confirm a marketer, never grant a staff role.
    return Role.MARKETER.value if Role.MARKETER.value in mapped else None


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    """Auth0 signs in existing P360 users (linked by Auth0 `sub`, never by email) or accepts an invitation."""

    def is_open_for_signup(self, request: HttpRequest, sociallogin: Any) -> bool:
        return False  # new accounts only through an invitation, connected in pre_social_login

    def on_authentication_error(
        self,
        request: HttpRequest,
        provider: Any,
        error: Any = None,
        exception: Any = None,
        extra_context: Any = None,
    ) -> None:
        # Provider-side failures (bad state, refused code, invalid ID token) never reach pre_social_login.
        detail = f"{error or ''} {type(exception).__name__ if exception else ''}".strip()
        record(
            action="auth.login_failed",
            after={
                "method": getattr(provider, "sub_id", None) or getattr(provider, "id", "social"),
                "reason": "provider_error",
                "detail": detail[:200],
            },
        )
        super().on_authentication_error(request, provider, error, exception, extra_context)

    def pre_social_login(self, request: HttpRequest, sociallogin: Any) -> None:
        from tenants import invitations

        claims = auth0_claims(sociallogin.account.extra_data or {})
        email = str(claims.get("email") or "")
        request.p360_login_method = "auth0"  # type: ignore[attr-defined]
        if auth0_claim_role(claims) is None:
            raise _refuse(request, "no_role", "Your Auth0 account has no P360 role.", email)
        org_claim = claims.get(settings.AUTH0_ORG_CLAIM)

        if sociallogin.is_existing:
            user = sociallogin.user
            if user.role != Role.MARKETER:
                raise _refuse(request, "staff_via_auth0", "P360 staff sign in with Microsoft.", email)
            if org_claim and not Organization.objects.filter(memberships__user=user, slug=org_claim).exists():
                raise _refuse(request, "wrong_org", "Your Auth0 account belongs to another organisation.", email)
            return

        key = request.session.get(INVITATION_SESSION_KEY)
        if not key:
            raise _refuse(
                request,
                "unknown_identity",
                "No P360 account is linked to this Auth0 sign-in. Open the invitation link you were sent.",
                email,
            )
        try:
            invitation = invitations.invitation_from_key(key)
            if org_claim and org_claim != invitation.org.slug:
                raise _refuse(request, "wrong_org", "Your Auth0 account belongs to another organisation.", email)
            user = invitations.invitation_accept(key=key, password=None, full_name=str(claims.get("name") or ""))
        except invitations.InvitationInvalid as exc:
            invitations.invitation_refused(key, exc)
            raise _refuse(request, "invitation_" + exc.code, exc.message, email) from exc
        finally:
            request.session.pop(INVITATION_SESSION_KEY, None)
        sociallogin.connect(request, user)
        record(
            action="identity.linked",
            actor=user,
            entity=user,
            after={"provider": "auth0", "sub": sociallogin.account.uid},
        )
