"""`{{ u.kind|usage_kind }}`: a lineage row's kind as people read it (`ttd_segment` -> "TTD segment")."""

from __future__ import annotations

from django import template

register = template.Library()

# kinds come from the usage providers of several apps (p360.core.registry.register_audience_usage); these words are acronyms
_ACRONYMS = {"ttd": "TTD", "icp": "ICP", "uid2": "UID2", "reds": "REDS"}


@register.filter
def usage_kind(kind: str) -> str:
    words = [_ACRONYMS.get(w, w) for w in str(kind).split("_") if w]
    text = " ".join(words)
    return text[:1].upper() + text[1:]
