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
from audiences.logic import polars_engine, reference
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
    chunk=st.sampled_from([1, 3, 16, 1 << 20]),
)
def test_code_matches_and_memo_agree_with_the_reference(
    people: list[dict[str, Any]], raw_trees: list[dict[str, Any]], small: int, chunk: int
) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(polars_engine, "SMALL_CODE_SET", small)  # every kind of match: ranges, code sets, lookups
        patch.setattr(polars_engine, "LOOKUP_CHUNK", chunk)  # lookups split over several pool tasks
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
