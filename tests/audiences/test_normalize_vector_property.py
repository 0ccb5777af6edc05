"""Property tests: the vectorised phone and email paths give exactly what the plain per-value rules give.

Phones: the NANP fast path and the international path built from phonenumbers' metadata (audiences/normalize_phones)
against `normalize_phone`, over numbers drawn from every calling code's example numbers, mutated and punctuated
(including a tab and `(0)`, which must leave the fast paths). Emails: the polars email steps and the DataFusion
SHA-256 against `normalize_email` + `uid2_hash` (hashlib). Hashes of repeating columns (hashed once per distinct
value) and custom text as JSON against `json.dumps`.
"""

from __future__ import annotations

import json

import phonenumbers
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, PhoneNumberType

import audiences.normalize as normalize_module
import audiences.normalize_batch as normalize_batch_module
from audiences.normalize import (
    custom_value,
    normalize_domain,
    normalize_email,
    normalize_ip,
    normalize_phone,
    trim,
    uid2_hash,
    uid2_hashes,
)
from audiences.normalize_batch import normalize_batch
from audiences.normalize_phones import normalize_phones
from tests.audiences.normalize_paths import PATHS, force_path

_TYPES = (PhoneNumberType.FIXED_LINE, PhoneNumberType.MOBILE, PhoneNumberType.TOLL_FREE, PhoneNumberType.VOIP)


def _examples() -> list[tuple[int, str]]:
    """(calling code, example national significant number) for every region and non-geographic entity."""
    found: list[tuple[int, str]] = []
    for code, regions in COUNTRY_CODE_TO_REGION_CODE.items():
        for region in regions:
            numbers = (
                [phonenumbers.example_number_for_non_geo_entity(code)]
                if region == "001"
                else [phonenumbers.example_number_for_type(region, kind) for kind in _TYPES]
            )
            found.extend((code, phonenumbers.national_significant_number(n)) for n in numbers if n is not None)
    return sorted(set(found))


EXAMPLES = _examples()
_SEPARATORS = st.sampled_from(["", " ", "-", ".", "/", "(", ")", " (0) ", "\t", "  ", "x", "#", ",", "\u00a0"])


@st.composite
def _national(draw: st.DrawFn) -> tuple[int, str]:
    code, nsn = draw(st.sampled_from(EXAMPLES))
    digits = list(nsn)
    for _ in range(draw(st.integers(0, 2))):
        edit = draw(st.sampled_from(["change", "add", "drop", "zero"]))
        position = draw(st.integers(0, len(digits)))
        if edit == "change" and position < len(digits):
            digits[position] = draw(st.sampled_from("0123456789"))
        elif edit == "add":
            digits.insert(position, draw(st.sampled_from("0123456789")))
        elif edit == "drop" and position < len(digits):
            digits.pop(position)
        elif edit == "zero":
            digits.insert(0, "0")
    return code, "".join(digits)


@st.composite
def _phone_text(draw: st.DrawFn) -> str:
    code, nsn = draw(_national())
    cut = sorted(draw(st.lists(st.integers(0, len(nsn)), max_size=3)))
    parts = [nsn[i:j] for i, j in zip([0, *cut], [*cut, len(nsn)], strict=True)]
    body = "".join(part + draw(_SEPARATORS) for part in parts[:-1]) + parts[-1]
    prefix = draw(st.sampled_from(["+", "+", "+", "00", "", "(+", "++", "+ "]))
    return prefix + str(code) + draw(_SEPARATORS) + body


_PHONES = st.one_of(
    _phone_text(),
    st.text(alphabet="+0123456789 ()-./", max_size=20),
    st.sampled_from(["(234) 567-8901", "(234)\t567-8901", "1 234 567 8901", "+1 234.567.8901", "+44 (0)20 7946 0958"]),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.lists(_PHONES, min_size=1, max_size=40), country=st.sampled_from(["US", "GB", "DE", "CA"]))
def test_vectorised_phones_equal_normalize_phone(values: list[str], country: str) -> None:
    got = normalize_phones(pl.Series(values, dtype=pl.String), country).to_list()
    assert got == [normalize_phone(value, country) for value in values]


@pytest.mark.parametrize("path", PATHS)
def test_batch_phones_and_hashes_equal_scalar(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    force_path(monkeypatch, path)

    @settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        values=st.lists(st.one_of(st.none(), _PHONES), min_size=1, max_size=30), country=st.sampled_from(["US", "GB"])
    )
    def check(values: list[str | None], country: str) -> None:
        frame = pl.DataFrame(
            {"__row": list(range(len(values))), "P": values}, schema={"__row": pl.Int64, "P": pl.String}
        )
        result = normalize_batch(frame, {"P": "phone"}, custom_types={}, default_country=country)
        records = {row["__row"]: row for row in result.records.iter_rows(named=True)}
        failed = set(result.errors.get_column("__row").to_list())
        for row, value in enumerate(values):
            expected = normalize_phone(value, country)
            if expected is None and trim(value) is not None:
                assert row in failed, value
                continue
            assert records[row]["phone_e164"] == expected, value
            assert records[row]["phone_sha256"] == (uid2_hash(expected) if expected else None), value

    check()


_LOCAL = st.text(alphabet='abcXYZ09.+_-\u00e9\u00c9\u0130\u212a"', max_size=12)
_DOMAIN = st.sampled_from(["gmail.com", "GMAIL.COM", "gmail.com.", "example.com", "a.b.c", "x", "ex..com", "\u00e9.fr"])


@st.composite
def _email_text(draw: st.DrawFn) -> str:
    local, domain = draw(_LOCAL), draw(_DOMAIN)
    core = draw(st.sampled_from([f"{local}@{domain}", f"{local}@@{domain}", local, f"{local}@{domain}@{domain}"]))
    padding = st.sampled_from(["", " ", "\t", "\u3000"])
    return draw(padding) + core + draw(padding)


_EMAILS = st.one_of(
    _email_text(),
    st.builds(lambda n: "a" * n + "@example.com", st.integers(235, 245)),  # around the 254-character limit
    st.text(max_size=16),
)


@pytest.mark.parametrize("path", PATHS)
def test_batch_emails_and_hashes_equal_scalar(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    force_path(monkeypatch, path)

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(values=st.lists(st.one_of(st.none(), _EMAILS), min_size=1, max_size=30))
    def check(values: list[str | None]) -> None:
        frame = pl.DataFrame(
            {"__row": list(range(len(values))), "E": values}, schema={"__row": pl.Int64, "E": pl.String}
        )
        result = normalize_batch(frame, {"E": "email"}, custom_types={})
        records = {row["__row"]: row for row in result.records.iter_rows(named=True)}
        failed = set(result.errors.get_column("__row").to_list())
        for row, value in enumerate(values):
            expected = normalize_email(value)
            if expected is None and trim(value) is not None:
                assert row in failed, value
                continue
            assert records[row]["email_normalized"] == expected, value
            assert records[row]["email_sha256"] == (uid2_hash(expected) if expected else None), value

    check()


@pytest.mark.parametrize("engine", ["datafusion", "hashlib"])
@pytest.mark.parametrize("repeated", [False, True], ids=["each-value", "per-distinct-value"])
def test_column_hashes_equal_scalar_hash(repeated: bool, engine: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """`uid2_hashes` gives `uid2_hash` of every value, whether the column is hashed per distinct value or not, by
    either engine (hashlib for short columns until DataFusion is loaded, DataFusion otherwise)."""
    monkeypatch.setattr(normalize_module, "HASH_REPEAT_MIN_ROWS", 0 if repeated else 1 << 62)
    monkeypatch.setattr(normalize_module, "HASH_REPEAT_SHARE", 1.0)
    monkeypatch.setattr(normalize_module, "HASHLIB_MAX_ROWS", 0 if engine == "datafusion" else 1 << 62)
    monkeypatch.setattr(normalize_module, "_datafusion_loaded", lambda: engine == "datafusion")

    @settings(max_examples=150, deadline=None)
    @given(
        values=st.lists(st.one_of(st.none(), st.sampled_from(["+14155550100", "a@b.co", ""]), st.text()), max_size=40)
    )
    def check(values: list[str | None]) -> None:
        got = uid2_hashes(pl.Series("v", values, dtype=pl.String)).to_list()
        assert got == [None if value is None else uid2_hash(value) for value in values]

    check()


def test_repeating_column_is_hashed_per_distinct_value_at_default_thresholds() -> None:
    """A CRM's phone column (few numbers on many rows, some missing): the default path, byte for byte."""
    numbers = [None if i % 7 == 0 else f"+1415555{i % 97:04d}" for i in range(5_000)]
    got = uid2_hashes(pl.Series("p", numbers, dtype=pl.String)).to_list()
    assert got == [None if n is None else uid2_hash(n) for n in numbers]


# Websites dense in the characters the host steps cut at (`://`, `/?#`, `@`, `:port`, trailing dots), so that the
# scheme and port regexes, which run on every row without a literal-test guard, meet every shape.
_HOST_PIECES = st.sampled_from(
    [
        "http",
        "HTTPS",
        "://",
        "//",
        "/",
        "?",
        "#",
        "@",
        ":",
        "80",
        "8080",
        ".",
        "www.",
        "WWW.",
        "a",
        "Ex",
        "co",
        "ü",
        "-",
        " ",
    ]
)


def _batch_column(field: str, values: list[str | None]) -> dict[int, tuple[dict[str, object] | None, str | None]]:
    """{row: (record or None, reason or None)} of a one-column batch."""
    frame = pl.DataFrame({"__row": list(range(len(values))), "C": values}, schema={"__row": pl.Int64, "C": pl.String})
    result = normalize_batch(frame, {"C": field}, custom_types={})
    records = {row["__row"]: row for row in result.records.iter_rows(named=True)}
    reasons = {row: reason for row, reason in result.errors.select("__row", "reason").rows()}
    return {row: (records.get(row), reasons.get(row)) for row in range(len(values))}


@pytest.mark.parametrize("path", PATHS)
def test_batch_domains_equal_scalar_on_cut_characters(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    force_path(monkeypatch, path)

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(values=st.lists(st.one_of(st.none(), st.lists(_HOST_PIECES, max_size=10).map("".join)), max_size=30))
    def check(values: list[str | None]) -> None:
        for row, (record, reason) in _batch_column("domain", values).items():
            expected = normalize_domain(values[row])
            assert (record or {}).get("domain") == expected, values[row]
            assert (reason is not None) == (expected is None and trim(values[row]) is not None), values[row]

    check()


@pytest.mark.parametrize("path", PATHS)
def test_batch_fallbacks_fill_only_their_rows(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """IP addresses: IPv6 (the scalar fallback, written into its rows only) among IPv4 and junk, repeated, in
    any order: every row gets its own value."""
    force_path(monkeypatch, path)
    addresses = st.sampled_from(["::1", "2001:DB8::0001", "fe80::1%eth0", "1.2.3.4", "256.1.1.1", "zz::", ":", "x"])

    @settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(values=st.lists(st.one_of(st.none(), addresses, st.ip_addresses(v=6).map(str)), max_size=30))
    def check(values: list[str | None]) -> None:
        for row, (record, reason) in _batch_column("ip", values).items():
            expected = normalize_ip(values[row])
            assert (record or {}).get("ip") == expected, values[row]
            assert (reason is not None) == (expected is None and trim(values[row]) is not None), values[row]

    check()


@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.one_of(st.none(), st.text(), st.sampled_from(['say "hi"', "a\\b", "tab\there", "é ü"]))))
def test_custom_text_json_equals_json_dumps(values: list[str | None]) -> None:
    """Custom text in the record's `custom` JSON is exactly `json.dumps` of the trimmed value (UTF-8 kept)."""
    frame = pl.DataFrame({"__row": list(range(len(values))), "N": values}, schema={"__row": pl.Int64, "N": pl.String})
    result = normalize_batch(frame, {}, custom_types={"N": "text"}, custom_names={"N": "note"})
    records = {row["__row"]: row["custom"] for row in result.records.iter_rows(named=True)}
    failed = set(result.errors.get_column("__row").to_list())
    for row, value in enumerate(values):
        if row in failed:
            assert value is not None and "\x00" in value
            continue
        text = trim(value)
        expected = None if text is None else json.dumps({"note": text}, ensure_ascii=False, separators=(",", ":"))
        assert records[row] == expected, value


_PRINTABLE = st.characters(min_codepoint=0x20, max_codepoint=0x7E)


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(st.one_of(st.none(), st.text(alphabet=_PRINTABLE, max_size=12)), max_size=40),
    odd=st.one_of(st.none(), st.sampled_from(['say "hi"', "a\\b", "tab\there", "é ü", "del\x7f", "a\u2028b"])),
)
def test_custom_text_json_plain_and_escaped_batches_equal_json_dumps(values: list[str | None], odd: str | None) -> None:
    """The JSON of a batch whose text needs no escaping (printable ASCII without quotes or backslashes: the value
    is put between quotes without the JSON encoder) and of the same batch with one value that does (the encoder
    for the whole column): both exactly `json.dumps` of each trimmed value."""
    values = [v for v in values if v is None or ('"' not in v and "\\" not in v)] + ([odd] if odd else [])
    frame = pl.DataFrame({"__row": list(range(len(values))), "N": values}, schema={"__row": pl.Int64, "N": pl.String})
    assert normalize_batch_module._plain_json_text(frame["N"].drop_nulls().str.strip_chars()) is (odd is None)
    result = normalize_batch(frame, {}, custom_types={"N": "text"}, custom_names={"N": "note"})
    records = {row["__row"]: row["custom"] for row in result.records.iter_rows(named=True)}
    assert not result.errors.height
    for row, value in enumerate(values):
        text = trim(value)
        expected = None if text is None else json.dumps({"note": text}, ensure_ascii=False, separators=(",", ":"))
        assert records[row] == expected, value


@settings(max_examples=150, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.one_of(st.none(), st.sampled_from(["", " 12 ", "1,200", "x", "-3", "9" * 20])),
            st.one_of(st.none(), st.text(max_size=8)),
        ),
        max_size=30,
    )
)
def test_custom_json_object_of_two_columns_equals_json_dumps(rows: list[tuple[str | None, str | None]]) -> None:
    """The `custom` object of several custom columns: only the present values, in column order; null when none."""
    scores, notes = [r[0] for r in rows], [r[1] for r in rows]
    frame = pl.DataFrame(
        {"__row": list(range(len(rows))), "S": scores, "N": notes},
        schema={"__row": pl.Int64, "S": pl.String, "N": pl.String},
    )
    result = normalize_batch(
        frame, {}, custom_types={"S": "integer", "N": "text"}, custom_names={"S": "score", "N": "note"}
    )
    records = {row["__row"]: row["custom"] for row in result.records.iter_rows(named=True)}
    for row, (score, note) in enumerate(rows):
        (number, problem), (text, text_problem) = custom_value("integer", score), custom_value("text", note)
        if problem is not None or text_problem is not None:
            assert row not in records
            continue
        present = {key: value for key, value in (("score", number), ("note", text)) if value is not None}
        expected = json.dumps(present, ensure_ascii=False, separators=(",", ":")) if present else None
        assert records[row] == expected, (score, note)


def test_short_columns_use_datafusion_once_it_is_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    """hashlib only spares a process DataFusion's import: once loaded (by a long column), short columns use it too
    (a big import's phones, hashed per distinct value, are often under HASHLIB_MAX_ROWS a batch)."""
    engines: list[str] = []
    monkeypatch.setattr(normalize_module, "_hash_by_datafusion", lambda v: engines.append("datafusion") or v)
    monkeypatch.setattr(normalize_module, "_datafusion_loaded", lambda: False)
    uid2_hashes(pl.Series("v", ["a@b.co"], dtype=pl.String))
    monkeypatch.setattr(normalize_module, "_datafusion_loaded", lambda: True)
    uid2_hashes(pl.Series("v", ["a@b.co"], dtype=pl.String))
    assert engines == ["datafusion"]
