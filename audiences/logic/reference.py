"""A plain-Python evaluator of validated trees: the readable statement of the semantics (tests only).

A person is a dict keyed by `FieldRef.column` (missing key or None = missing value) with `__audiences`, the set
of audience ids the person belongs to, and `__member_of`, {membership field: set of ids} (e.g. the event segments
the person is in by the identity rule of audiences/logic/membership.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from audiences.logic.tree import AUDIENCE, MEMBERSHIP, STRING_TYPES, Condition, Node


def holds(node: Node, person: Mapping[str, Any]) -> bool:
    if isinstance(node, Condition):
        return _condition(node, person)
    results = [holds(child, person) for child in node.children]
    if node.op == "not":
        return not results[0]
    return all(results) if node.op == "and" else any(results)


def _condition(cond: Condition, person: Mapping[str, Any]) -> bool:
    op, value = cond.operator, cond.value
    if cond.field.type == AUDIENCE:
        member = bool(set(value) & set(person.get("__audiences", ())))
        return member if op == "in" else not member
    if cond.field.type == MEMBERSHIP:
        member = bool(set(value) & set(person.get("__member_of", {}).get(cond.field.column, ())))
        return member if op == "in" else not member
    current = person.get(cond.field.column)
    if op == "is_null":
        return current is None
    if op == "is_not_null":
        return current is not None
    if current is None:
        return False  # a condition on a missing value is false
    if cond.field.type in STRING_TYPES:
        current = str(current).lower()
    if op == "eq":
        return bool(current == value)
    if op == "neq":
        return bool(current != value)
    if op == "in":
        return current in value
    if op == "not_in":
        return current not in value
    if op == "gt":
        return bool(current > value)
    if op == "gte":
        return bool(current >= value)
    if op == "lt":
        return bool(current < value)
    if op == "lte":
        return bool(current <= value)
    if op == "between":
        return bool(value[0] <= current <= value[1])
    if op == "contains":
        return value in current
    if op == "starts_with":
        return bool(current.startswith(value))
    if op == "ends_with":
        return bool(current.endswith(value))
    raise ValueError(f"unknown operator {op!r}")


def count(node: Node, people: Iterable[Mapping[str, Any]]) -> int:
    return sum(1 for person in people if holds(node, person))
