"""Evaluate a validated tree over a polars frame of the universe (previews).

The frame has one row per person and one column per field the tree uses (named by `FieldRef.column`):
canonical fields, `custom.<key>`, `bombora:<topic id>` (score or null) and `audience:<id>` (membership, never
null). String columns are either `pl.Enum` (most: the predicate is evaluated once over the categories, then the
rows are matched by their physical code) or plain `String` (near-unique identifiers such as emails).

How a string predicate tests rows (issue 17): the cache sorts each Enum's categories by their lowercase form, so
`eq`, `in` and `starts_with` match one or a few contiguous code ranges (a compare on the narrow code column); a
match that is no range and not a handful of codes (`contains "9"` over two million company names) becomes a boolean
lookup table over the categories, gathered by code. Leaf masks can be memoised across the edits of one session
(`LeafMemo`, kept per cache entry, i.e. per data generation).

How a tree is evaluated (issue 17, session 7): every mask is packed bits (`bits.py`: 1.25 MB per 10M people). Code
ranges, code sets and per-category lookups run as numpy kernels over the Enum codes' Arrow buffer, in row slices shared by the
leaf pool's threads (numpy releases the GIL); null tests and predicates true for no or every category are the
column's validity bitmap; the rest (numbers, dates, booleans, plain strings, audiences, segments) is one polars
expression batch beside them. AND/OR/NOT and every per-node count are then word operations (popcounts).

Semantics (CONTRACT "Audience logic trees"): a condition on a missing value is false except `is_null`; strings
compare case-insensitively; `between` is inclusive; `not` negates its child, so it includes unknowns.
"""

from __future__ import annotations

import math
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import reduce
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from audiences.logic import bits
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
    # Row indexes built on first use (issue 17, session 10): "bitmaps" -> CategoryBitmaps (few categories)
    index: dict[str, Any] = field(default_factory=dict, compare=False)


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
    # the lookup as an Arrow array of a byte per category (zero-copy over `lookup`), gathered by the rows' codes
    table: pa.Array | None = field(default=None, compare=False)


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
    lookup = np.ascontiguousarray(matches, dtype=np.bool_)
    return CodeMatch("lookup", lookup=lookup, table=pa.array(lookup.view(np.uint8)))


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


# --- the leaf pool (numpy kernels on row slices) and the polars batch's thread ----------------------------------------------------------------
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
    bits: np.ndarray  # the tree's mask, packed (audiences/logic/bits.py); read only
    height: int
    count: int
    nodes: dict[str, dict[str, int]]

    @property
    def mask(self) -> pl.Series:
        """The mask as a polars Boolean series (zero-copy over `bits`)."""
        return bits.to_series(self.bits, self.height)


class LeafMemo:
    """Leaf masks kept across the edits of one session: keyed by the leaf (field, operator, value), bounded in bytes.

    Kept per cache entry, so per data generation: an import or a new Bombora week starts an empty memo.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self._masks: OrderedDict[Hashable, Any] = OrderedDict()  # packed words (bits.py); a Series is sized too
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any:
        with self._lock:
            mask = self._masks.get(key)
            if mask is None:
                self.misses += 1
                return None
            self._masks.move_to_end(key)
            self.hits += 1
            return mask

    def put(self, key: Hashable, mask: Any) -> None:
        size = _nbytes(mask)
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._masks.pop(key, None)
            if old is not None:
                self.bytes -= _nbytes(old)
            self._masks[key] = mask
            self.bytes += size
            while self.bytes > self.max_bytes and self._masks:
                _, dropped = self._masks.popitem(last=False)
                self.bytes -= _nbytes(dropped)

    def clear(self) -> None:
        with self._lock:
            self._masks.clear()
            self.bytes = 0

    def __len__(self) -> int:
        return len(self._masks)

    def series(self) -> list[pl.Series]:
        """The memoised masks as series (words as zero-copy UInt64 series: their size is the words' bytes)."""
        with self._lock:
            masks = list(self._masks.values())
        return [m if isinstance(m, pl.Series) else pl.Series(m) for m in masks]


def _nbytes(mask: Any) -> int:
    return int(mask.nbytes) if isinstance(mask, np.ndarray) else int(mask.estimated_size())


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


def _code_kernel(values: np.ndarray, match: CodeMatch, top: int = -1) -> tuple[bits.Test, bool] | None:
    """The row test of a code match on the codes (and whether it is negated); None for `none` / `present`.

    Measured at 10M rows (CPU, load ~8, session 9): a range on u32 codes 8.8 ms here against 13.8 ms for polars'
    `is_between` (u8: 2.0 against 4.1), and polars' `is_in` on codes is slower than numpy's equalities on
    cache-sized slices. Session 11 (polars 2.1): a two-sided range costs the same either way (u32 3.2 ms), but a
    single comparison is polars' whole-column compare (_compare_leaf), and a lookup Arrow's take (_take_test)."""
    kind = match.kind
    if kind in ("range", "outside"):
        # unsigned codes: low <= c <= high is one subtract (wrapping below low) and one compare
        low, width = values.dtype.type(match.low), values.dtype.type(match.high - match.low)
        test: bits.Test = (lambda x: x <= width) if match.low == 0 else (lambda x: (x - low) <= width)
        if match.low == match.high:  # one code (`eq`, `neq`): one compare, no subtract (u16 at 10M: 1.1 vs 1.6 ms)
            test = lambda x: x == low  # noqa: E731
        return test, kind == "outside"
    if kind in ("codes", "not_codes"):
        codes = [values.dtype.type(c) for c in match.codes]

        def any_code(x: np.ndarray) -> np.ndarray:
            hit = x == codes[0]
            for code in codes[1:]:
                hit |= x == code
            return hit

        return any_code, kind == "not_codes"
    if kind == "lookup":
        assert match.table is not None
        table = match.table
        if top < 0 or top >= len(table):  # a code under a null past the categories: clipped (a pass more)
            last = values.dtype.type(len(table) - 1)
            return (lambda x: _take_test(table, np.minimum(x, last))), False
        return (lambda x: _take_test(table, x)), False
    return None


def _take_test(table: pa.Array, codes: np.ndarray) -> np.ndarray:
    """`table[codes]` as a bool per code: Arrow's take of a byte per category, indexed by the codes as they are.

    Session 11, measured at 10M rows on one thread (CPU): over 2M categories (u32 codes) 14.5 ms against 17.1 for
    session 7's packed bitset and 14.4 for numpy's take of the bool table (numpy converts the codes to intp first:
    a pass of 4.4 ms of its own); over 400k categories 10.1 against 12.3; 5,000 (u16) 4.4 against 10.4; 60 (u8) 4.1
    against 9.4. The caller guarantees every code is inside the table (no bounds check: it is a pass of its own)."""
    taken = pc.take(table, pa.array(codes), boundscheck=False)
    return np.frombuffer(taken.buffers()[1], dtype=np.uint8, count=codes.size).view(np.bool_)


@dataclass
class MaxCode:
    """The largest code in an Enum column's buffer (codes under nulls are arbitrary: a lookup cannot assume them
    inside the categories), computed once per buffer (a pass: ~2 ms at 10M) and kept in `StringColumn.index`."""

    codes: np.ndarray  # held, so the buffer's address names the column (_same_column)
    top: int


def _max_code(info: StringColumn, codes: np.ndarray) -> int:
    found = _same_column(info.index.get("max_code"), codes)
    if found is None:
        found = MaxCode(codes=codes, top=int(codes.max()) if codes.size else 0)
        info.index["max_code"] = found
    return found.top  # type: ignore[no-any-return]


INTEGER_LIMITS: dict[Any, tuple[int, int]] = {
    pl.Int8: (-(2**7), 2**7 - 1),
    pl.Int16: (-(2**15), 2**15 - 1),
    pl.Int32: (-(2**31), 2**31 - 1),
    pl.Int64: (-(2**63), 2**63 - 1),
    pl.UInt8: (0, 2**8 - 1),
    pl.UInt16: (0, 2**16 - 1),
    pl.UInt32: (0, 2**32 - 1),
    pl.UInt64: (0, 2**64 - 1),
}
INTEGER_OPERATORS = frozenset({"gt", "gte", "lt", "lte", "between"})


def integer_bounds(operator: str, value: Any) -> tuple[int | None, int | None]:
    """An ordered condition on an integer column as inclusive integer bounds (None: unbounded on that side); a
    fractional value rounds inwards (`gt 2.5` is `gte 3`, as SQL and Python compare an integer with it)."""
    if operator == "between":
        return math.ceil(value[0]), math.floor(value[1])
    if operator == "gte":
        return math.ceil(value), None
    if operator == "gt":
        return math.floor(value) + 1, None
    if operator == "lte":
        return None, math.floor(value)
    return None, math.ceil(value) - 1  # lt


def _integer_kernel(frame: pl.DataFrame, cond: Condition, schema: Mapping[str, pl.DataType]) -> bits.Kernel | None:
    """An ordered condition on an integer column (numbers, Bombora scores and measures) as a numpy kernel (None:
    another leaf). Measured at 10M rows, CPU on one thread: `between` 3.5 / 3.3 / 5.3 ms on u8 / i16 / i32 against
    5.5 / 6.5 / 10.6 for polars' two compares and AND; `gte` 2.5 / 4.2 ms on i16 / i32 against 3.5 / 4.9. On u8
    polars' `gte` is as fast (2.3 against 2.5 ms), but a tree whose every leaf is a kernel skips the polars batch
    (its frame, plan and thread hand-off) altogether."""
    if cond.operator not in INTEGER_OPERATORS or cond.field.type in STRING_TYPES:
        return None
    if cond.field.type in (AUDIENCE, MEMBERSHIP, BOOLEAN):
        return None
    dtype = schema[cond.field.column]
    limits = INTEGER_LIMITS.get(type(dtype))
    if limits is None:
        return None
    values, valid = bits.column(frame.get_column(cond.field.column))
    low, high = integer_bounds(cond.operator, cond.value)
    low = limits[0] if low is None else max(low, limits[0])
    high = limits[1] if high is None else min(high, limits[1])
    if low > high:  # no integer of the column's type qualifies
        return bits.Kernel(values=values, test=lambda x: np.zeros(x.size, dtype=np.bool_), valid=valid)
    kind = values.dtype.type
    test: bits.Test
    if low == limits[0]:
        top = kind(high)
        test = lambda x: x <= top  # noqa: E731
    elif high == limits[1]:
        bottom = kind(low)
        test = lambda x: x >= bottom  # noqa: E731
    else:  # low <= x <= high as one unsigned subtract (wrapping below low) and one compare
        unsigned = np.dtype(f"u{values.dtype.itemsize}").type
        start, width = unsigned(low % (1 << (8 * values.dtype.itemsize))), unsigned(high - low)
        values = values.view(unsigned)
        test = lambda x: (x - start) <= width  # noqa: E731
    return bits.Kernel(values=values, test=test, valid=valid)


Compare = Callable[[], bits.Words]  # a leaf computed over the whole column at once, on the leaf pool


def _compare_leaf(
    frame: pl.DataFrame, cond: Condition, strings: Mapping[str, StringColumn], schema: Mapping[str, pl.DataType]
) -> Compare | None:
    """A leaf that is one comparison with a constant, as polars' own compare of the whole column (None: another
    leaf): a code range of an Enum that is one code (`eq`, `neq`) or reaches its first or last code (`starts_with
    "1"` over postal codes sorted from "10000"), and an integer `gt`/`gte`/`lt`/`lte`.

    Session 11: polars writes the compare's bitmap in one SIMD pass (and releases the GIL), where a numpy kernel
    writes a bool per row and packs it. Measured at 10M rows on one thread (CPU): u8 `eq` 0.34 ms against 0.93,
    u16 `neq` 0.69 against 1.67, u32 `<=` 1.44 against 3.2 (a two-sided range is no faster in polars: 2.3 against
    2.1 on u16, so ranges stay kernels). Missing values are null in the compare and cleared by bits.from_series."""
    ref = cond.field
    if cond.operator in ("is_null", "is_not_null") or ref.type in (AUDIENCE, MEMBERSHIP, BOOLEAN):
        return None
    if ref.type in STRING_TYPES:
        info = strings.get(ref.column)
        if info is None or info.lowered_categories is None:
            return None
        match = match_codes(info, cond.operator, cond.value)
        if match.kind not in ("range", "outside"):
            return None
        last = info.lowered_categories.len() - 1
        codes = frame.get_column(ref.column).to_physical()
        low, high, inside = match.low, match.high, match.kind == "range"
        if low == high:
            return _compared(codes, "eq" if inside else "neq", low)
        if low == 0:
            return _compared(codes, "lte" if inside else "gt", high)
        if high == last:
            return _compared(codes, "gte" if inside else "lt", low)
        return None
    if cond.operator not in INTEGER_OPERATORS or cond.operator == "between":
        return None
    limits = INTEGER_LIMITS.get(type(schema[ref.column]))
    if limits is None:
        return None
    low_bound, high_bound = integer_bounds(cond.operator, cond.value)
    column = frame.get_column(ref.column)
    if high_bound is not None:  # lt / lte
        if high_bound < limits[0]:
            return None  # no value of the type qualifies: the kernel's empty test
        return _compared(column, "lte", min(high_bound, limits[1]))
    assert low_bound is not None
    if low_bound > limits[1]:
        return None
    return _compared(column, "gte", max(low_bound, limits[0]))


def _compared(series: pl.Series, operator: str, value: int) -> Compare:
    def run() -> bits.Words:
        if operator == "eq":
            hit = series == value
        elif operator == "neq":
            hit = series != value
        elif operator == "lte":
            hit = series <= value
        elif operator == "gte":
            hit = series >= value
        elif operator == "lt":
            hit = series < value
        else:
            hit = series > value
        return bits.from_series(hit)

    return run


def _kernel(frame: pl.DataFrame, cond: Condition, strings: Mapping[str, StringColumn]) -> bits.Kernel | None:
    """An Enum string leaf (a code range, its outside, a few codes, all but a few, or a per-category lookup) as a
    numpy kernel on the physical codes (None: another leaf). Missing values are cleared with the column's validity
    after the test."""
    ref = cond.field
    if ref.type not in STRING_TYPES or cond.operator in ("is_null", "is_not_null"):
        return None
    info = strings.get(ref.column)
    if info is None or info.lowered_categories is None:  # the cache's Enum columns (never ask the frame's schema)
        return None
    match = match_codes(info, cond.operator, cond.value)
    if match.kind in ("none", "present"):
        return None
    values, valid = bits.column(frame.get_column(ref.column), enum=True)
    found = _code_kernel(values, match, _max_code(info, values) if match.kind == "lookup" else -1)
    if found is None:
        return None
    test, negate = found
    return bits.Kernel(values=values, test=test, valid=valid, negate=negate)


# --- per-category bitmaps of low-cardinality Enum columns (issue 17, session 10) ---------------------------------
BITMAP_MAX_CATEGORIES = (
    32  # Enum columns with at most this many categories keep a packed mask per category (32: 4 bytes per row)
)
_index_lock = threading.Lock()


@dataclass
class CategoryBitmaps:
    """A packed mask per category of an Enum column (bit i of mask c: row i's code is c), built once per entry.

    A leaf on the column is then an OR of the masks of the matched codes, or of the unmatched ones subtracted from
    the rows with a value, whichever are fewer (at most half the categories): `country in [5 of 15]` reads five
    1.25 MB masks at 10M people instead of comparing 10M codes five times and packing the result."""

    codes: np.ndarray  # the codes the masks were built from: held, so the buffer's address names the column
    masks: list[bits.Words]
    valid: bits.Words  # the rows with a value

    def nbytes(self) -> int:
        return int(sum(m.nbytes for m in self.masks) + self.valid.nbytes)

    def union(self, matched: np.ndarray) -> bits.Words:
        """The rows whose code is matched (a bool per category); new words (the caller may keep or memoise them)."""
        selected = np.flatnonzero(matched)
        others = np.flatnonzero(~matched)
        if selected.size <= others.size:
            return _or_masks(self.masks, selected, self.valid.size)
        out = _or_masks(self.masks, others, self.valid.size)
        np.invert(out, out=out)
        out &= self.valid  # (clears the bits past the last row too: they are clear in `valid`)
        return out


def _or_masks(masks: list[bits.Words], which: np.ndarray, size: int) -> bits.Words:
    if which.size == 0:
        return np.zeros(size, dtype=np.uint64)
    out = masks[int(which[0])].copy()
    for code in which[1:]:
        np.bitwise_or(out, masks[int(code)], out=out)
    return out


def category_bitmaps(series: pl.Series, info: StringColumn) -> CategoryBitmaps | None:
    """The column's per-category masks (None: too many categories), built on first use (a kernel per category on
    the leaf pool: ~0.2 s for 60 categories over 10M rows) and kept in `info.index` while the column is the same."""
    categories = info.lowered_categories
    if categories is None or not 0 < categories.len() <= BITMAP_MAX_CATEGORIES:
        return None
    values, valid = bits.column(series, enum=True)
    found = _same_column(info.index.get("bitmaps"), values)
    if found is not None:
        return found
    with _index_lock:  # concurrent first previews build it once
        found = _same_column(info.index.get("bitmaps"), values)
        if found is None:
            n = values.size
            kernels = [bits.Kernel(values=values, test=_equals(values.dtype.type(c))) for c in range(categories.len())]
            masks = bits.run_kernels(kernels, n, _executor(), _threads())
            found = CategoryBitmaps(codes=values, masks=masks, valid=bits.ones(n) if valid is None else valid)
            if valid is not None:
                for mask in masks:
                    mask &= valid  # (codes under nulls are arbitrary)
            info.index["bitmaps"] = found
    return found


def _same_column(found: Any, values: np.ndarray) -> Any:
    """`found` (an index) if it was built from this very buffer of values (another frame: None)."""
    if found is None or found.codes.size != values.size or found.codes.dtype != values.dtype:
        return None
    return found if found.codes.ctypes.data == values.ctypes.data else None


def _equals(code: Any) -> bits.Test:
    return lambda x: x == code


def index_nbytes(strings: Mapping[str, StringColumn], indexes: Mapping[str, Any] | None = None) -> int:
    """Bytes of the row indexes kept with the columns (the cache counts them in its entry's size)."""
    # (lists: a background thread may add an index meanwhile)
    masks = sum(found.nbytes() for info in list(strings.values()) if (found := info.index.get("bitmaps")) is not None)
    return int(masks + sum(index.nbytes() for index in list((indexes or {}).values())))


def matched_categories(match: CodeMatch, size: int) -> np.ndarray:
    """A code match as a bool per category."""
    if match.kind == "lookup":
        assert match.lookup is not None
        return match.lookup
    inside = match.kind in ("range", "codes", "none")
    matched = np.zeros(size, dtype=np.bool_) if inside else np.ones(size, dtype=np.bool_)
    if match.kind in ("range", "outside"):
        matched[match.low : match.high + 1] = inside
    elif match.kind in ("codes", "not_codes"):
        matched[list(match.codes)] = inside
    return matched


def _bitmap_leaf(frame: pl.DataFrame, cond: Condition, strings: Mapping[str, StringColumn]) -> bits.Words | None:
    """A string leaf on a column with per-category masks, as their union (None: another leaf)."""
    ref = cond.field
    if ref.type not in STRING_TYPES or cond.operator in ("is_null", "is_not_null"):
        return None
    info = strings.get(ref.column)
    if info is None or info.lowered_categories is None or info.lowered_categories.len() > BITMAP_MAX_CATEGORIES:
        return None
    match = match_codes(info, cond.operator, cond.value)
    if match.kind in ("none", "present"):  # the validity (_direct)
        return None
    index = category_bitmaps(frame.get_column(ref.column), info)
    if index is None:
        return None
    return index.union(matched_categories(match, len(index.masks)))


# --- sorted row indexes of integer columns (issue 17, session 10) -------------------------------------------------
SORTED_MAX_SHARE = 1 / 128  # a range leaf reads the index when its smaller side (matches or misses) is this few rows


@dataclass
class SortedIndex:
    """An integer column's present values sorted, with their rows: a range is then two binary searches, and its
    rows (or, when fewer, the other present rows) are set as bits. Cost ∝ min(matches, non-matches): `revenue gte
    1M` (0.05 % of 10M people below it) sets ~5k bits instead of comparing 10M values. Wider ranges stay kernels."""

    values: np.ndarray  # the present values, ascending
    rows: np.ndarray  # their rows (uint32), in the same order
    codes: np.ndarray  # the column's values as indexed: held, so the buffer's address names the column
    valid: bits.Words

    def nbytes(self) -> int:
        return int(self.values.nbytes + self.rows.nbytes + self.valid.nbytes)

    def between(self, low: int, high: int, n: int) -> bits.Words | None:
        """The rows with low <= value <= high (None: both sides too many rows; a kernel scans faster)."""
        # bounds in the values' own type (the caller clamps them to it): a Python int needle made numpy convert all
        # 10M values to int64 first (30 ms)
        kind = self.values.dtype.type
        start = int(np.searchsorted(self.values, kind(low), side="left"))
        end = int(np.searchsorted(self.values, kind(high), side="right"))
        inside = max(0, end - start)
        outside = self.values.size - inside
        if min(inside, outside) > n * SORTED_MAX_SHARE:
            return None
        if inside <= outside:
            return set_rows(self.rows[start:end] if inside else self.rows[:0], n)
        out = set_rows(np.concatenate([self.rows[:start], self.rows[max(start, end) :]]), n)
        np.invert(out, out=out)
        out &= self.valid  # (the nulls, and the bits past the last row)
        return out


def set_rows(rows: np.ndarray, n: int) -> bits.Words:
    """Words with the bits of `rows` (any order, repeats harmless) set: one unbuffered OR per row (numpy 2's
    `ufunc.at` fast path). Session 11: 68k rows at 10M people 0.62 ms CPU against 2.1 ms for session 10's sort and
    one OR per word (reduceat)."""
    out = np.zeros(bits.words_for(n), dtype=np.uint64)
    if not rows.size:
        return out
    np.bitwise_or.at(out, rows >> 6, np.left_shift(np.uint64(1), (rows & 63).astype(np.uint64)))
    return out


def sorted_index(series: pl.Series) -> SortedIndex | None:
    """The index of an integer column (None: not integer, or no rows). Built off the request path (cache.Entry
    .warm_indexes, after a build or a load): polars' parallel arg_sort, about a second at 10M."""
    if not series.dtype.is_integer() or series.len() == 0 or series.len() >= 2**32:
        return None
    codes, valid = bits.column(series)
    order = series.arg_sort(nulls_last=True).head(series.len() - series.null_count())
    rows = order.cast(pl.UInt32).to_numpy()
    return SortedIndex(
        values=codes[rows], rows=rows, codes=codes, valid=bits.ones(series.len()) if valid is None else valid
    )


def _sorted_leaf(
    frame: pl.DataFrame, cond: Condition, schema: Mapping[str, pl.DataType], indexes: Mapping[str, Any]
) -> bits.Words | None:
    """An integer range leaf through the column's SortedIndex when its smaller side is few rows (None: another leaf)."""
    index = indexes.get(cond.field.column)
    if index is None or cond.operator not in INTEGER_OPERATORS or cond.field.type in STRING_TYPES:
        return None
    if cond.field.type in (AUDIENCE, MEMBERSHIP, BOOLEAN):
        return None
    values, _ = bits.column(frame.get_column(cond.field.column))
    if _same_column(index, values) is None:
        return None
    limits = INTEGER_LIMITS.get(type(schema[cond.field.column]))
    if limits is None:
        return None
    low, high = integer_bounds(cond.operator, cond.value)
    low = limits[0] if low is None else max(low, limits[0])
    high = limits[1] if high is None else min(high, limits[1])
    if low > high:
        return bits.zeros(frame.height)
    return index.between(low, high, frame.height)  # type: ignore[no-any-return]


def _direct(frame: pl.DataFrame, cond: Condition, strings: Mapping[str, StringColumn]) -> bits.Words | None:
    """A leaf that is the column's validity (or nothing): `is_null` / `is_not_null`, and a string predicate that
    holds for no category or for every one (`ends_with ".com"` when every domain is a .com). None: another leaf."""
    ref = cond.field
    if ref.type in (AUDIENCE, MEMBERSHIP):
        return None
    n = frame.height
    if cond.operator in ("is_null", "is_not_null"):
        kind = cond.operator
    elif ref.type in STRING_TYPES and (info := strings.get(ref.column)) and info.lowered_categories is not None:
        kind = match_codes(info, cond.operator, cond.value).kind
        if kind == "none":
            return bits.zeros(n)
        if kind != "present":
            return None
    else:
        return None
    valid = bits.validity(frame.get_column(ref.column))
    present = bits.ones(n) if valid is None else valid
    return bits.invert(present, n) if kind == "is_null" else present


def _plan_column(frame: pl.DataFrame, name: str, strings: Mapping[str, StringColumn]) -> pl.Series:
    """A column for the polars batch: an Enum's physical codes (its leaves test codes only, and a plan over the
    Enum itself would build its dtype: hashing every category, slow for hundreds of thousands of them)."""
    series = frame.get_column(name)
    info = strings.get(name)
    return series.to_physical() if info is not None and info.lowered_categories is not None else series


def _columns_read(cond: Condition) -> list[str]:
    """The frame columns a leaf's polars expression reads."""
    ref = cond.field
    if ref.type == AUDIENCE:
        return [audience_column(a) for a in cond.value]
    if ref.type == MEMBERSHIP:
        from audiences.logic.membership import column_name

        return [column_name(ref.column, cond.value)]
    return [ref.column]


def _threads() -> int:
    workers = int(os.environ.get("P360_BUILDER_THREADS", "0")) or min(4, os.cpu_count() or 2)
    return max(1, min(workers, os.cpu_count() or 1))


def leaf_bits(
    frame: pl.DataFrame,
    leaves: list[Condition],
    strings: Mapping[str, StringColumn],
    indexes: Mapping[str, Any] | None = None,
) -> list[bits.Words]:
    """One packed mask per leaf (a missing value false except for is_null). `indexes`: SortedIndex per integer
    column (the cache entry's), used by selective range leaves.

    numpy kernels (codes, integers) run in row slices on the leaf pool while polars evaluates the other leaves as one
    expression batch on its own threads; null tests read the columns' validity bitmaps.
    """
    schema = ColumnTypes(frame)
    n = frame.height
    kernels: dict[int, bits.Kernel] = {}
    compares: dict[int, Compare] = {}
    direct: dict[int, bits.Words] = {}
    exprs: list[pl.Expr] = []
    names: dict[int, str] = {}
    for index, leaf in enumerate(leaves):
        if (
            (words := _direct(frame, leaf, strings)) is not None
            or (words := _bitmap_leaf(frame, leaf, strings)) is not None
            or (indexes and (words := _sorted_leaf(frame, leaf, schema, indexes)) is not None)
        ):
            direct[index] = words
        elif (compare := _compare_leaf(frame, leaf, strings, schema)) is not None:
            compares[index] = compare
        elif (kernel := _kernel(frame, leaf, strings) or _integer_kernel(frame, leaf, schema)) is not None:
            kernels[index] = kernel
        else:
            names[index] = f"__leaf{index}"
            exprs.append(condition_expr(leaf, schema, strings).alias(names[index]))
    # with_columns (not select) so that constant leaves broadcast to the frame's height
    batch: Future[pl.DataFrame] | None = None
    if exprs:
        # over the columns these leaves read only: a plan over an Enum of millions of categories builds its dtype
        read = list(dict.fromkeys(c for index in names for c in _columns_read(leaves[index]) if c in frame.columns))
        narrow = pl.DataFrame([_plan_column(frame, c, strings) for c in read]) if read else frame
        batch = _batch_executor().submit(lambda: narrow.with_columns(exprs).select(list(names.values())))
    # whole-column compares on the leaf pool (polars releases the GIL), queued before the kernels' row slices
    compared = {index: _executor().submit(compare) for index, compare in compares.items()}
    computed = bits.run_kernels(list(kernels.values()), n, _executor(), _threads())
    by_index = dict(zip(kernels, computed, strict=True))
    by_index.update((index, future.result()) for index, future in compared.items())
    by_index.update(direct)
    if batch is not None:
        result = batch.result()
        for index, name in names.items():
            by_index[index] = bits.from_series(result.get_column(name))
    return [by_index[index] for index in range(len(leaves))]


def leaf_masks(frame: pl.DataFrame, leaves: list[Condition], strings: Mapping[str, StringColumn]) -> list[pl.Series]:
    """One mask (Boolean, no nulls) per leaf."""
    return [bits.to_series(words, frame.height) for words in leaf_bits(frame, leaves, strings)]


def evaluate(
    frame: pl.DataFrame,
    node: Node,
    strings: Mapping[str, StringColumn],
    *,
    per_node: bool = True,
    memo: LeafMemo | None = None,
    indexes: Mapping[str, Any] | None = None,
) -> Evaluation:
    """The tree's mask over `frame`, its count, and per node {count, running} (see the preview API).

    With `memo`, leaves evaluated before over the same data (an earlier edit of the tree) are reused. Masks are
    packed bits (audiences/logic/bits.py): the tree's AND/OR/NOT and every count are word operations.
    """
    n = frame.height
    leaves = conditions(node)
    masks_by_key: dict[Hashable, bits.Words] = {}
    pending: list[Condition] = []
    pending_keys: list[Hashable] = []
    for leaf in leaves:
        key = leaf_key(leaf)
        if key is None:
            key = ("__path", leaf.path)  # evaluated every time
        elif key in masks_by_key or key in pending_keys:
            continue
        elif memo is not None and isinstance(hit := memo.get(key), np.ndarray) and hit.size == bits.words_for(n):
            masks_by_key[key] = hit
            continue
        pending.append(leaf)
        pending_keys.append(key)
    for key, words, leaf in zip(pending_keys, leaf_bits(frame, pending, strings, indexes), pending, strict=True):
        masks_by_key[key] = words
        if memo is not None and leaf_key(leaf) is not None:
            memo.put(key, words)
    leaf_words = {
        leaf.path: masks_by_key[leaf_key(leaf) if leaf_key(leaf) is not None else ("__path", leaf.path)]
        for leaf in leaves
    }
    nodes: dict[str, dict[str, int]] = {}
    words, total = _combine(node, leaf_words, n, nodes if per_node else None)
    if total is None:
        total = bits.count(words)
    if per_node:
        nodes[node.path] = {"count": total, "running": total}
    return Evaluation(bits=words, height=n, count=total, nodes=nodes)


COMBINE_BLOCK = 1 << 14  # words per block of the combine: 128 KB per mask, a tree's working set stays in L2


def _combine(
    node: Node, leaf_words: dict[str, bits.Words], n: int, nodes: dict[str, dict[str, int]] | None
) -> tuple[bits.Words, int | None]:
    """The node's mask (new words) and its count when known (per-node counts: each mask counted once; a group's
    count is its last running count).

    Session 11: the tree is combined block by block of COMBINE_BLOCK words, every node's AND/OR/NOT and popcount
    done on a block before the next: each leaf mask is read from memory once, and the intermediate masks and their
    counts stay in the CPU cache (whole-mask operations read and wrote 1.25 MB per node and step at 10M, and each
    count read its mask again). The 9-condition tree's shape over random 10M-row masks, CPU (min of 20, load ~10):
    5.4-5.8 ms whole-mask against 2.7 ms in blocks of 2**14 words (2**12: 4.4, 2**13: 3.1, 2**15: 4.1)."""
    size = bits.words_for(n)
    out = np.empty(size, dtype=np.uint64)
    sums: dict[str, list[int]] | None = {} if nodes is not None else None
    total = 0
    for start in range(0, max(size, 1), COMBINE_BLOCK):  # (no rows: one empty block, every node counted 0)
        stop = min(size, start + COMBINE_BLOCK)
        # per block, each node's counts are set as the whole-mask combine set them (a group's own entry is then
        # overwritten by its parent's), and the blocks' counts added up
        block_sums: dict[str, tuple[int, int]] | None = {} if sums is not None else None
        block, counted = _combine_block(node, leaf_words, start, stop, size, n, block_sums)
        out[start:stop] = block
        total += counted
        if sums is not None and block_sums is not None:
            for path, (own, running) in block_sums.items():
                found = sums.setdefault(path, [0, 0])
                found[0] += own
                found[1] += running
    if nodes is None or sums is None:
        return out, None
    for path, (own, running) in sums.items():
        nodes[path] = {"count": own, "running": running}
    return out, total


def _combine_block(
    node: Node,
    leaf_words: dict[str, bits.Words],
    start: int,
    stop: int,
    size: int,
    n: int,
    sums: dict[str, tuple[int, int]] | None,
) -> tuple[bits.Words, int]:
    """Words start..stop of the node's mask (a view of a leaf's own words for a leaf: never written to) and their
    count (0 without `sums`); sets each child's count and running count in the block to `sums`."""
    if isinstance(node, Condition):
        words = leaf_words[node.path][start:stop]
        return words, (bits.count(words) if sums is not None else 0)
    if node.op == "not":
        child = node.children[0]
        words, own = _combine_block(child, leaf_words, start, stop, size, n, sums)
        inverted = np.invert(words)
        if stop == size and n & 63:  # the bits past the last row stay clear
            inverted[-1] &= np.uint64((1 << (n & 63)) - 1)
        if sums is None:
            return inverted, 0
        sums[child.path] = (own, own)
        return inverted, (stop - start) * 64 - own - (64 - (n & 63) if stop == size and n & 63 else 0)
    running: bits.Words | None = None
    total = 0
    for child in node.children:
        words, own = _combine_block(child, leaf_words, start, stop, size, n, sums)
        if running is None:
            running, total = words, own
        elif running.base is None:  # new words of this block (not a view of a leaf's words): combined in place
            if node.op == "and":
                np.bitwise_and(running, words, out=running)
            else:
                np.bitwise_or(running, words, out=running)
            total = bits.count(running) if sums is not None else 0
        else:
            running = running & words if node.op == "and" else running | words
            total = bits.count(running) if sums is not None else 0
        if sums is not None:
            sums[child.path] = (own, total)
    assert running is not None
    if sums is not None:
        sums[node.path] = (total, total)
    return running, total


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
