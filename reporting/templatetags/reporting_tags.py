"""Small helpers of the report templates: query strings that keep the page's state, dict lookups."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from django import template

from campaigns.models import MediaSource
from p360.core import formatting

register = template.Library()


@register.simple_tag
def qs_for(state: Any, **overrides: Any) -> str:
    """The page's query string (range, filters, table state) with some values replaced."""
    return str(state.params(**overrides))


@register.filter
def hidden_fields(q: Any, exclude: str) -> list[tuple[str, str]]:
    skip = set(exclude.split(","))
    return [(k, v) for k, v in parse_qsl(q.params()) if k not in skip]


@register.filter
def header_cells(table: Any, columns: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [("name", table.level.capitalize()), *columns]


@register.filter
def next_dir(table: Any, key: str) -> str:
    if table.sort == key:
        return "asc" if table.desc else "desc"
    return "asc" if key == "name" else "desc"


@register.filter
def get(mapping: dict[str, Any], key: str) -> Any:
    return mapping.get(key)


@register.filter
def source_label(code: Any) -> str:
    """A media source's name as the rest of the portal writes it ("surfside" -> "Surfside", "reds" -> "TTD REDS")."""
    return formatting.choice(MediaSource, code)
