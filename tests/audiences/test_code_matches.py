"""Issue 17: string predicates matched on dictionary codes (ranges, small code sets, per-category lookups gathered
with numpy in chunks on a thread pool) and leaf masks memoised across edits give exactly the plain-Python
reference's counts. In memory only (no database): many categories, mixed case, non-ASCII, nulls."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audiences import cache
from audiences.logic import bits, polars_engine, reference
from audiences.logic.polars_engine import CodeMatch, LeafMemo, classify_matches, evaluate
from audiences.logic.tree import CATEGORY, NUMBER, TEXT, FieldRef, parse

ALPHABET = "aAbBzZ9ßÄä .-"
STRING_OPS = ["eq", "neq", "in", "not_in", "contains", "starts_with", "ends_with", "is_null", "is_not_null"]
FIELDS = {
    "company_name": FieldRef(name="company_name", type=TEXT, column="company_name"),
    "industry": FieldRef(name="industry", type=CATEGORY, column="industry"),
    "revenue": FieldRef(name="revenue", type=NUMBER, column="revenue"),
}
words = st.text(alphabet=ALPHABET, min_size=0, max_size=4)


@st.composite
def condition(draw: Any) -> dict[str, Any]:
    if draw(st.integers(0, 5)) == 0:
        return {"field": "revenue", "operator": "gte", "value": draw(st.integers(0, 10))}
    op = draw(st.sampled_from(STRING_OPS))
    field = draw(st.sampled_from(["company_name", "industry"]))
    value: Any = draw(words)
    if op in ("in", "not_in"):
        value = draw(st.lists(words, min_size=1, max_size=12))
    return {"field": field, "operator": op, "value": value}


trees = st.recursive(
    condition(),
    lambda children: st.one_of(
        st.builds(lambda op, c: {"op": op, "children": c}, st.sampled_from(["and", "or"]), st.lists(children, min_size=1, max_size=4)),
        st.builds(lambda c: {"op": "not", "children": [c]}, children),
    ),
    max_leaves=8,
)  # fmt: skip


def _frame(people: list[dict[str, Any]]) -> tuple[pl.DataFrame, dict[str, Any]]:
    columns, strings = [], {}
    for name in ("company_name", "industry"):
        series = pl.Series(name, [p[name] for p in people], dtype=pl.String)
        series, info = cache._as_enum(series)
        columns.append(series)
        strings[name] = info
    columns.append(pl.Series("revenue", [p["revenue"] for p in people], dtype=pl.Int16))
    return pl.DataFrame(columns), strings


@settings(max_examples=150, deadline=None)
@given(
    people=st.lists(
        st.fixed_dictionaries(
            {
                "company_name": st.one_of(st.none(), words),
                "industry": st.one_of(st.none(), st.sampled_from(["Retail", "RETAIL", "retail ", "Ärzte", "ärzte"])),
                "revenue": st.one_of(st.none(), st.integers(0, 10)),
            }
        ),
        min_size=0,
        max_size=60,
    ),
    raw_trees=st.lists(trees, min_size=1, max_size=3),
    small=st.integers(0, 9),
    chunk=st.sampled_from([64, 1 << 18]),
    masks=st.sampled_from([0, 3, 64]),
)
def test_code_matches_and_memo_agree_with_the_reference(
    people: list[dict[str, Any]], raw_trees: list[dict[str, Any]], small: int, chunk: int, masks: int
) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(polars_engine, "SMALL_CODE_SET", small)  # every kind of match: ranges, code sets, lookups
        # per-category masks (session 10) for no column, the columns of at most 3 categories, or every column here
        patch.setattr(polars_engine, "BITMAP_MAX_CATEGORIES", masks)
        patch.setattr(bits, "SLICE", chunk)  # row slices shared by several pool tasks
        frame, strings = _frame(people)
        memo = LeafMemo(1 << 20)
        for raw in [*raw_trees, *raw_trees]:  # the second pass reads the leaves from the memo
            node = parse(raw, FIELDS.get)
            expected = reference.count(node, people)
            assert evaluate(frame, node, strings, per_node=False).count == expected, raw
            result = evaluate(frame, node, strings, memo=memo)
            assert result.count == expected, raw
            assert result.mask.null_count() == 0 and result.mask.len() == len(people)
        assert memo.hits > 0


def test_classify_matches_picks_the_cheapest_row_test() -> None:
    def kind(bits: str) -> CodeMatch:
        return classify_matches(np.array([b == "1" for b in bits]))

    assert kind("0000").kind == "none"
    assert kind("1111").kind == "present"
    assert (kind("0110").kind, kind("0110").low, kind("0110").high) == ("range", 1, 2)
    assert kind("1010").kind == "codes" and kind("1010").codes == (0, 2)
    many = "10" * 20
    assert kind(many).kind == "lookup"
    assert (kind("1" * 10 + "00" + "1" * 10).kind, kind("1" * 10 + "00" + "1" * 10).low) == ("outside", 10)
    assert kind("1" * 10 + "0" + "1" * 3 + "0" + "1" * 10).kind == "not_codes"


def test_sorted_dictionary_makes_case_insensitive_prefixes_one_range() -> None:
    series = pl.Series("c", ["b2", "A1", "a2", None, "B1", "a1", "Ab"])
    _enum, info = cache._as_enum(series)
    assert info.lowered_categories is not None
    assert info.lowered_categories.to_list() == sorted(info.lowered_categories.to_list())
    match = polars_engine.match_codes(info, "starts_with", "a")
    assert match.kind == "range"
    assert polars_engine.match_codes(info, "eq", "a1").kind in ("range", "codes")


def test_the_leaf_memo_is_bounded_in_bytes() -> None:
    memo = LeafMemo(max_bytes=3000)
    for i in range(10):
        memo.put(("leaf", i), pl.Series([True] * 8000))  # about 1 KB each (a bit per row)
    assert memo.bytes <= 3000 and len(memo) < 10
    assert memo.get(("leaf", 9)) is not None and memo.get(("leaf", 0)) is None


NUMBER_OPS = ["eq", "neq", "gt", "gte", "lt", "lte", "between", "in", "not_in", "is_null", "is_not_null"]
NUMBER_VALUES = st.sampled_from([-70000, -129, -1, 0, 1, 5, 200, 255, 256, 32767, 70000, 2**40, 2.5, -0.5])


@st.composite
def wide_condition(draw: Any) -> dict[str, Any]:
    """String conditions as above, and integer conditions with values outside the columns' types or fractional."""
    if draw(st.booleans()):
        return draw(condition())
    field = draw(st.sampled_from(["revenue", "score", "employees"]))
    op = draw(st.sampled_from(NUMBER_OPS))
    value: Any = draw(NUMBER_VALUES)
    if op == "between":
        value = sorted([value, draw(NUMBER_VALUES)])
    elif op in ("in", "not_in"):
        value = draw(st.lists(NUMBER_VALUES, min_size=1, max_size=4))
    elif op in ("is_null", "is_not_null"):
        value = None
    return {"field": field, "operator": op, "value": value}


wide_trees = st.recursive(
    wide_condition(),
    lambda children: st.one_of(
        st.builds(lambda op, c: {"op": op, "children": c}, st.sampled_from(["and", "or"]), st.lists(children, min_size=1, max_size=4)),
        st.builds(lambda c: {"op": "not", "children": [c]}, children),
    ),
    max_leaves=8,
)  # fmt: skip


def _wide_frame(people: list[dict[str, Any]]) -> tuple[pl.DataFrame, dict[str, Any], dict[str, FieldRef]]:
    """`_frame` plus the wide trees' numeric columns: `score` (UInt8) and `employees` (Int32), with their fields."""
    frame, strings = _frame(people)
    frame = frame.with_columns(
        pl.Series("score", [p["score"] for p in people], dtype=pl.UInt8),
        pl.Series("employees", [p["employees"] for p in people], dtype=pl.Int32),
    )
    fields = {
        **FIELDS,
        "score": FieldRef(name="score", type=NUMBER, column="score"),
        "employees": FieldRef(name="employees", type=NUMBER, column="employees"),
    }
    return frame, strings, fields


@settings(max_examples=80, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1), size=st.integers(0, 1500), raw_trees=st.lists(wide_trees, min_size=1, max_size=3)
)
def test_packed_kernels_over_many_row_slices_and_threads_agree_with_the_reference(
    seed: int, size: int, raw_trees: list[dict[str, Any]]
) -> None:
    """Issue 17, session 7: packed-bit evaluation, the numpy kernels cut into 64-row slices spread over the leaf
    pool's threads (code sets and lookups on u8/u16 Enum codes; `between` and wider comparisons on Int16, Int32 and
    UInt8 numbers with nulls, values outside the columns' types or fractional) beside the polars batch, gives the
    reference's counts and rows, and the same per-node counts as one slice on one thread."""
    import random

    rng = random.Random(seed)
    names = [f"{rng.choice(ALPHABET)}{i}" for i in range(400)]  # a few hundred categories: u16 codes
    people = [
        {
            "company_name": rng.choice([None, *names]),
            "industry": rng.choice([None, "Retail", "RETAIL", "retail ", "Ärzte", "ärzte", "aB", "b"]),
            "revenue": rng.choice([None, rng.randint(-32768, 32767), rng.randint(-3, 300)]),
            "score": rng.choice([None, rng.randint(0, 255)]),
            "employees": rng.choice([None, rng.randint(-(2**31), 2**31 - 1), rng.randint(-3, 300)]),
        }
        for _ in range(size)
    ]
    frame, strings, fields = _wide_frame(people)
    indexes = {
        name: index
        for name in ("revenue", "score", "employees")
        if (index := polars_engine.sorted_index(frame.get_column(name))) is not None
    }
    for raw in raw_trees:
        node = parse(raw, fields.get)
        expected = reference.count(node, people)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(bits, "SLICE", 1 << 18)
            patch.setenv("P360_BUILDER_THREADS", "1")
            whole = evaluate(frame, node, strings)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(bits, "SLICE", 64)
            sliced = evaluate(frame, node, strings)
        with pytest.MonkeyPatch.context() as patch:  # session 10: every integer range through the sorted indexes
            patch.setattr(polars_engine, "SORTED_MAX_SHARE", 1.0)
            indexed = evaluate(frame, node, strings, indexes=indexes)
        assert (whole.count, sliced.count, indexed.count) == (expected, expected, expected), raw
        assert whole.nodes == sliced.nodes == indexed.nodes, raw
        assert sliced.mask.to_list() == [reference.holds(node, p) for p in people], raw
        assert indexed.mask.to_list() == sliced.mask.to_list(), raw


def test_packed_masks_round_trip_through_arrow_and_positions() -> None:
    values = [i % 3 == 0 or i in (64, 127, 128) for i in range(200)]
    series = pl.Series(values)
    words = bits.from_series(series)
    assert bits.count(words) == sum(values)
    assert bits.to_series(words, 200).to_list() == values
    assert bits.positions(words, 5) == [0, 3, 6, 9, 12]
    assert bits.positions(words, 1000) == [i for i, v in enumerate(values) if v]
    assert bits.count(bits.invert(words, 200)) == 200 - sum(values)
    with_nulls = pl.Series([True, None, False, True] * 30).slice(8, 90)  # nulls are false; an offset on a byte edge
    assert bits.to_series(bits.from_series(with_nulls), 90).to_list() == [v is True for v in with_nulls.to_list()]
    odd = pl.Series([True, None, False, True] * 30).slice(3, 90)  # an offset inside a byte
    assert bits.to_series(bits.from_series(odd), 90).to_list() == [v is True for v in odd.to_list()]


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    categories=st.integers(1, 3000),
    rows=st.integers(0, 2000),
    dtype=st.sampled_from(["uint8", "uint16", "uint32"]),
    stray=st.booleans(),
)
def test_arrow_table_lookups_equal_the_bool_table(
    seed: int, categories: int, rows: int, dtype: str, stray: bool
) -> None:
    """Issue 17, session 11: a lookup gathers a byte per category with Arrow's take (no bounds check); it must give
    exactly the bool table's answer for every code of the column's type, and a code past the categories (what a
    null's code may be) is clipped instead of read out of bounds."""
    rng = np.random.default_rng(seed)
    top = min(categories, int(np.iinfo(dtype).max) + 1)
    matches = rng.random(top) < rng.random()
    if matches.all() or not matches.any():
        matches[0] = not matches[0]
    match = classify_matches(matches)
    codes = rng.integers(0, top, rows).astype(dtype)
    if match.kind != "lookup":
        return
    assert match.table is not None and match.lookup is not None
    if stray and rows:
        codes[rng.integers(0, rows)] = np.iinfo(dtype).max  # past the categories (unless the type is full)
    found = polars_engine._code_kernel(codes, match, int(codes.max()) if rows else 0)
    assert found is not None
    test, negate = found
    expected = matches[np.minimum(codes, top - 1)]
    got = test(codes)
    assert not negate and got.dtype == np.bool_ and got.tolist() == expected.tolist()
    assert polars_engine._take_test(match.table, np.minimum(codes, codes.dtype.type(top - 1))).tolist() == (
        expected.tolist()
    )


def test_a_lookup_on_codes_past_the_categories_under_nulls_clips_them() -> None:
    """Codes under nulls are arbitrary: the column's largest code is read once per buffer (kept in the column's
    index), and a lookup over a buffer whose codes run past the categories clips them (the nulls are cleared by the
    validity after)."""
    series, info = cache._as_enum(pl.Series("company_name", ["a1", "b2", None, "a3", "c4"] * 13))  # 65 rows
    frame = pl.DataFrame([series])
    strings = {"company_name": info}
    leaf = parse({"field": "company_name", "operator": "contains", "value": "a"}, FIELDS.get)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(polars_engine, "SMALL_CODE_SET", 0)  # a lookup, not a code set
        assert polars_engine.match_codes(info, "contains", "a").kind in ("lookup", "range")
        assert evaluate(frame, leaf, strings).count == 26
        codes, _valid = bits.column(series, enum=True)
        assert polars_engine._max_code(info, codes) == int(codes.max())
        assert info.index["max_code"].codes is codes or polars_engine._same_column(info.index["max_code"], codes)
        stray = np.array([0, 1, 250, 3], dtype=np.uint8)  # a null's code past the four categories
        match = classify_matches(np.array([True, False, True, False]))
        found = polars_engine._code_kernel(stray, match, 250)
        assert found is not None and found[0](stray).tolist() == [True, False, False, False]


def _limit_cases(dtype: Any) -> tuple[pl.DataFrame, list[Any]]:
    """A column `n` of `dtype` holding its type's limits, small values and nulls over several 64-row slices, and
    every single comparison and `between` against bounds at, inside and beyond the limits (fractional too)."""
    low, high = polars_engine.INTEGER_LIMITS[dtype]
    raw = [low, low + 1, -1, 0, 1, 2, 7, high - 1, high, None]
    values = [v for v in raw if v is None or low <= v <= high] * 70  # several 64-row slices
    frame = pl.DataFrame([pl.Series("n", values, dtype=dtype)])
    field = FieldRef(name="n", type=NUMBER, column="n")
    bounds = [low - 1, low, low + 1, -1.5, -1, 0, 0.5, 1, 2, high - 1, high, high + 1, 2**70]
    leaves: list[tuple[str, Any]] = [(op, v) for op in ("gt", "gte", "lt", "lte") for v in bounds]
    leaves += [("between", (a, b)) for a in bounds for b in bounds if a <= b]
    conditions = [
        polars_engine.Condition(path=f"c{i}", field=field, operator=op, value=v) for i, (op, v) in enumerate(leaves)
    ]
    return frame, conditions


@pytest.mark.parametrize("dtype", [pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32, pl.UInt64])
def test_integer_kernels_give_the_polars_comparison_at_the_types_limits(dtype: Any) -> None:
    """Issue 17: `between` (one unsigned subtract and compare) and the single comparisons run as numpy kernels equal
    polars' own comparison, at and beyond the limits of every integer type, with fractional bounds and nulls."""
    frame, conditions = _limit_cases(dtype)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(bits, "SLICE", 64)
        got = polars_engine.leaf_bits(frame, conditions, {})
    for cond, words in zip(conditions, got, strict=True):
        expected = frame.select(polars_engine.condition_expr(cond, {"n": dtype}, {})).to_series()
        assert bits.to_series(words, frame.height).to_list() == expected.to_list(), (cond.operator, cond.value)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    size=st.integers(0, 700),
    categories=st.integers(1, 12),
    nulls=st.floats(0, 1),
    raw_trees=st.lists(trees, min_size=1, max_size=3),
)
def test_per_category_masks_agree_with_the_code_kernels_and_the_reference(
    seed: int, size: int, categories: int, nulls: float, raw_trees: list[dict[str, Any]]
) -> None:
    """Issue 17, session 10: a leaf on a few-category Enum column is the union of its per-category masks (the
    matched codes', or the unmatched codes' subtracted from the present rows, whichever are fewer). Same rows as
    the code kernels and the reference, with nulls, over several row slices and both pool threads."""
    import random

    rng = random.Random(seed)
    values = ["Retail", "RETAIL", "retail ", "Ärzte", "ärzte", "aB", "b", "Z9", "z", "9", "ß", "a b"][:categories]
    people = [
        {
            "company_name": None if rng.random() < nulls else rng.choice(values),
            "industry": None if rng.random() < nulls else rng.choice(values[::-1]),
            "revenue": rng.choice([None, rng.randint(0, 10)]),
        }
        for _ in range(size)
    ]
    frame, strings = _frame(people)
    for raw in raw_trees:
        node = parse(raw, FIELDS.get)
        expected = [reference.holds(node, p) for p in people]
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(bits, "SLICE", 64)
            patch.setattr(polars_engine, "BITMAP_MAX_CATEGORIES", 0)
            kernels = evaluate(frame, node, strings)
            patch.setattr(polars_engine, "BITMAP_MAX_CATEGORIES", 64)
            masks = evaluate(frame, node, strings)
        assert masks.mask.to_list() == expected, raw
        assert kernels.mask.to_list() == expected, raw
        assert masks.nodes == kernels.nodes, raw


def test_per_category_masks_follow_the_column_they_were_built_from() -> None:
    """The masks are kept with the column's StringColumn; a frame with other codes under the same StringColumn (a
    slice, another entry) must not reuse them, and their bytes are counted for the cache's memory budget."""
    series, info = cache._as_enum(pl.Series("industry", ["a", "b", None, "c", "a"] * 30))
    frame = pl.DataFrame([series])
    strings = {"industry": info}
    leaf = parse({"field": "industry", "operator": "in", "value": ["a", "c"]}, FIELDS.get)
    assert evaluate(frame, leaf, strings).count == 90
    assert info.index.get("bitmaps") is not None
    assert polars_engine.index_nbytes(strings) == 4 * bits.words_for(150) * 8  # three categories and the validity
    other = pl.DataFrame([series.slice(1, 100)])  # another buffer view: rebuilt, not reused
    assert evaluate(other, leaf, strings).count == sum(v in ("a", "c") for v in series.slice(1, 100).to_list())
    negated = parse({"field": "industry", "operator": "not_in", "value": ["a"]}, FIELDS.get)  # the unmatched side
    assert evaluate(frame, negated, strings).count == 60  # b and c, never the nulls


@pytest.mark.parametrize("dtype", [pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32, pl.UInt64])
def test_sorted_indexes_give_the_polars_comparison_at_the_types_limits(dtype: Any) -> None:
    """Issue 17, session 10: an integer range read from the column's sorted index (the matching rows set as bits,
    or the other present rows set and inverted) equals polars' comparison at the limits of every integer type, with
    fractional bounds and nulls; with the default share, a range whose both sides are many rows is left to a kernel."""
    frame, conditions = _limit_cases(dtype)
    values = frame.get_column("n").to_list()
    index = polars_engine.sorted_index(frame.get_column("n"))
    assert index is not None and index.values.tolist() == sorted(v for v in values if v is not None)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(polars_engine, "SORTED_MAX_SHARE", 1.0)
        got = polars_engine.leaf_bits(frame, conditions, {}, {"n": index})
        direct = [polars_engine._sorted_leaf(frame, c, {"n": dtype()}, {"n": index}) for c in conditions]
    assert all(words is not None for words in direct)  # every leaf went through the index
    for cond, words in zip(conditions, got, strict=True):
        expected = frame.select(polars_engine.condition_expr(cond, {"n": dtype}, {})).to_series()
        assert bits.to_series(words, frame.height).to_list() == expected.to_list(), (cond.operator, cond.value)
    wide = polars_engine.Condition(
        path="w", field=conditions[0].field, operator="gte", value=1
    )  # many rows on each side
    assert polars_engine._sorted_leaf(frame, wide, {"n": dtype()}, {"n": index}) is None
    copied = pl.DataFrame([pl.Series("n", values, dtype=dtype)])  # the same values in another buffer: not used
    assert polars_engine._sorted_leaf(copied, conditions[0], {"n": dtype()}, {"n": index}) is None


def test_set_rows_sets_exactly_the_given_rows() -> None:
    rng = np.random.default_rng(7)
    for n in (0, 1, 63, 64, 65, 1000):
        rows = rng.permutation(n)[: n // 3].astype(np.uint32)
        words = polars_engine.set_rows(rows, n)
        assert words.size == bits.words_for(n)
        assert bits.to_series(words, n).to_list() == [i in set(rows.tolist()) for i in range(n)]


@pytest.mark.parametrize("rows", [0, 1, 63, 64, 65, 130])
def test_one_comparison_leaves_are_polars_compares_equal_to_the_reference(rows: int) -> None:
    """Issue 17, session 11: a leaf that is one comparison (one code, a code range reaching the first or last code,
    its outside, an integer gt/gte/lt/lte) is polars' compare of the whole column; with nulls, a row count that is
    no multiple of 64, a value no category has (no row) and one every category has (every present row), it gives
    the reference's rows. A two-sided range is still a kernel."""
    names = ["a1", "A2", "b1", "b2", "c", None]
    people = [
        {"company_name": names[i % 6], "industry": None, "revenue": None if i % 5 == 0 else i % 11} for i in range(rows)
    ]
    frame, strings = _frame(people)
    raw_leaves = [
        ("company_name", "eq", "c"),  # one code (the last)
        ("company_name", "neq", "b1"),  # all but one code, nulls excluded
        ("company_name", "starts_with", "a"),  # a range from the first code
        ("company_name", "starts_with", "b"),  # a range inside: a kernel
        ("company_name", "not_in", ["a1", "a2"]),  # outside a range from the first code
        ("company_name", "not_in", ["c"]),  # outside the last code
        ("company_name", "in", ["b2", "c"]),  # a range to the last code
        ("company_name", "eq", "zz"),  # no category: no row
        ("company_name", "neq", "zz"),  # every category: every present row
        ("industry", "eq", "x"),  # a column without categories (every value missing)
        ("revenue", "gte", 5),
        ("revenue", "lt", 3),
        ("revenue", "gt", 40000),  # past the type's limit: no row
        ("revenue", "lte", -40000),
        ("revenue", "between", [2, 6]),  # a kernel
    ]
    schema = polars_engine.ColumnTypes(frame)
    patch = pytest.MonkeyPatch()
    patch.setattr(polars_engine, "SMALL_CODE_SET", 0)  # ranges and their outsides, not a few codes
    try:
        _check_one_comparison_leaves(frame, strings, schema, people, raw_leaves)
    finally:
        patch.undo()


def _check_one_comparison_leaves(
    frame: pl.DataFrame, strings: dict[str, Any], schema: Any, people: list[dict[str, Any]], raw_leaves: list[Any]
) -> None:
    rows = frame.height
    for field, op, value in raw_leaves:
        node = parse({"field": field, "operator": op, "value": value}, FIELDS.get)
        assert isinstance(node, polars_engine.Condition)
        compare = polars_engine._compare_leaf(frame, node, strings, schema)
        if rows < 6:  # not every name is a category: other kinds of match (checked by the rows below)
            pass
        elif (field, op) in (("company_name", "starts_with"), ("revenue", "between")) and value in ("b", [2, 6]):
            assert compare is None, (field, op, value)
        elif (field, op, value) in (("company_name", "eq", "zz"), ("company_name", "neq", "zz")):
            assert compare is None  # no category or every category: the validity (_direct)
        elif field == "industry" or value in (40000, -40000):
            pass  # a constant leaf either way
        else:
            assert compare is not None, (field, op, value)
            assert bits.to_series(compare(), rows).to_list() == [reference.holds(node, p) for p in people]
        got = polars_engine.leaf_bits(frame, [node], strings)[0]
        assert got.size == bits.words_for(rows)
        assert bits.to_series(got, rows).to_list() == [reference.holds(node, p) for p in people], (field, op, value)


def _expected_nodes(node: Any, people: list[dict[str, Any]], nodes: dict[str, dict[str, int]]) -> list[bool]:
    """Per-node counts as the preview API defines them, from the plain-Python reference row by row: a node's own
    count, and in a group each child's running count (the group so far)."""
    if isinstance(node, polars_engine.Condition):
        return [reference.holds(node, p) for p in people]
    rows = [_expected_nodes(child, people, nodes) for child in node.children]
    if node.op == "not":
        nodes[node.children[0].path] = {"count": sum(rows[0]), "running": sum(rows[0])}
        return [not v for v in rows[0]]
    running = rows[0]
    for child, values in zip(node.children, rows, strict=True):
        if child is not node.children[0]:
            running = [a and b if node.op == "and" else a or b for a, b in zip(running, values, strict=True)]
        nodes[child.path] = {"count": sum(values), "running": sum(running)}
    nodes[node.path] = {"count": sum(running), "running": sum(running)}
    return running


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    size=st.sampled_from([0, 1, 63, 64, 65, 200, 257]),
    block=st.sampled_from([1, 2, 3, 1 << 14]),
    raw=wide_trees,
)
def test_the_blockwise_combine_gives_the_references_mask_and_per_node_counts(
    seed: int, size: int, block: int, raw: dict[str, Any]
) -> None:
    """Issue 17, session 11: the tree is combined block by block of words (AND/OR/NOT and every count on a block
    before the next); with blocks of one to three words and row counts that are no multiple of 64 (the last
    block's bits past the last row under a NOT), the mask and every node's count and running count are the
    reference's."""
    import random

    rng = random.Random(seed)
    people = [
        {
            "company_name": rng.choice([None, "a", "B", "ab", "9"]),
            "industry": rng.choice([None, "Retail", "b"]),
            "revenue": rng.choice([None, rng.randint(-3, 12)]),
            "score": rng.choice([None, rng.randint(0, 255)]),
            "employees": rng.choice([None, rng.randint(-3, 300)]),
        }
        for _ in range(size)
    ]
    frame, strings, fields = _wide_frame(people)
    node = parse(raw, fields.get)
    expected: dict[str, dict[str, int]] = {}
    rows = _expected_nodes(node, people, expected)
    expected[node.path] = {"count": sum(rows), "running": sum(rows)}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(polars_engine, "COMBINE_BLOCK", block)
        result = evaluate(frame, node, strings)
        bare = evaluate(frame, node, strings, per_node=False)
    assert result.mask.to_list() == rows == bare.mask.to_list(), raw
    assert result.count == sum(rows) == bare.count, raw
    assert result.nodes == expected, raw
    assert result.bits.size == bits.words_for(size) and (size % 64 == 0 or not result.bits[-1] >> (size % 64))
