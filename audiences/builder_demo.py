"""Demo data of the audience builder (issue 5): templates, saved audiences with real trees, materialised.

Idempotent and quick. Works with or without Bombora demo data: with a loaded week, the intent audience reads
the "Cloud Security" topic (or the first topic there is); without, it falls back to firmographics.
"""

from __future__ import annotations

from typing import Any

from django_tenants.utils import schema_context

from audiences.models import Audience, AudienceKind
from bombora.store import current_week, search_topics, topic_by_name

ICP_NAME = "US software ICP over $10M (demo)"
ICP_TREE: dict[str, Any] = {
    "op": "and",
    "children": [
        {"field": "country", "operator": "eq", "value": "US"},
        {"field": "industry", "operator": "in", "value": ["Software", "Finance"]},
        {"field": "revenue", "operator": "gt", "value": 10_000_000},
        {"op": "not", "children": [{"field": "job_title", "operator": "contains", "value": "director"}]},
    ],
}


def _intent_tree() -> dict[str, Any]:

    topic = topic_by_name("Cloud Security") or next(iter(search_topics("", 1)), None)
    if current_week() is not None and topic is not None:
        return {
            "op": "and",
            "children": [
                {"field": f"bombora:{topic.name}", "operator": "gte", "value": 60},
                {"field": "employee_count", "operator": "gte", "value": 500},
            ],
        }
    return {
        "op": "or",
        "children": [
            {"field": "job_title", "operator": "contains", "value": "security"},
            {"field": "job_title", "operator": "starts_with", "value": "CIO"},
        ],
    }


EMEA_TREE: dict[str, Any] = {
    "op": "and",
    "children": [
        {"field": "country", "operator": "in", "value": ["DE", "GB", "FR", "NL"]},
        {"field": "industry", "operator": "contains", "value": "logistics"},
    ],
}


def load_builder_demo(orgs: list[Any]) -> dict[str, int]:
    """Per org: built-in templates, the demo ICP (acme), and real trees for the demo's tree-less built audiences."""
    from audiences.saved import built_audience_create, built_audience_update, ensure_builtin_templates

    created = {"templates": 0, "built": 0}
    for org in orgs:
        with schema_context(org.schema_name):
            created["templates"] += ensure_builtin_templates()
            if org.slug == "acme" and not Audience.objects.filter(name=ICP_NAME).exists():
                built_audience_create(name=ICP_NAME, tree=ICP_TREE, actor=None, description="Demo saved audience.")
                created["built"] += 1
            for audience in Audience.objects.filter(kind=AudienceKind.BUILT, tree__isnull=True):
                tree = _intent_tree() if "intent" in audience.name.lower() else EMEA_TREE
                built_audience_update(audience=audience, actor=None, tree=tree, note="demo definition")
                created["built"] += 1
    return created
