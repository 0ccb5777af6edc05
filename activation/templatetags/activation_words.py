"""Words of the activation templates."""

from __future__ import annotations

from typing import Any

from django import template

from activation.models import DestinationKind
from p360.core import formatting

register = template.Library()


@register.filter
def destination_kind(code: Any) -> str:
    """A destination's kind as the admin and its own page name it ("ttd" -> "The Trade Desk (API)")."""
    return formatting.choice(DestinationKind, code)
