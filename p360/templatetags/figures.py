"""Template filters over p360.core.formatting: {% load figures %} then {{ v|money }}, {{ v|pct:2 }}, {{ v|count }},
{{ v|day }}, {{ v|metric:"ctr" }}. The same functions format the admin and the PDF."""

from __future__ import annotations

from typing import Any

from django import template

from p360.core import formatting

register = template.Library()


@register.filter
def money(value: Any, currency: str | None = None) -> str:
    return formatting.money(value, currency)


@register.filter
def count(value: Any) -> str:
    return formatting.count(value)


@register.filter
def pct(value: Any, places: int = 2) -> str:
    return formatting.percent(value, int(places))


@register.filter
def signed_pct(value: Any, places: int = 1) -> str:
    return formatting.signed_percent(value, int(places))


@register.filter
def day(value: Any) -> str:
    return formatting.day(value)


@register.filter
def moment(value: Any) -> str:
    return formatting.moment(value)


@register.filter
def metric(value: Any, key: str) -> str:
    return formatting.metric(key, value)


@register.filter
def ratio_pct(value: Any, places: int = 1) -> str:
    """A plain ratio (2.2928) shown as a percentage (229.3 %), as ROAS is everywhere else."""
    number = formatting._decimal(value)
    return formatting.DASH if number is None else formatting.percent(number * 100, int(places))


@register.simple_tag(takes_context=True)
def figure(context: Any, key: str, value: Any) -> str:
    """{% figure "spend" row.spend %}: a report figure by its metric name, in the page's currency."""
    currency = context.get("currency")
    return formatting.metric(key, value, currency() if callable(currency) else currency)


@register.filter
def money_whole(value: Any, currency: str | None = None) -> str:
    """Whole currency units ("$167,230"), for narrow tables where cents add width and no information."""
    return formatting.money(value, currency, places=0)
