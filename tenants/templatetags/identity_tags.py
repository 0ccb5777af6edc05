"""Template helpers for the sign-in pages."""

from __future__ import annotations

from django import template
from django.conf import settings

register = template.Library()


@register.simple_tag
def entra_sso_enabled() -> bool:
    """Whether "Sign in with Microsoft" is offered (Entra ID configured)."""
    return bool(settings.ENTRA_SSO_ENABLED)
