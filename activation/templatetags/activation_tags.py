"""`{% activation_panel audience %}`: the Activation panel on the audience page (match rate, destinations,
last and next delivery)."""

from __future__ import annotations

from typing import Any

from django import template

register = template.Library()


@register.inclusion_tag("activation/_panel.html", takes_context=True)
def activation_panel(context: Any, audience: Any) -> dict[str, Any]:
    from activation.selectors import audience_activation

    data = audience_activation(audience)
    request = context.get("request")
    org = getattr(request, "org", None)
    return {
        "a": data,
        "match_percent": f"{100 * data['match_rate']:.1f}%",
        "admin_base": f"/o/{org.slug}/admin/activation/" if org is not None else "",
    }
