"""Evaluate a validated tree over a polars frame of the universe (previews).

The frame has one row per person and one column per field the tree uses (named by `FieldRef.column`):
canonical fields, `custom.<key>`, `bombora:<topic id>` (score or null) and `audience:<id>` (membership, never
null). String columns are either `pl.Enum` (most: the predicate is evaluated once over the categories, then the
rows are matched by their physical code) or plain `String` (near-unique identifiers such as emails).

How a string predicate tests rows (issue 17): the cache sorts each Enum's categories by their lowercase form, so
`eq`, `in` and `starts_with` match one or a few contiguous code ranges (a compare on the narrow code column); a
match that is no range and not a handful of codes (`contains "9"` over two million company names) becomes a boolean
lookup table over the categories, gathered by code with numpy on both cores. Leaf masks can be memoised across the
edits of one session (`LeafMemo`, kept per cache entry, i.e. per data generation).

Semantics (CONTRACT "Audience logic trees"): a condition on a missing value is false except `is_null`; strings
compare case-insensitively; `between` is inclusive; `not` negates its child, so it includes unknowns.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import reduce
from typing import Any

import numpy as np
import polars as pl

from audiences.logic.tree import AUDIENCE, BOOLEAN, MEMBERSHIP, STRING_TYPES, Condition, Node, conditions


@dataclass(frozen=True)
class StringColumn:
    """How a string column is stored: Enum with its lowered categories (index = physical code), or String."""

    lowered_categories: pl.Series | None = None
    lowercase: bool = False  # a plain String column whose values are all lowercase already (Enum: the categories)
    # The Enum's categories as written (index = code). Kept here because reading `series.dtype` of an Enum builds a
    # dtype object that re-validates every category: seconds for millions of them.
    categories: pl.Series | None = field(default=None, compare=False)
    # (operator, value) -> CodeMatch: the category scan is done once per predicate, not per request
    memo: dict[tuple[str, Any], Any] = field(default_factory=dict, compare=False)


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


SMALL_CODE_SET = 8  # up to this many matched (or unmatched) codes: `is_in` on the code column; more: a lookup table
LOOKUP_CHUNK = 1 << 20  # rows per numpy take task (the pool's threads release the GIL)


@dataclass(frozen=True)
class CodeMatch:
    """Which codes of an Enum column a string predicate matches, in the cheapest form to test rows with.

    kind: `none` (no row), `present` (every row with a value), `range` / `outside` (codes low..high inclusive, or
    every other present code), `codes` / `not_codes` (a few codes, or every present code but a few), `lookup`
    (a boolean per code, gathered by the rows' codes).
    """

    kind: str
    low: int = 0
    high: int = 0
    codes: tuple[int, ...] = ()
    lookup: np.ndarray | None = field(default=None, compare=False)


def classify_matches(matches: np.ndarray) -> CodeMatch:
    """The cheapest row test for a boolean per category (True = the predicate holds for that category)."""
    total = int(matches.size)
    hits = int(np.count_nonzero(matches))
    if hits == 0:
        return CodeMatch("none")
    if hits == total:
        return CodeMatch("present")
    positions = np.flatnonzero(matches)
    low, high = int(positions[0]), int(positions[-1])
    if high - low + 1 == hits:
        return CodeMatch("range", low=low, high=high)
    if hits <= SMALL_CODE_SET:
        return CodeMatch("codes", codes=tuple(int(p) for p in positions))
    misses = np.flatnonzero(~matches)
    miss_low, miss_high = int(misses[0]), int(misses[-1])
    if miss_high - miss_low + 1 == misses.size:
        return CodeMatch("outside", low=miss_low, high=miss_high)
    if misses.size <= SMALL_CODE_SET:
        return CodeMatch("not_codes", codes=tuple(int(p) for p in misses))
    return CodeMatch("lookup", lookup=np.ascontiguousarray(matches, dtype=np.bool_))


def match_codes(info: StringColumn, operator: str, value: Any) -> CodeMatch:
    """The predicate over the column's (lowered) categories, evaluated once per (operator, value) and kept."""
    key = (operator, value)
    found = info.memo.get(key)
    if found is None:
        categories = info.lowered_categories
        assert categories is not None
        matched = pl.select(_string_predicate(pl.lit(categories), operator, value)).to_series().fill_null(False)
        found = classify_matches(matched.to_numpy())
        if len(info.memo) > 512:
            info.memo.clear()
        info.memo[key] = found
    return found  # type: ignore[return-value]


def _code_match_expr(column: pl.Expr, match: CodeMatch) -> pl.Expr:
    """Rows whose code the match accepts (null where the value is missing: the caller fills false)."""
    physical = column.to_physical()
    if match.kind == "none":
        return pl.lit(False)
    if match.kind == "present":
        return physical.is_not_null()
    if match.kind in ("range", "outside"):
        inside = physical == match.low if match.low == match.high else physical.is_between(match.low, match.high)
        return inside if match.kind == "range" else ~inside
    codes = pl.Series(match.codes, dtype=pl.UInt32).implode()
    if match.kind == "codes":
        return physical.is_in(codes)
    if match.kind == "not_codes":
        return pl.when(physical.is_not_null()).then(~physical.is_in(codes))
    raise ValueError(f"a {match.kind} match is evaluated on the codes, not as an expression")


def _string_condition(cond: Condition, info: StringColumn) -> pl.Expr:
    column = pl.col(cond.field.column)
    if info.lowered_categories is not None:
        # The predicate runs over the categories; rows are then matched by code. Nulls stay null.
        match = match_codes(info, cond.operator, cond.value)
        if match.kind == "lookup":
            lookup = pl.Series(match.lookup, dtype=pl.Boolean)
            return pl.lit(lookup).gather(column.to_physical().fill_null(0)) & column.is_not_null()
        return _code_match_expr(column, match)
    values = column if info.lowercase else column.str.to_lowercase()
    return _string_predicate(values, cond.operator, cond.value)


# --- lookups on the codes with numpy (both cores) ----------------------------------------------------------------
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            workers = int(os.environ.get("P360_BUILDER_THREADS", "0")) or min(4, os.cpu_count() or 2)
            _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="builder-leaf")
        return _pool


_batch_pool: ThreadPoolExecutor | None = None


def _batch_executor() -> ThreadPoolExecutor:
    """Runs a tree's polars expression batch beside the numpy lookups (polars releases the GIL)."""
    global _batch_pool
    with _pool_lock:
        if _batch_pool is None:
            _batch_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="builder-batch")
        return _batch_pool


def _raw_codes(series: pl.Series) -> np.ndarray:
    """The physical codes of an Enum column as a zero-copy numpy view (values under nulls are arbitrary)."""
    physical = series.to_physical()
    if physical.n_chunks() > 1:
        physical = physical.rechunk()
    array = physical.to_arrow()
    dtype = np.dtype(array.type.to_pandas_dtype())
    return np.frombuffer(array.buffers()[1], dtype=dtype)[array.offset : array.offset + len(array)]


def lookup_mask(series: pl.Series, lookup: np.ndarray) -> pl.Series:
    """Rows whose code the per-category lookup accepts; rows without a value are false."""
    codes = _raw_codes(series)
    out = np.empty(codes.size, dtype=np.bool_)
    pool = _executor()
    tasks = [
        pool.submit(np.take, lookup, codes[i : i + LOOKUP_CHUNK], None, out[i : i + LOOKUP_CHUNK], "clip")
        for i in range(0, codes.size, LOOKUP_CHUNK)
    ]
    for task in tasks:
        task.result()
    mask = pl.Series(out)
    return mask & series.is_not_null() if series.null_count() else mask


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


class LeafMemo:
    """Leaf masks kept across the edits of one session: keyed by the leaf (field, operator, value), bounded in bytes.

    Kept per cache entry, so per data generation: an import or a new Bombora week starts an empty memo.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self._masks: OrderedDict[Hashable, pl.Series] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> pl.Series | None:
        with self._lock:
            mask = self._masks.get(key)
            if mask is None:
                self.misses += 1
                return None
            self._masks.move_to_end(key)
            self.hits += 1
            return mask

    def put(self, key: Hashable, mask: pl.Series) -> None:
        size = int(mask.estimated_size())
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._masks.pop(key, None)
            if old is not None:
                self.bytes -= int(old.estimated_size())
            self._masks[key] = mask
            self.bytes += size
            while self.bytes > self.max_bytes and self._masks:
                _, dropped = self._masks.popitem(last=False)
                self.bytes -= int(dropped.estimated_size())

    def clear(self) -> None:
        with self._lock:
            self._masks.clear()
            self.bytes = 0

    def __len__(self) -> int:
        return len(self._masks)

    def series(self) -> list[pl.Series]:
        with self._lock:
            return list(self._masks.values())


def leaf_key(cond: Condition) -> Hashable | None:
    """The memo key of a leaf: what it reads and tests (None: not memoised).

    Audience membership is not memoised: a built audience's members change with its materialisation, not with the
    data generation (and the membership columns are cached already). Nor are event-segment leaves (`segment`):
    their members change with every event; audiences/logic/membership.py memoises them per membership version.
    """
    ref = cond.field
    if ref.type in (AUDIENCE, MEMBERSHIP):
        return None
    return (ref.type, ref.column, ref.measure, ref.custom_type, cond.operator, cond.value)


def _lookup_leaf(frame: pl.DataFrame, cond: Condition, strings: Mapping[str, StringColumn]) -> np.ndarray | None:
    """The per-category lookup of a string leaf whose match is no range or small set (else None)."""
    ref = cond.field
    if ref.type not in STRING_TYPES or cond.operator in ("is_null", "is_not_null"):
        return None
    info = strings.get(ref.column)
    if info is None or info.lowered_categories is None:  # the cache's Enum columns (never ask the frame's schema)
        return None
    match = match_codes(info, cond.operator, cond.value)
    return match.lookup if match.kind == "lookup" else None


class ColumnTypes(Mapping[str, pl.DataType]):
    """A frame's column types, read one column at a time when asked.

    `frame.schema` builds every column's dtype object, and an `Enum` dtype validates its categories (a hash of
    every category: about 0.1 s for two million company names) each time: far too slow for every preview.
    """

    def __init__(self, frame: pl.DataFrame) -> None:
        self._frame = frame
        self._types: dict[str, pl.DataType] = {}

    def __getitem__(self, name: str) -> pl.DataType:
        if name not in self._types:
            self._types[name] = self._frame.get_column(name).dtype
        return self._types[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._frame.columns)

    def __len__(self) -> int:
        return self._frame.width


def leaf_masks(frame: pl.DataFrame, leaves: list[Condition], strings: Mapping[str, StringColumn]) -> list[pl.Series]:
    """One mask (Boolean, no nulls) per leaf: lookups run on numpy threads while polars evaluates the rest."""
    schema = ColumnTypes(frame)
    lookups: dict[int, np.ndarray] = {}
    exprs: list[pl.Expr] = []
    names: list[str] = []
    for index, leaf in enumerate(leaves):
        lookup = _lookup_leaf(frame, leaf, strings)
        if lookup is not None:
            lookups[index] = lookup
        else:
            names.append(f"__leaf{index}")
            exprs.append(condition_expr(leaf, schema, strings).alias(names[-1]))
    # with_columns (not select) so that constant leaves broadcast to the frame's height; polars runs them in parallel
    # on its own threads, started first so that the numpy lookups (chunks on the leaf pool) overlap with them.
    batch: Future[pl.DataFrame] | None = None
    if exprs:
        batch = _batch_executor().submit(lambda: frame.with_columns(exprs).select(names))
    looked_up = {index: lookup_mask(frame.get_column(leaves[index].field.column), t) for index, t in lookups.items()}
    computed = batch.result() if batch is not None else None
    return [
        looked_up[index] if index in looked_up else computed.get_column(f"__leaf{index}")  # type: ignore[union-attr]
        for index in range(len(leaves))
    ]


def evaluate(
    frame: pl.DataFrame,
    node: Node,
    strings: Mapping[str, StringColumn],
    *,
    per_node: bool = True,
    memo: LeafMemo | None = None,
) -> Evaluation:
    """The tree's mask over `frame`, its count, and per node {count, running} (see the preview API).

    With `memo`, leaves evaluated before over the same data (an earlier edit of the tree) are reused.
    """
    leaves = conditions(node)
    masks_by_key: dict[Hashable, pl.Series] = {}
    pending: list[Condition] = []
    pending_keys: list[Hashable] = []
    for leaf in leaves:
        key = leaf_key(leaf)
        if key is None:
            key = ("__path", leaf.path)  # evaluated every time
        elif key in masks_by_key or key in pending_keys:
            continue
        elif memo is not None and (hit := memo.get(key)) is not None:
            masks_by_key[key] = hit
            continue
        pending.append(leaf)
        pending_keys.append(key)
    for key, mask, leaf in zip(pending_keys, leaf_masks(frame, pending, strings), pending, strict=True):
        masks_by_key[key] = mask
        if memo is not None and leaf_key(leaf) is not None:
            memo.put(key, mask)
    leaf_mask_by_path = {
        leaf.path: masks_by_key[leaf_key(leaf) if leaf_key(leaf) is not None else ("__path", leaf.path)]
        for leaf in leaves
    }
    nodes: dict[str, dict[str, int]] = {}
    mask = _combine(node, leaf_mask_by_path, nodes if per_node else None)
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
