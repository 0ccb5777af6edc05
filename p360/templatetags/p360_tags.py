"""Template helpers."""

from __future__ import annotations

from typing import Any

from django import template
from django.conf import settings
from django.urls import reverse

register = template.Library()


@register.simple_tag
def public_url(name: str, *args: Any, **kwargs: Any) -> str:
    """Reverse a global URL (accounts, admin, API) from any page, including org pages whose URLconf lacks it."""
    return reverse(name, urlconf=settings.PUBLIC_SCHEMA_URLCONF, args=args or None, kwargs=kwargs or None)
