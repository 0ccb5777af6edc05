"""Audience logic trees: parse and validate the contract's JSON into typed nodes.

Validation happens once, before any engine runs, so the compilers can trust their input. Every error names the
path of the node (or the node's attribute) that is wrong: root is "", children are `children[0]`, nested
`children[1].children[0]`, attributes `children[1].operator`. All errors of a tree are collected (up to a cap) so
the builder can mark every bad node at once.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

MAX_NODES = 1000
MAX_DEPTH = 32  # levels below the root; the contract asks for at least 10
MAX_LIST_VALUES = 10_000
MAX_ERRORS = 50
MAX_STRING = 1000

# Builder field types (the `type` in the field catalogue).
TEXT, IDENTIFIER, CATEGORY = "text", "identifier", "category"
NUMBER, DATE, BOOLEAN = "number", "date", "boolean"
BOMBORA, AUDIENCE = "bombora", "audience"
# Membership in a set a higher app provides through p360.core.registry.BuilderField (issue 13: `segment`).
MEMBERSHIP = "membership"
STRING_TYPES = frozenset({TEXT, IDENTIFIER, CATEGORY})
ORDERED_TYPES = frozenset({NUMBER, DATE, BOMBORA})

GROUP_OPS = ("and", "or", "not")
STRING_OPERATORS = (
    "eq", "neq", "in", "not_in", "contains", "starts_with", "ends_with", "is_null", "is_not_null",
)  # fmt: skip
ORDERED_OPERATORS = ("eq", "neq", "in", "not_in", "gt", "gte", "lt", "lte", "between", "is_null", "is_not_null")
OPERATORS_BY_TYPE: dict[str, tuple[str, ...]] = {
    TEXT: STRING_OPERATORS,
    IDENTIFIER: STRING_OPERATORS,
    CATEGORY: STRING_OPERATORS,
    NUMBER: ORDERED_OPERATORS,
    DATE: ORDERED_OPERATORS,
    BOMBORA: ORDERED_OPERATORS,
    BOOLEAN: ("eq", "neq", "is_null", "is_not_null"),
    AUDIENCE: ("in", "not_in"),
    MEMBERSHIP: ("in", "not_in"),
}
ALL_OPERATORS = frozenset(op for ops in OPERATORS_BY_TYPE.values() for op in ops)
LIST_OPERATORS = frozenset({"in", "not_in"})
NULL_OPERATORS = frozenset({"is_null", "is_not_null"})


@dataclass(frozen=True)
class FieldRef:
    """What a tree's FIELD resolves to in one organisation.

    `column` is the universe column the engines read: a canonical field (`revenue`), `custom.<key>`,
    `bombora:<topic id>`, or `audience`. `custom_type` is the import's custom type for custom fields.
    """

    name: str
    type: str
    column: str
    topic_id: int | None = None
    custom_type: str | None = None
    # Bombora only (issue 18): None = the current week's score; "max_4w" = the highest weekly score over the last
    # 4 loaded weeks (>= 60: surging in any of them); "rise_12w" = the current score minus the score of the
    # earliest week with one in the last 12 (null with fewer than two such weeks or no current score).
    measure: str | None = None
    # Membership fields only: the ids the current org may name (None: not checked).
    choices: frozenset[int] | None = None


@dataclass(frozen=True)
class Condition:
    path: str
    field: FieldRef
    operator: str
    # Normalised: strings lowercased, dates as date, numbers as int/float, lists as tuples, between as (lo, hi).
    value: Any = None


@dataclass(frozen=True)
class Group:
    path: str
    op: str
    children: tuple[Node, ...] = field(default_factory=tuple)


Node = Group | Condition

# A resolver maps a FIELD name to its FieldRef in the current org (None: unknown field).
Resolver = Callable[[str], FieldRef | None]


@dataclass
class TreeError(Exception):
    """A tree that cannot be evaluated. `errors`: [{"path", "message"}], the first is the headline."""

    errors: list[dict[str, str]]

    def __str__(self) -> str:
        first = self.errors[0]
        return f"{first['path'] or 'tree'}: {first['message']}" if first["path"] else first["message"]

    @property
    def path(self) -> str:
        return self.errors[0]["path"]

    def details(self) -> dict[str, Any]:
        return {"path": self.path, "errors": self.errors}


def child_path(parent: str, index: int) -> str:
    return f"{parent}.children[{index}]" if parent else f"children[{index}]"


def attr_path(node_path: str, attribute: str) -> str:
    return f"{node_path}.{attribute}" if node_path else attribute


class _Collector:
    def __init__(self) -> None:
        self.errors: list[dict[str, str]] = []
        self.nodes = 0

    def add(self, path: str, message: str) -> None:
        if len(self.errors) < MAX_ERRORS:
            self.errors.append({"path": path, "message": message})


def parse(tree: Any, resolve: Resolver, *, audience_ids: set[int] | None = None) -> Node:
    """Validate `tree` and return its typed form; raise TreeError naming every bad node's path."""
    collector = _Collector()
    node = _parse_node(tree, "", 0, resolve, collector, audience_ids)
    if collector.errors or node is None:
        raise TreeError(collector.errors or [{"path": "", "message": "the tree is not valid"}])
    return node


def _parse_node(
    raw: Any, path: str, depth: int, resolve: Resolver, out: _Collector, audience_ids: set[int] | None
) -> Node | None:
    out.nodes += 1
    if out.nodes > MAX_NODES:
        if out.nodes == MAX_NODES + 1:
            out.add(path, f"the tree has more than {MAX_NODES} nodes; simplify it or save part of it as an audience")
        return None
    if not isinstance(raw, dict):
        out.add(path, "a node must be an object: a group {op, children} or a condition {field, operator, value}")
        return None
    if "op" in raw and "field" in raw:
        out.add(path, "a node is either a group (op, children) or a condition (field, operator, value), not both")
        return None
    if "op" in raw or "children" in raw:
        return _parse_group(raw, path, depth, resolve, out, audience_ids)
    if "field" in raw or "operator" in raw:
        return _parse_condition(raw, path, resolve, out, audience_ids)
    out.add(path, "a node must be a group (op, children) or a condition (field, operator, value)")
    return None


def _parse_group(
    raw: dict[str, Any], path: str, depth: int, resolve: Resolver, out: _Collector, audience_ids: set[int] | None
) -> Group | None:
    op = raw.get("op")
    ok = True
    if not isinstance(op, str) or op.lower() not in GROUP_OPS:
        out.add(attr_path(path, "op"), f"op must be one of {', '.join(GROUP_OPS)}")
        ok = False
    else:
        op = op.lower()
    children = raw.get("children")
    if not isinstance(children, list):
        out.add(attr_path(path, "children"), "children must be a list of nodes")
        return None
    if not children:
        out.add(attr_path(path, "children"), "a group needs at least one condition or group")
        return None
    if op == "not" and len(children) != 1:
        out.add(attr_path(path, "children"), f"a NOT group takes exactly one child (it has {len(children)})")
        ok = False
    if depth >= MAX_DEPTH:
        out.add(path, f"the tree is nested more than {MAX_DEPTH} levels deep")
        return None
    parsed = []
    for index, child in enumerate(children):
        node = _parse_node(child, child_path(path, index), depth + 1, resolve, out, audience_ids)
        if out.nodes > MAX_NODES:
            return None
        parsed.append(node)
    if not ok or any(node is None for node in parsed):
        return None
    return Group(path=path, op=str(op), children=tuple(n for n in parsed if n is not None))


def _parse_condition(
    raw: dict[str, Any], path: str, resolve: Resolver, out: _Collector, audience_ids: set[int] | None
) -> Condition | None:
    name = raw.get("field")
    if not isinstance(name, str) or not name.strip():
        out.add(attr_path(path, "field"), "field must be a field name from the catalogue")
        return None
    if len(name) > MAX_STRING:
        out.add(attr_path(path, "field"), "the field name is too long")
        return None
    ref = resolve(name.strip())
    if ref is None:
        if name.startswith("bombora") and ":" in name:
            out.add(attr_path(path, "field"), f"unknown Bombora topic {name.split(':', 1)[1]!r}")
        else:
            out.add(attr_path(path, "field"), f"unknown field {name!r}")
        return None
    operator = raw.get("operator")
    allowed = OPERATORS_BY_TYPE[ref.type]
    if not isinstance(operator, str) or operator not in ALL_OPERATORS:
        out.add(attr_path(path, "operator"), f"operator must be one of {', '.join(allowed)}")
        return None
    if operator not in allowed:
        out.add(
            attr_path(path, "operator"),
            f"operator {operator!r} does not fit {ref.type} field {name!r}; use one of {', '.join(allowed)}",
        )
        return None
    value_path = attr_path(path, "value")
    try:
        value = _parse_value(ref, operator, raw.get("value"), audience_ids)
    except _BadValue as exc:
        out.add(value_path, str(exc))
        return None
    return Condition(path=path, field=ref, operator=operator, value=value)


class _BadValue(Exception):
    pass


def _parse_value(ref: FieldRef, operator: str, value: Any, audience_ids: set[int] | None) -> Any:
    if operator in NULL_OPERATORS:
        return None  # any value given is ignored: the UI may keep the last one while switching operators
    if operator in LIST_OPERATORS:
        if not isinstance(value, list):
            raise _BadValue(f"{operator} takes a list of values")
        if not value:
            raise _BadValue(f"{operator} needs at least one value")
        if len(value) > MAX_LIST_VALUES:
            raise _BadValue(f"at most {MAX_LIST_VALUES} values")
        scalars = tuple(_scalar(ref, item, audience_ids) for item in value)
        return tuple(dict.fromkeys(scalars))  # duplicates do not change the result
    if operator == "between":
        if not isinstance(value, list) or len(value) != 2:
            raise _BadValue("between takes [low, high]")
        low, high = _scalar(ref, value[0], audience_ids), _scalar(ref, value[1], audience_ids)
        if low > high:
            raise _BadValue("between needs low <= high")
        return (low, high)
    if ref.type == AUDIENCE:
        raise _BadValue("audience takes in or not_in with a list of audience ids")
    return _scalar(ref, value, audience_ids)


def _scalar(ref: FieldRef, value: Any, audience_ids: set[int] | None) -> Any:
    if value is None:
        raise _BadValue("a value is required (null is not a value; use is_null)")
    kind = ref.type
    if kind in STRING_TYPES:
        if not isinstance(value, str):
            raise _BadValue(f"{ref.name} takes text values")
        if len(value) > MAX_STRING:
            raise _BadValue(f"text values are limited to {MAX_STRING} characters")
        return value.lower()
    if kind in (NUMBER, BOMBORA):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _BadValue(f"{ref.name} takes numbers")
        if isinstance(value, float):
            if not math.isfinite(value):
                raise _BadValue("numbers must be finite")
            if value.is_integer() and abs(value) < 2**53:
                return int(value)
        elif abs(value) >= 2**63:
            raise _BadValue("the number is too large")
        return value
    if kind == DATE:
        if not isinstance(value, str):
            raise _BadValue(f"{ref.name} takes dates as YYYY-MM-DD")
        try:
            return dt.date.fromisoformat(value) if len(value) == 10 else _bad_date()
        except ValueError as exc:
            raise _BadValue(f"{value!r} is not a date (YYYY-MM-DD)") from exc
    if kind == BOOLEAN:
        if not isinstance(value, bool):
            raise _BadValue(f"{ref.name} takes true or false")
        return value
    if kind == AUDIENCE:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _BadValue("audience ids are integers")
        if audience_ids is not None and value not in audience_ids:
            raise _BadValue(f"no audience with id {value} in this organisation")
        return value
    if kind == MEMBERSHIP:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _BadValue(f"{ref.name} ids are integers")
        if ref.choices is not None and value not in ref.choices:
            raise _BadValue(f"no {ref.name} with id {value} in this organisation")
        return value
    raise _BadValue(f"unsupported field type {kind!r}")


def _bad_date() -> dt.date:
    raise ValueError("not YYYY-MM-DD")


def walk(node: Node) -> list[Node]:
    """Every node, parents before children (document order)."""
    result: list[Node] = []
    stack: list[Node] = [node]
    while stack:
        current = stack.pop()
        result.append(current)
        if isinstance(current, Group):
            stack.extend(reversed(current.children))
    return result


def conditions(node: Node) -> list[Condition]:
    return [n for n in walk(node) if isinstance(n, Condition)]
