"""Multi-factor authentication (allauth.mfa): an org's `require_mfa` for its marketers, and audit rows.

allauth already refuses a TOTP code used twice (a cache entry per user and code for the period:
use a shared cache, `P360_CACHE_URL`, when running more than one process) and marks each recovery
code used; a password reset never signs in, so the next sign-in still asks for the code.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from allauth.mfa import signals
from allauth.mfa.adapter import DefaultMFAAdapter
from allauth.mfa.models import Authenticator
from django.contrib import messages
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect

from p360.core.audit.services import record
from tenants.models import Organization, Role, User

MFA_SETUP_URL = "/accounts/2fa/totp/activate/"
EXEMPT_PREFIXES = ("/accounts/", "/static/", "/healthz", "/oidc/", "/media/")


def mfa_required_for(user: Any) -> bool:
    """Marketers of an org that requires MFA must have it; staff sign in through the company identity."""
    if not getattr(user, "is_authenticated", False) or user.role != Role.MARKETER:
        return False
    return Organization.objects.filter(memberships__user=user, require_mfa=True, is_active=True).exists()


def has_mfa(user: Any) -> bool:
    return Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()


class MfaAdapter(DefaultMFAAdapter):
    def can_delete_authenticator(self, authenticator: Authenticator) -> bool:
        # A marketer whose org requires MFA may not switch it off (they may replace it: a new one first).
        if authenticator.type == Authenticator.Type.TOTP and mfa_required_for(authenticator.user):
            return False
        return super().can_delete_authenticator(authenticator)


class RequireMfaMiddleware:
    """Until a marketer whose org requires MFA has set it up, every page sends them to the set-up page
    and the API answers 403 (tokens included: a token is no way around the org's rule)."""

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        if (
            getattr(user, "is_authenticated", False)
            and getattr(user, "role", None) == Role.MARKETER
            and not request.path.startswith(EXEMPT_PREFIXES)
            and mfa_required_for(user)
            and not has_mfa(user)
        ):
            from p360.core.api_errors import (  # lazy: api_errors imports DRF, whose settings import this module
                error_response,
                is_api_path,
            )

            if is_api_path(request.path):
                return error_response(
                    403,
                    f"Your organisation requires two-factor authentication: set it up at {MFA_SETUP_URL}",
                    "mfa_required",
                )
            messages.info(request, "Your organisation requires two-factor authentication. Set it up to continue.")
            return HttpResponseRedirect(f"{MFA_SETUP_URL}?{urlencode({'next': request.get_full_path()})}")
        return self.get_response(request)


def _audit(action: str, request: Any, user: User, authenticator: Authenticator, **extra: Any) -> None:
    user = User.objects.get(pk=user.pk)  # allauth passes request.user, a lazy proxy record() cannot name
    org = Organization.objects.filter(memberships__user=user).first() if user.role == Role.MARKETER else None
    record(action=action, actor=user, org=org, entity=user, after={"type": authenticator.type, **extra})


@receiver(signals.authenticator_added)
def _added(sender: Any, request: Any, user: User, authenticator: Authenticator, **kwargs: Any) -> None:
    _audit("mfa.added", request, user, authenticator)


@receiver(signals.authenticator_removed)
def _removed(sender: Any, request: Any, user: User, authenticator: Authenticator, **kwargs: Any) -> None:
    _audit("mfa.removed", request, user, authenticator)


@receiver(signals.authenticator_reset)
def _reset(sender: Any, request: Any, user: User, authenticator: Authenticator, **kwargs: Any) -> None:
    _audit("mfa.reset", request, user, authenticator)


@receiver(signals.authentication_failed)
def _failed(sender: Any, request: Any, user: User, authenticator: Authenticator, **kwargs: Any) -> None:
    _audit("mfa.failed", request, user, authenticator)
