"""Segment definitions in memory: what the evaluator compiles from the Segment rows.

Loaded once per definitions generation (a cheap `max(updated_at), count(*)` probe per evaluation
keeps them strongly consistent, NFR14, without re-reading 10,000 rows per batch).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import connection

from segments.models import Segment

OPERATORS = {
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
    "eq": lambda a, b: a == b,
    "neq": lambda a, b: a != b,
}
SYMBOLS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<=", "eq": "=", "neq": "!="}


@dataclass(frozen=True, slots=True)
class Rule:
    segment_id: int
    version: int
    event_type: str
    attribute: str
    property: str
    operator: str
    value: Decimal
    window_minutes: int

    def holds(self, aggregate: Decimal | None) -> bool:
        if aggregate is None:  # avg/min/max over an empty window: no value, the rule cannot hold
            return False
        return bool(OPERATORS[self.operator](aggregate, self.value))

    def describe(self, aggregate: Decimal | None) -> str:
        subject = "count" if self.attribute == "count" else f"{self.attribute}({self.property})"
        shown = "none" if aggregate is None else f"{aggregate.normalize():f}"
        return (
            f"{subject} of {self.event_type} over {self.window_minutes} min = {shown} "
            f"{SYMBOLS[self.operator]} {self.value.normalize():f}"
        )


@dataclass(frozen=True, slots=True)
class Derived:
    segment_id: int
    version: int
    expression: dict[str, Any]
    children: frozenset[int]


@dataclass(frozen=True)
class Definitions:
    rules: dict[int, Rule]
    rules_by_type: dict[str, list[Rule]]
    derived: list[Derived]  # in dependency order: a derived segment after the ones it refers to
    names: dict[int, str]


_cache: dict[str, tuple[tuple[Any, ...], Definitions]] = {}


def _generation() -> tuple[Any, ...]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT max(updated_at), count(*), sum(version) FROM segments_segment")
        row = cursor.fetchone()
    return tuple(row) if row else ()


def evaluate_expression(expression: dict[str, Any], member_of: set[int]) -> bool:
    op = expression.get("op")
    results = [
        (child["segment"] in member_of) if "segment" in child else evaluate_expression(child, member_of)
        for child in expression.get("children", [])
    ]
    if op == "and":
        return all(results)
    if op == "or":
        return any(results)
    if op == "not":
        return not results[0]
    raise ValueError(f"unknown operator {op!r}")


def expression_children(expression: dict[str, Any]) -> set[int]:
    out: set[int] = set()
    for child in expression.get("children", []):
        if "segment" in child:
            out.add(int(child["segment"]))
        else:
            out |= expression_children(child)
    return out


def topological(derived: dict[int, Derived]) -> list[Derived]:
    ordered: list[Derived] = []
    done: set[int] = set()

    def visit(item: Derived, path: frozenset[int]) -> None:
        if item.segment_id in done or item.segment_id in path:
            return
        for child in item.children:
            if child in derived:
                visit(derived[child], path | {item.segment_id})
        done.add(item.segment_id)
        ordered.append(item)

    for item in derived.values():
        visit(item, frozenset())
    return ordered


def load() -> Definitions:
    schema = connection.schema_name  # type: ignore[attr-defined]
    generation = _generation()
    cached = _cache.get(schema)
    if cached and cached[0] == generation:
        return cached[1]
    rules: dict[int, Rule] = {}
    by_type: dict[str, list[Rule]] = {}
    derived: dict[int, Derived] = {}
    names: dict[int, str] = {}
    for seg in Segment.objects.filter(active=True).only(
        "id",
        "name",
        "kind",
        "version",
        "event_type",
        "attribute",
        "property",
        "operator",
        "value",
        "window_minutes",
        "expression",
    ):
        names[seg.pk] = seg.name
        if seg.kind == Segment.Kind.INDEPENDENT:
            rule = Rule(
                seg.pk,
                seg.version,
                seg.event_type,
                seg.attribute,
                seg.property or "value",
                seg.operator,
                Decimal(seg.value or 0),
                int(seg.window_minutes or 1),
            )
            rules[seg.pk] = rule
            by_type.setdefault(rule.event_type, []).append(rule)
        elif seg.expression:
            derived[seg.pk] = Derived(
                seg.pk, seg.version, seg.expression, frozenset(expression_children(seg.expression))
            )
    definitions = Definitions(rules, by_type, topological(derived), names)
    _cache[schema] = (generation, definitions)
    return definitions


def now_utc() -> datetime:
    from django.utils import timezone

    return timezone.now()
