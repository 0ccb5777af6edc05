"""Template helpers for the upload drop zone."""

from __future__ import annotations

from django import template
from django.conf import settings

register = template.Library()


@register.simple_tag
def upload_max_bytes() -> int:
    return int(settings.P360_UPLOAD_MAX_BYTES)
