"""`{% audience_panels audience %}`: the sections other apps register for the audience page
(`p360.core.registry.register_audience_panel`), so the page never loads a higher app's template tags."""

from __future__ import annotations

import logging
from typing import Any

from django import template
from django.utils.html import format_html_join
from django.utils.safestring import SafeString

from p360.core import registry

register = template.Library()
logger = logging.getLogger(__name__)


@register.simple_tag(takes_context=True)
def audience_panels(context: Any, audience: Any) -> SafeString:
    """Every registered panel in order; a failing panel is logged and left out (one app's bug must not take the
    audience page down), and with no panel registered this renders nothing. A plain `str` is escaped: only
    `SafeString` (what `render_to_string` returns) goes out as HTML."""
    request = context.get("request")
    parts: list[tuple[str]] = []
    for panel in registry.audience_panels():
        try:
            parts.append((panel.render(request, audience),))  # escaped unless it is safe HTML (render_to_string)
        except Exception:
            logger.exception("audience panel %s failed for audience %s", panel.key, getattr(audience, "pk", None))
    return format_html_join("\n", "{}", parts)
