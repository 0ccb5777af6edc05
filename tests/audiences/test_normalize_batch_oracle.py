"""The whole batch against the scalar rules, row by row: a dirty batch of every canonical field and custom type
(hypothesis), through every evaluation path, in one pass and as two halves of rows on two threads.

The scalar functions in audiences/normalize.py are the oracle: every record (each output column and the `custom`
JSON object) and every error row (row, column, field, value, reason, in order) must be exactly what they give.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audiences.fields import FIELDS
from audiences.normalize import ERROR_VALUE_CHARS, custom_value, normalize_value
from audiences.normalize_batch import normalize_batch
from tests.audiences.normalize_paths import PATHS, force_path, force_split
from tests.audiences.test_normalize import FIELD_STRATEGIES, _dirt, _numbers

_CUSTOM = {"Score": "integer", "Amount": "decimal", "Opt-in": "boolean", "Since": "date", "Notes": "text"}
_CUSTOM_NAMES = {header: header.lower().replace("-", "_") for header in _CUSTOM}
_CUSTOM_STRATEGY = st.one_of(
    _numbers(), _dirt, st.sampled_from(["yes", "N", "true", "2024-02-29", "2023/02/29", "1999-12-31", 'say "hi"'])
)
_MAPPING = {f"Col {field}": field for field in sorted(FIELD_STRATEGIES)}


# Valid values of each column, so that about half the rows survive (a row with any error is left out of records).
_CLEAN: dict[str, list[str]] = {
    "email": ["Jane.Doe+news@GMail.com", " a@b.co "],
    "phone": ["(234) 567-8901", "+44 20 7946 0958", "12345678901"],
    "domain": ["https://www.Example.com/about", "acme.io:8080"],
    "country": ["usa", " Germany "],
    "revenue": ["$1,234,567", "2.5M"],
    "employee_count": ["1,200", "50"],
    "maid": ["6D92078A-8246-4BA4-AE5B-76104861E7DC"],
    "maid_type": ["IDFA", "android"],
    "ip": ["1.2.3.4", "2001:DB8::1"],
    "postal_code": ["sw1a 1aa", "02134"],
    "first_name": ["Jane", "María "],
    "integer": ["12", "-3", "1.5k"],
    "decimal": ["1.5", "€ 12.345.678,90"],
    "boolean": ["yes", "F"],
    "date": ["2024-02-29", "1999/12/31"],
    "text": ["call back", 'said "no"', "é ü"],
}


@st.composite
def _rows(draw: st.DrawFn) -> list[dict[str, str | None]]:
    kinds = _MAPPING | _CUSTOM
    dirty = {header: FIELD_STRATEGIES[field] for header, field in _MAPPING.items()} | dict.fromkeys(
        _CUSTOM, _CUSTOM_STRATEGY
    )
    rows = []
    for _ in range(draw(st.integers(1, 12))):
        # Half the rows clean (values valid or missing), the others dirty anywhere.
        clean = draw(st.booleans())
        row = {}
        for header, kind in kinds.items():
            valid = st.sampled_from(_CLEAN[kind])
            row[header] = draw(st.one_of(st.none(), valid) if clean else st.one_of(st.none(), valid, dirty[header]))
        rows.append(row)
    # Repeat some rows, so that the per-distinct and coded paths meet repeats (as in CRM exports).
    return rows + draw(st.lists(st.sampled_from(rows), max_size=4))


def _json_value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value


def _expected(rows: list[dict[str, str | None]], country: str) -> tuple[list[dict[str, Any]], list[tuple[Any, ...]]]:
    """(records, errors) by the scalar rules."""
    records: list[dict[str, Any]] = []
    errors: list[tuple[Any, ...]] = []
    columns = [spec.name for spec in FIELDS if any(spec.name.startswith(f) for f in FIELD_STRATEGIES)]
    for number, row in enumerate(rows, start=2):
        outputs: dict[str, Any] = {}
        failed: list[tuple[Any, ...]] = []
        for header, field in _MAPPING.items():
            values, reason = normalize_value(field, row[header], default_country=country)
            if reason is not None:
                failed.append((number, header, field, (row[header] or "")[:ERROR_VALUE_CHARS], reason))
            outputs.update(values)
        custom: dict[str, Any] = {}
        for header, type_name in _CUSTOM.items():
            value, reason = custom_value(type_name, row[header])
            if reason is not None:
                failed.append((number, header, _CUSTOM_NAMES[header], (row[header] or "")[:ERROR_VALUE_CHARS], reason))
            elif value is not None:
                custom[_CUSTOM_NAMES[header]] = _json_value(value)
        errors.extend(failed)
        if not failed:
            record = {"__row": number} | {column: outputs.get(column) for column in columns}
            records.append(record | {"custom": custom or None})
    return records, errors


def _got(rows: list[dict[str, str | None]], country: str) -> tuple[list[dict[str, Any]], list[tuple[Any, ...]]]:
    headers = [*_MAPPING, *_CUSTOM]
    frame = pl.DataFrame(
        {header: pl.Series([row[header] for row in rows], dtype=pl.String) for header in headers}
    ).with_columns(pl.Series("__row", range(2, len(rows) + 2), dtype=pl.Int64))
    result = normalize_batch(frame, _MAPPING, custom_types=_CUSTOM, default_country=country, custom_names=_CUSTOM_NAMES)
    records = []
    for record in result.records.iter_rows(named=True):
        text = record["custom"]
        # Items in order: the object's keys follow the custom columns' order.
        records.append(record | {"custom": None if text is None else json.loads(text)})
    return records, result.errors.rows()


@pytest.mark.parametrize("halves", [False, True], ids=["one-pass", "two-halves"])
@pytest.mark.parametrize("path", PATHS)
def test_dirty_batch_equals_scalar_rules(path: str, halves: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    force_path(monkeypatch, path)
    force_split(monkeypatch, halves)

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(rows=_rows(), country=st.sampled_from(["US", "GB"]))
    def check(rows: list[dict[str, str | None]], country: str) -> None:
        expected_records, expected_errors = _expected(rows, country)
        records, errors = _got(rows, country)
        assert errors == expected_errors
        assert len(records) == len(expected_records)
        for record, expected in zip(records, expected_records, strict=True):
            assert list((record["custom"] or {}).items()) == list((expected.pop("custom") or {}).items()), record
            for column, value in expected.items():
                assert record[column] == value, (column, record[column], value)

    check()


def test_halves_equal_one_pass_on_the_bench_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bench's dirty batch (repeats, fallbacks, custom JSON): two halves give the one-pass frames exactly."""
    from bench.bench_normalize import CUSTOM_TYPES, MAPPING, make_batch

    frame = make_batch(5_001)  # an odd height: halves of 2,500 and 2,501 rows
    force_split(monkeypatch, False)
    whole = normalize_batch(frame, MAPPING, custom_types=CUSTOM_TYPES)
    force_split(monkeypatch, True)
    halves = normalize_batch(frame, MAPPING, custom_types=CUSTOM_TYPES)
    assert whole.errors.height > 0 and whole.records.height > 0
    assert halves.records.equals(whole.records) and halves.records.schema == whole.records.schema
    assert halves.errors.equals(whole.errors) and halves.errors.schema == whole.errors.schema
