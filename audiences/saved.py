"""Writes for built (saved) audiences: create, edit (new definition versions), materialise, refresh, templates.

Materialisation runs the SQL compiler over the org's universe and replaces the audience's rows in
`audiences_builtmember` inside one transaction: readers see the old members or the new ones, never half.
Re-exported by audiences.services.
"""

from __future__ import annotations

import copy
import json
import logging
from collections import Counter
from typing import TYPE_CHECKING, Any

from django.db import connection, transaction
from django.utils import timezone

from audiences.catalogue import audience_refs
from audiences.logic.sql_engine import SqlContext, lower_template, select_rids_sql
from audiences.logic.tree import Node, TreeError, attr_path, conditions
from audiences.models import (
    Audience,
    AudienceCount,
    AudienceDefinition,
    AudienceKind,
    AudienceStatus,
    AudienceTemplate,
)
from audiences.preview import parse_tree
from bombora.store import current_week
from p360.core import registry
from p360.core.audit.services import record
from p360.core.jobs.dispatch import org_task
from tenants.selectors import current_org
from tenants.services import ServiceError

if TYPE_CHECKING:
    from tenants.models import User

logger = logging.getLogger(__name__)


def sql_context() -> SqlContext:

    return SqlContext(week=current_week(), audiences=audience_refs(), lower=lower_template())


def _email(actor: User | None) -> str:
    return actor.email if actor is not None and actor.is_authenticated else ""


def _check_name(name: str, *, exclude: int | None = None) -> str:
    name = (name or "").strip()
    if not name:
        raise ServiceError("give the audience a name")
    if len(name) > 200:
        raise ServiceError("the audience name is longer than 200 characters")
    clash = Audience.objects.filter(name=name)
    if exclude is not None:
        clash = clash.exclude(pk=exclude)
    if clash.exists():
        raise ServiceError(f"an audience named {name!r} already exists")
    return name


def _validated(tree: Any, *, audience_id: int | None = None) -> Node:
    node = parse_tree(tree)
    if audience_id is not None:
        for cond in conditions(node):
            if cond.field.type == "audience" and audience_id in cond.value:
                raise TreeError(
                    [{"path": attr_path(cond.path, "value"), "message": "an audience cannot include itself"}]
                )
    return node


def materialize(*, audience: Audience, node: Node, reason: str) -> int:
    """Replace the audience's members with the tree's result (SQL engine); record the count. Returns it."""
    sql, params = select_rids_sql(node, sql_context())
    with transaction.atomic(), connection.cursor() as cursor:
        # Refreshes overlap (after an import, the daily schedule, the admin, the API): one at a time per audience,
        # or the second DELETE misses the first INSERT's rows and its INSERT hits the primary key.
        cursor.execute("SELECT 1 FROM audiences_audience WHERE id = %s FOR UPDATE", [audience.pk])
        cursor.execute("DELETE FROM audiences_builtmember WHERE audience_id = %s", [audience.pk])
        cursor.execute(
            f"INSERT INTO audiences_builtmember (audience_id, rid) SELECT %s, s.rid FROM ({sql}) s",
            [audience.pk, *params],
        )
        count = int(cursor.rowcount)
        audience.record_count = count
        audience.materialized_at = timezone.now()
        audience.refresh_error = ""
        audience.status = AudienceStatus.READY
        audience.save(update_fields=["record_count", "materialized_at", "refresh_error", "status", "updated_at"])
        AudienceCount.objects.create(audience=audience, count=count, reason=reason)
        # new members: their stored UID2 match figures are stale (activation queues the recount after the commit)
        registry.call_hooks("audience_records_changed", audience_id=audience.pk)
    return count


def _snapshot(audience: Audience) -> dict[str, Any]:
    return {
        "name": audience.name,
        "description": audience.description,
        "tree": audience.tree,
        "definition": audience.definition_number,
        "count": audience.record_count,
    }


@org_task
@transaction.atomic
def built_audience_create(*, name: str, tree: Any, actor: User | None, description: str = "") -> Audience:
    """Save a tree as a built audience (definition 1) and materialise its members. Raises TreeError/ServiceError."""
    name = _check_name(name)
    node = _validated(tree)
    audience = Audience.objects.create(
        name=name,
        description=(description or "").strip(),
        kind=AudienceKind.BUILT,
        status=AudienceStatus.READY,
        tree=tree,
        definition_number=1,
        created_by=actor if actor is not None and actor.is_authenticated else None,
    )
    AudienceDefinition.objects.create(
        audience=audience,
        number=1,
        tree=tree,
        note="created",
        changes=f"created with {len(conditions(node))} condition(s)",
        created_by_email=_email(actor),
    )
    materialize(audience=audience, node=node, reason="created")
    record(action="audience.created", actor=actor, org=current_org(), entity=audience, after=_snapshot(audience))
    return audience


@org_task
@transaction.atomic
def built_audience_update(
    *,
    audience: Audience,
    actor: User | None,
    tree: Any = None,
    name: str | None = None,
    description: str | None = None,
    note: str = "",
) -> Audience:
    """Rename, describe, or change the tree (a new definition version, re-materialised)."""
    audience = Audience.objects.select_for_update().get(pk=audience.pk)
    if audience.kind != AudienceKind.BUILT:
        raise ServiceError("only audiences made with the builder can be edited here")
    before = _snapshot(audience)
    fields = ["updated_at"]
    if name is not None and name.strip() != audience.name:
        audience.name = _check_name(name, exclude=audience.pk)
        fields.append("name")
    if description is not None:
        audience.description = description.strip()
        fields.append("description")
    if tree is not None and tree != audience.tree:
        node = _validated(tree, audience_id=audience.pk)
        changes = describe_changes(audience.tree, tree)
        audience.definition_number += 1
        AudienceDefinition.objects.create(
            audience=audience,
            number=audience.definition_number,
            tree=tree,
            note=(note or "")[:300],
            changes=changes,
            created_by_email=_email(actor),
        )
        audience.tree = tree
        fields += ["tree", "definition_number"]
        audience.save(update_fields=fields)
        materialize(audience=audience, node=node, reason=f"definition {audience.definition_number}")
    else:
        audience.save(update_fields=fields)
    record(
        action="audience.updated",
        actor=actor,
        org=current_org(),
        entity=audience,
        before=before,
        after=_snapshot(audience),
    )
    return audience


@org_task
def built_audience_refresh(
    *, audience: Audience, actor: User | None, reason: str = "refresh", detail: dict[str, Any] | None = None
) -> int:
    """Re-materialise a built audience with today's data. A tree that no longer validates (a custom field or
    topic gone, a referenced audience deleted) keeps the old members and records the error.

    `detail` is added to the audit row (e.g. the segments whose membership change caused the refresh)."""
    if audience.kind != AudienceKind.BUILT or audience.tree is None:
        raise ServiceError("only audiences made with the builder can be refreshed")
    try:
        node = _validated(audience.tree, audience_id=audience.pk)
    except TreeError as exc:
        Audience.objects.filter(pk=audience.pk).update(refresh_error=str(exc)[:2000])
        raise ServiceError(f"the audience's definition no longer fits the data: {exc}") from exc
    with transaction.atomic():
        count = materialize(audience=audience, node=node, reason=reason)
        record(
            action="audience.refreshed",
            actor=actor,
            org=current_org(),
            entity=audience,
            after={**(detail or {}), "count": count, "reason": reason},
        )
    return count


@org_task
def refresh_all_built(*, reason: str = "scheduled", actor: User | None = None) -> dict[str, int]:
    """Refresh every built audience of the org, in id order (each in its own transaction)."""
    refreshed = failed = 0
    for audience in Audience.objects.filter(kind=AudienceKind.BUILT, tree__isnull=False).order_by("id"):
        try:
            built_audience_refresh(audience=audience, actor=actor, reason=reason)
            refreshed += 1
        except ServiceError as exc:
            logger.warning("built audience %s not refreshed: %s", audience.pk, exc)
            failed += 1
    return {"refreshed": refreshed, "failed": failed}


# --- what changed between two definitions ---------------------------------------------------------------------
def _raw_conditions(tree: Any) -> list[str]:
    found: list[str] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "field" in node:
                value = "" if node.get("operator") in ("is_null", "is_not_null") else json.dumps(node.get("value"))
                found.append(f"{node.get('field')} {node.get('operator')} {value}".strip())
            stack.extend(reversed(node.get("children") or []) if isinstance(node.get("children"), list) else [])
    return found


def _shape(tree: Any) -> Any:
    if isinstance(tree, dict) and "field" not in tree:
        return (tree.get("op"), [_shape(c) for c in tree.get("children") or []])
    return "c"


def describe_changes(old: Any, new: Any) -> str:
    """A human summary: conditions added and removed, or the grouping changed."""
    before, after = Counter(_raw_conditions(old)), Counter(_raw_conditions(new))
    added, removed = list((after - before).elements()), list((before - after).elements())
    parts = []
    if added:
        parts.append("added " + "; ".join(added))
    if removed:
        parts.append("removed " + "; ".join(removed))
    if not parts:
        parts.append("changed the grouping (AND/OR/NOT)" if _shape(old) != _shape(new) else "no change in logic")
    return ", ".join(parts)[:2000]


# --- templates --------------------------------------------------------------------------------------------------
def _placeholder_paths(tree: Any, path: str = "") -> set[str]:
    """Error paths a template may leave open: `.value` of `"placeholder": true` nodes, `.field` of
    `"placeholder": "topic"` nodes (a Bombora topic to choose)."""
    from audiences.logic.tree import child_path

    found: set[str] = set()
    if not isinstance(tree, dict):
        return found
    marker = tree.get("placeholder")
    if marker is True or marker == "value":
        found.add(attr_path(path, "value"))
    if marker == "topic":
        found.add(attr_path(path, "field"))
    for index, child in enumerate(tree.get("children") or [] if isinstance(tree.get("children"), list) else []):
        found |= _placeholder_paths(child, child_path(path, index))
    return found


def validate_template_tree(tree: Any) -> None:
    """Like a tree, but the placeholders a template leaves for the user to fill are allowed."""
    try:
        parse_tree(tree)
    except TreeError as exc:
        allowed = _placeholder_paths(tree)
        remaining = [e for e in exc.errors if e["path"] not in allowed]
        if remaining:
            raise TreeError(remaining) from exc


BUILTIN_TEMPLATES: list[dict[str, Any]] = [
    {
        "name": "ICP: technology companies over $10M revenue surging on a topic",
        "description": "Technology companies with revenue over $10M whose domain surges (60+) on a Bombora topic "
        "you choose.",
        "tree": {
            "op": "and",
            "children": [
                {"field": "industry", "operator": "contains", "value": "tech"},
                {"field": "revenue", "operator": "gt", "value": 10_000_000},
                {"field": "bombora:", "operator": "gte", "value": 60, "placeholder": "topic"},
            ],
        },
    },
    {
        "name": "UID2-ready contacts in the US",
        "description": "US records with an email hash, ready to send to The Trade Desk as UID2.",
        "tree": {
            "op": "and",
            "children": [
                {"field": "email_sha256", "operator": "is_not_null"},
                {"field": "country", "operator": "eq", "value": "US"},
            ],
        },
    },
    {
        "name": "Surging accounts that are not customers yet",
        "description": "Domains surging on a topic you choose, excluding an audience you choose (e.g. customers).",
        "tree": {
            "op": "and",
            "children": [
                {"field": "bombora:", "operator": "gte", "value": 70, "placeholder": "topic"},
                {
                    "op": "not",
                    "children": [{"field": "audience", "operator": "in", "value": None, "placeholder": True}],
                },
            ],
        },
    },
    {
        "name": "Mid-market companies",
        "description": "Companies with 50 to 1,000 employees.",
        "tree": {"field": "employee_count", "operator": "between", "value": [50, 1000]},
    },
    {
        "name": "Senior decision makers at large companies",
        "description": "Chiefs, VPs, directors and heads of at companies with 1,000+ employees.",
        "tree": {
            "op": "and",
            "children": [
                {
                    "op": "or",
                    "children": [
                        {"field": "job_title", "operator": "contains", "value": value}
                        for value in ("chief", "vp", "vice president", "director", "head of")
                    ],
                },
                {"field": "employee_count", "operator": "gte", "value": 1000},
            ],
        },
    },
]


@org_task
def ensure_builtin_templates() -> int:
    """Create or update the built-in templates of the current org; returns how many were created."""
    created = 0
    for spec in BUILTIN_TEMPLATES:
        _, was_created = AudienceTemplate.objects.update_or_create(
            name=spec["name"],
            defaults={"description": spec["description"], "tree": copy.deepcopy(spec["tree"]), "builtin": True},
        )
        created += was_created
    return created


@org_task
@transaction.atomic
def template_create(*, name: str, tree: Any, actor: User | None, description: str = "") -> AudienceTemplate:
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise ServiceError("give the template a name of at most 200 characters")
    if AudienceTemplate.objects.filter(name=name).exists():
        raise ServiceError(f"a template named {name!r} already exists")
    validate_template_tree(tree)
    template = AudienceTemplate.objects.create(
        name=name, description=(description or "").strip(), tree=tree, builtin=False, created_by_email=_email(actor)
    )
    record(action="audience_template.created", actor=actor, org=current_org(), entity=template, after={"name": name})
    return template
