"""Evaluate a validated tree over a polars frame of the universe (previews).

The frame has one row per person and one column per field the tree uses (named by `FieldRef.column`):
canonical fields, `custom.<key>`, `bombora:<topic id>` (score or null) and `audience:<id>` (membership, never
null). String columns are either `pl.Enum` (most: the predicate is evaluated once over the categories, then the
rows are matched by their physical code) or plain `String` (near-unique identifiers such as emails).

Semantics (CONTRACT "Audience logic trees"): a condition on a missing value is false except `is_null`; strings
compare case-insensitively; `between` is inclusive; `not` negates its child, so it includes unknowns.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import reduce
from typing import Any

import polars as pl

from audiences.logic.tree import AUDIENCE, BOOLEAN, MEMBERSHIP, STRING_TYPES, Condition, Node, conditions


@dataclass(frozen=True)
class StringColumn:
    """How a string column is stored: Enum with its lowered categories (index = physical code), or String."""

    lowered_categories: pl.Series | None = None
    lowercase: bool = False  # a plain String column whose values are all lowercase already
    # (operator, value) -> (codes, complement?): the category scan is done once per predicate, not per request
    memo: dict[tuple[str, Any], tuple[pl.Series, bool]] = field(default_factory=dict, compare=False)


def audience_column(audience_id: int) -> str:
    return f"audience:{int(audience_id)}"


def _string_predicate(values: pl.Expr, operator: str, value: Any) -> pl.Expr:
    if operator == "eq":
        return values == value
    if operator == "neq":
        return values != value
    if operator == "in":
        return values.is_in(pl.Series(list(value), dtype=pl.String).implode())
    if operator == "not_in":
        return ~values.is_in(pl.Series(list(value), dtype=pl.String).implode())
    if operator == "contains":
        return values.str.contains(value, literal=True)
    if operator == "starts_with":
        return values.str.starts_with(value)
    if operator == "ends_with":
        return values.str.ends_with(value)
    raise ValueError(f"operator {operator!r} is not a string operator")


def _string_condition(cond: Condition, info: StringColumn) -> pl.Expr:
    column = pl.col(cond.field.column)
    if info.lowered_categories is not None:
        # The predicate runs over the (few) categories; rows are then matched by code. Nulls stay null.
        key = (cond.operator, cond.value)
        found = info.memo.get(key)
        if found is None:
            categories = info.lowered_categories
            matches = pl.select(_string_predicate(pl.lit(categories), cond.operator, cond.value)).to_series()
            matches = matches.fill_null(False)
            # Match the smaller side: most of the categories -> rows NOT among the others (nulls stay out).
            complement = int(matches.sum()) * 2 > matches.len()
            codes = (~matches if complement else matches).arg_true().cast(pl.UInt32)
            if len(info.memo) > 512:
                info.memo.clear()
            found = info.memo[key] = (codes, complement)
        codes, complement = found
        physical = column.to_physical()
        if complement:
            return physical.is_not_null() & ~physical.is_in(codes.implode()) if codes.len() else physical.is_not_null()
        if codes.len() == 0:
            return pl.lit(False)
        return physical.is_in(codes.implode())
    values = column if info.lowercase else column.str.to_lowercase()
    return _string_predicate(values, cond.operator, cond.value)


def _numeric_list(values: tuple[Any, ...], dtype: pl.DataType) -> pl.Series | None:
    """The list's values that a column of `dtype` can hold (others can never be equal), or None if none."""
    if dtype.is_integer():
        ranges: dict[Any, tuple[int, int]] = {
            pl.UInt8: (0, 255),
            pl.UInt16: (0, 65535),
            pl.UInt32: (0, 2**32 - 1),
            pl.Int8: (-128, 127),
            pl.Int16: (-32768, 32767),
            pl.Int32: (-(2**31), 2**31 - 1),
        }
        low, high = ranges.get(type(dtype), (-(2**63), 2**63 - 1))
        kept = [int(v) for v in values if float(v).is_integer() and low <= v <= high]
        return pl.Series(kept, dtype=dtype) if kept else None
    if dtype.is_float():
        return pl.Series([float(v) for v in values], dtype=dtype)
    return pl.Series(list(values), dtype=dtype)


def _ordered_condition(cond: Condition, dtype: pl.DataType) -> pl.Expr:
    column = pl.col(cond.field.column)
    op, value = cond.operator, cond.value
    if op == "eq":
        return column == pl.lit(value)
    if op == "neq":
        return column != pl.lit(value)
    if op in ("in", "not_in"):
        kept = _numeric_list(value, dtype)
        hit = pl.lit(False) if kept is None else column.is_in(kept.implode())
        # not_in is false for a missing value: keep the null so fill_null(False) applies.
        return hit if op == "in" else pl.when(column.is_not_null()).then(~hit)
    if op == "gt":
        return column > pl.lit(value)
    if op == "gte":
        return column >= pl.lit(value)
    if op == "lt":
        return column < pl.lit(value)
    if op == "lte":
        return column <= pl.lit(value)
    if op == "between":
        return (column >= pl.lit(value[0])) & (column <= pl.lit(value[1]))
    raise ValueError(f"operator {op!r} is not an ordered operator")


def condition_expr(cond: Condition, schema: Mapping[str, pl.DataType], strings: Mapping[str, StringColumn]) -> pl.Expr:
    """A Boolean expression without nulls for one condition."""
    ref = cond.field
    if ref.type == AUDIENCE:
        hit = pl.any_horizontal([pl.col(audience_column(a)) for a in cond.value])
        return (hit if cond.operator == "in" else ~hit).fill_null(False)
    if ref.type == MEMBERSHIP:  # a column the caller resolved at query time (audiences/logic/membership.py)
        from audiences.logic.membership import column_name

        member = pl.col(column_name(ref.column, cond.value))
        return (member if cond.operator == "in" else ~member).fill_null(False)
    column = pl.col(ref.column)
    if cond.operator == "is_null":
        return column.is_null()
    if cond.operator == "is_not_null":
        return column.is_not_null()
    if ref.type in STRING_TYPES:
        expr = _string_condition(cond, strings.get(ref.column, StringColumn()))
    elif ref.type == BOOLEAN:
        expr = column == cond.value if cond.operator == "eq" else column != cond.value
    else:
        expr = _ordered_condition(cond, schema[ref.column])
    return expr.fill_null(False)


@dataclass
class Evaluation:
    mask: pl.Series
    count: int
    nodes: dict[str, dict[str, int]]


def evaluate(
    frame: pl.DataFrame, node: Node, strings: Mapping[str, StringColumn], *, per_node: bool = True
) -> Evaluation:
    """The tree's mask over `frame`, its count, and per node {count, running} (see the preview API)."""
    leaves = conditions(node)
    schema = frame.schema
    # All leaves in one select: polars evaluates independent expressions in parallel.
    names = [f"__leaf{i}" for i in range(len(leaves))]
    exprs = [condition_expr(leaf, schema, strings).alias(name) for leaf, name in zip(leaves, names, strict=True)]
    # with_columns (not select) so that constant leaves broadcast to the frame's height.
    masks = frame.with_columns(exprs).select(names)
    leaf_masks = {leaf.path: masks.get_column(name) for leaf, name in zip(leaves, names, strict=True)}
    nodes: dict[str, dict[str, int]] = {}
    mask = _combine(node, leaf_masks, nodes if per_node else None)
    count = int(mask.sum())
    if per_node:
        nodes[node.path] = {"count": count, "running": count}
    return Evaluation(mask=mask, count=count, nodes=nodes)


def _combine(node: Node, leaf_masks: dict[str, pl.Series], nodes: dict[str, dict[str, int]] | None) -> pl.Series:
    if isinstance(node, Condition):
        return leaf_masks[node.path]
    child_masks = [_combine(child, leaf_masks, nodes) for child in node.children]
    if node.op == "not":
        result = ~child_masks[0]
        if nodes is not None:
            own = int(child_masks[0].sum())
            nodes[node.children[0].path] = {"count": own, "running": own}
        return result
    own_counts = (
        {child.path: int(m.sum()) for child, m in zip(node.children, child_masks, strict=True)}
        if nodes is not None
        else {}
    )
    running: pl.Series | None = None
    for child, child_mask in zip(node.children, child_masks, strict=True):
        if running is not None:
            child_mask = running & child_mask if node.op == "and" else running | child_mask
        running = child_mask
        if nodes is not None:
            nodes[child.path] = {"count": own_counts[child.path], "running": int(running.sum())}
    assert running is not None
    if nodes is not None:
        nodes[node.path] = {"count": int(running.sum()), "running": int(running.sum())}
    return running


def count(frame: pl.DataFrame, node: Node, strings: Mapping[str, StringColumn]) -> int:
    return evaluate(frame, node, strings, per_node=False).count


def as_expr(node: Node, schema: Mapping[str, pl.DataType], strings: Mapping[str, StringColumn]) -> pl.Expr:
    """The whole tree as one expression (for filters and tests)."""
    if isinstance(node, Condition):
        return condition_expr(node, schema, strings)
    parts = [as_expr(child, schema, strings) for child in node.children]
    if node.op == "not":
        return ~parts[0]
    return reduce(lambda a, b: (a & b) if node.op == "and" else (a | b), parts)


def first_rows(mask: pl.Series, limit: int, chunk: int = 1 << 16) -> list[int]:
    """Positions of the first `limit` true values, scanning in chunks (no full arg_true over 10M rows)."""
    found: list[int] = []
    if limit <= 0:
        return found
    for offset in range(0, mask.len(), chunk):
        part = mask.slice(offset, chunk)
        if not part.any():
            continue
        found.extend(offset + int(i) for i in part.arg_true().head(limit - len(found)).to_list())
        if len(found) >= limit:
            break
    return found
