"""Field normalisation: UID2 official vectors, scalar rules, and the vectorised batch agreeing with the scalars."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audiences import normalize_batch as normalize_batch_module
from audiences.fields import FIELDS_BY_NAME
from audiences.normalize import (
    custom_value,
    normalize_country,
    normalize_domain,
    normalize_email,
    normalize_ip,
    normalize_maid,
    normalize_phone,
    normalize_value,
    parse_decimal,
    parse_integer,
    parse_rounded,
    trim,
    uid2_hash,
    uid2_hash_expr,
)
from audiences.normalize_batch import ERROR_SCHEMA, custom_values, normalize_batch
from tests.audiences.normalize_paths import PATHS, force_path

# integrations.md 1.4, first table (uid2docs gs-normalization-encoding.md): input -> (normalized, Base64 hash).
DOC_EMAIL_VECTORS = [
    ("USER@example.com", "user@example.com", "tMmiiTI7IaAcPpQPFQ65uMVCWH8av9jw4cwf/F5HVRQ="),
    ("MyEmail@example.com", "myemail@example.com", "FsGNM28LJQ8OLZB0Us65ZYp07NrovJSGTCMSKnLMJ6U="),
    ("MYEMAIL@example.com", "myemail@example.com", "FsGNM28LJQ8OLZB0Us65ZYp07NrovJSGTCMSKnLMJ6U="),
    ("My.Email@example.com", "my.email@example.com", "4itTvG+HEnTzpiqzejyu1yFPwU1nYhWpaiQvz62hyB8="),
    ("JANESAOIRSE@example.com", "janesaoirse@example.com", "1mcOepIAfxtf94Xx/IHlOqbT170GvfXEc83HKGwoS20="),
    ("JaneSaoirse@example.com", "janesaoirse@example.com", "1mcOepIAfxtf94Xx/IHlOqbT170GvfXEc83HKGwoS20="),
    ("jane.saoirse@example.com", "jane.saoirse@example.com", "sZZDLHuYmiypHIN5mVfFFdpT5sE6vyC3j+qU8RfpC/g="),
    ("Jane.Saoirse@example.com", "jane.saoirse@example.com", "sZZDLHuYmiypHIN5mVfFFdpT5sE6vyC3j+qU8RfpC/g="),
    ("JaneSaoirse+Work@example.com", "janesaoirse+work@example.com", "KKruSBUjDNO069iMUVImVQZm6RrAGZKeOtrD9mwogYA="),
    ("JANE.SAOIRSE@gmail.com", "janesaoirse@gmail.com", "ku4mBX7Z3qJTXWyLFB1INzkyR2WZGW4ANSJUiW21iI8="),
    ("Jane.Saoirse@gmail.com", "janesaoirse@gmail.com", "ku4mBX7Z3qJTXWyLFB1INzkyR2WZGW4ANSJUiW21iI8="),
    ("JaneSaoirse+Work@gmail.com", "janesaoirse@gmail.com", "ku4mBX7Z3qJTXWyLFB1INzkyR2WZGW4ANSJUiW21iI8="),
    ("user2@example.com", "user2@example.com", "KzsrnOhCq4tqbGFMsflgS7ig1QLRr0nFJrcrEIlOlbU="),
    ("refresh-optout@example.com", "refresh-optout@example.com", "NaNI8RU0bL1Jpp1jJLC5aJO/lchc6gGhgXQIAwJ7cV4="),
]
# Second table (uid2-client-python tests/test_normalization.py).
SDK_EMAIL_VECTORS = [
    ("TEst.TEST@Test.com ", "test.test@test.com", "dvECjPKZHya0/SIhSGwP0m8SgTv1vzLxPULUOsm880M="),
    ("test.test@gmail.com", "testtest@gmail.com", "LkLfFrut8Tc3h/fIvYDiBKSbaMiau/DtaLBPQYszdMw="),
    ("TEst.TEst+123@GMail.Com", "testtest@gmail.com", "LkLfFrut8Tc3h/fIvYDiBKSbaMiau/DtaLBPQYszdMw="),
    (" TEstTEst@GMail.Com  ", "testtest@gmail.com", "LkLfFrut8Tc3h/fIvYDiBKSbaMiau/DtaLBPQYszdMw="),
    ("test+test@test.com", "test+test@test.com", "rQ4yzdOz4uG8N54326QyZD6/JwqrXn4lmy34cVCojB8="),
    ("+test@test.com", "+test@test.com", "weFizOVVWKlLfyorbBU8oxYDv4HJtTZCPMyZ4THzUQE="),
    ("test+test@gmail.com", "test@gmail.com", "h5JGBrQTGorO7q6IaFMfu5cSqqB6XTp1aybOD11spnQ="),
    ("  testtest@test.com  ", "testtest@test.com", "d1Lr/s4GLLX3SvQVMoQdIMfbQPMAGZYry+2V+0pZlQg="),
    ("😊testtest@test.com", "😊testtest@test.com", "fAFEUqApQ0V/M9mLj/IO54CgKgtQuARKsOMqtFklD4k="),
    ("testtest@😊test.com", "testtest@😊test.com", "tcng5pttf7Y2z4ylZTROvIMw1+IVrMpR4D1KeXSrdiM="),
    ("testtest@test.com😊", "testtest@test.com😊", "0qI21FPLkuez/8RswfmircHPYz9Dtf7/Nch1rSWEQf0="),
]
EMAIL_VECTORS = DOC_EMAIL_VECTORS + SDK_EMAIL_VECTORS
SDK_INVALID_EMAILS = ["", " @", "@", "a@", "@b", "@b.com", "+", " ", "+@gmail.com", ".+@gmail.com", "a@ba@z.com"]
# The docs' "wrong" example: the hash of the un-normalised string, which normalisation must not produce.
WRONG_GMAIL_HASH = "VpLXEp5N1bj/V1WzjgZsC+FfuYdntAOywSVIO00FD/E="
PHONE_VECTORS = [
    ("1 (234) 567-8901", "+12345678901", "EObwtHBUqDNZR33LNSMdtt5cafsYFuGmuY4ZLenlue4="),
    ("+441234567890", "+441234567890", "Rx8SW4ZyKqbPypXmswDNuq0SPxStFXBTG/yvPns/2NQ="),
]


def batch(columns: dict[str, list[Any]]) -> pl.DataFrame:
    size = len(next(iter(columns.values())))
    frame = pl.DataFrame({name: pl.Series(values, dtype=pl.String) for name, values in columns.items()})
    return frame.with_columns(pl.Series("__row", range(2, size + 2), dtype=pl.Int64))


# --- Official vectors --------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "normalized", "hashed"), EMAIL_VECTORS)
def test_email_vectors_scalar(raw: str, normalized: str, hashed: str) -> None:
    assert normalize_email(raw) == normalized
    assert uid2_hash(normalized) == hashed
    assert len(hashed) == 44


def test_email_vectors_batch() -> None:
    result = normalize_batch(
        batch({"Email": [raw for raw, _, _ in EMAIL_VECTORS]}), {"Email": "email"}, custom_types={}
    )
    assert result.errors.height == 0
    records = result.records.sort("__row")
    assert records.get_column("email_normalized").to_list() == [n for _, n, _ in EMAIL_VECTORS]
    assert records.get_column("email_sha256").to_list() == [h for _, _, h in EMAIL_VECTORS]
    assert WRONG_GMAIL_HASH not in records.get_column("email_sha256").to_list()


def test_phone_vectors_scalar_and_batch() -> None:
    for raw, e164, hashed in PHONE_VECTORS:
        assert normalize_phone(raw) == e164
        assert uid2_hash(e164) == hashed
    result = normalize_batch(
        batch({"Phone": [raw for raw, _, _ in PHONE_VECTORS]}), {"Phone": "phone"}, custom_types={}
    )
    assert result.errors.height == 0
    assert result.records.get_column("phone_e164").to_list() == [e for _, e, _ in PHONE_VECTORS]
    assert result.records.get_column("phone_sha256").to_list() == [h for _, _, h in PHONE_VECTORS]


@pytest.mark.parametrize("raw", SDK_INVALID_EMAILS)
def test_sdk_invalid_emails(raw: str) -> None:
    assert normalize_email(raw) is None


def test_sdk_invalid_emails_batch() -> None:
    result = normalize_batch(batch({"Email": SDK_INVALID_EMAILS}), {"Email": "email"}, custom_types={})
    assert result.records.height == 2  # "" and " " are empty, not errors
    assert result.records.get_column("email").null_count() == 2
    assert result.errors.height == len(SDK_INVALID_EMAILS) - 2
    assert set(result.errors.get_column("reason")) == {"invalid email address"}


# --- Scalar rules ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    ["jane doe@example.com", "jane@example", "jane@@example.com", "jane@example..com", "<jane@example.com>",
     "jane@.example.com", "a,b@example.com", "x" * 250 + "@example.com"],
)  # fmt: skip
def test_email_syntax_check(raw: str) -> None:
    assert normalize_email(raw) is None


def test_googlemail_is_not_gmail() -> None:
    assert normalize_email("Jane.Doe+x@googlemail.com") == "jane.doe+x@googlemail.com"


@pytest.mark.parametrize(
    ("raw", "country", "expected"),
    [
        ("(234) 567-8901", "US", "+12345678901"),
        ("+1 234.567.8901", "GB", "+12345678901"),
        ("234-567-8901 ext. 12", "US", "+12345678901"),
        ("0491 570 006", "AU", "+61491570006"),
        ("020 7946 0958", "GB", "+442079460958"),
        ("+44 20 7946 0958", "US", "+442079460958"),
        ("555-5555", "US", None),  # 7 digits: no area code
        ("(123) 456-7890", "US", None),  # NANP area codes never start with 1
        ("+00000000002", "US", None),
        ("not a phone", "US", None),
        ("", "US", None),
    ],
)
def test_phone(raw: str, country: str, expected: str | None) -> None:
    assert normalize_phone(raw, country) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://www.Example.com:443/about?x=1", "example.com"),
        ("http://shop.example.co.uk/", "shop.example.co.uk"),
        ("www.example.com.", "example.com"),
        ("Example.COM", "example.com"),
        ("jane@Acme.io", "acme.io"),
        ("//cdn.example.com/x", "cdn.example.com"),
        ("ftp://user:pw@files.example.org:21/pub", "files.example.org"),
        ("bücher.de", "bücher.de"),
        ("xn--bcher-kva.de", "xn--bcher-kva.de"),
        ("localhost", None),
        ("192.168.1.1", None),
        ("exa mple.com", None),
        ("-bad-.com", None),
        ("", None),
    ],
)
def test_domain(raw: str, expected: str | None) -> None:
    assert normalize_domain(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("US", "US"), ("us", "US"), ("USA", "US"), ("U.S.A.", "US"), ("United States", "US"),
        ("United States of America", "US"), ("UK", "GB"), ("Great Britain", "GB"), ("GBR", "GB"),
        ("Germany", "DE"), ("deu", "DE"), ("Côte d'Ivoire", "CI"), ("Ivory Coast", "CI"),
        ("Korea, Republic of", "KR"), ("Trinidad & Tobago", "TT"), ("the Netherlands", "NL"),
        ("Narnia", None), ("XX", None), ("", None),
    ],
)  # fmt: skip
def test_country(raw: str, expected: str | None) -> None:
    assert normalize_country(raw) == expected


def test_importing_the_normalisers_leaves_phonenumbers_geocoding_data_unloaded() -> None:
    """Country names come from phonenumbers' geocoding package (~0.35 CPU-s of imports) and SHA-256 from DataFusion
    (~0.3 CPU-s): loaded when a country is first read or a value first hashed, not by every process that imports
    the importer (each manage.py command, worker, server)."""
    import subprocess
    import sys

    from tests.cli import ROOT

    probe = (
        "import sys; import audiences.normalize_batch; loaded = 'phonenumbers.geodata' in sys.modules; "
        "hashing = 'datafusion' in sys.modules; "
        "from audiences.normalize import normalize_country; print(loaded, hashing, normalize_country('United Kingdom'))"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False", "GB"]


@pytest.mark.parametrize(
    ("raw", "decimal", "integer"),
    [
        ("1234", 1234.0, 1234),
        ("1,234,567", 1234567.0, 1234567),
        ("1 234 567", 1234567.0, 1234567),
        ("1\u00a0234\u00a0567", 1234567.0, 1234567),
        ("1'234'567", 1234567.0, 1234567),
        ("1.234.567", 1234567.0, 1234567),
        ("1.234.567,89", 1234567.89, None),
        ("1,234.5", 1234.5, None),
        ("1 234,5", 1234.5, None),
        ("1.234", 1.234, None),  # one dot group: a decimal point
        ("1,5", 1.5, None),
        ("0,123", 0.123, None),
        ("$1,200", 1200.0, 1200),
        ("€ 12", 12.0, 12),
        ("12 EUR", 12.0, 12),
        ("USD 5M", 5_000_000.0, 5_000_000),
        ("2.5k", 2500.0, 2500),
        ("1.1k", 1.1 * 1000, 1100),
        ("3bn", 3e9, 3_000_000_000),
        ("-42", -42.0, -42),
        ("$-42", -42.0, -42),
        ("12.0", 12.0, 12),
        (".5", 0.5, None),
        ("1234,567", None, None),  # ambiguous grouping
        ("1,23,456", None, None),
        ("abc", None, None),
        ("12abc", None, None),
        ("--5", None, None),
        ("- $-5", None, None),
        ("1e5", None, None),
        ("nan", None, None),
        ("", None, None),
    ],
)
def test_numbers(raw: str, decimal: float | None, integer: int | None) -> None:
    assert parse_decimal(raw) == decimal
    assert parse_integer(raw) == integer


def test_integer_range_and_rounding() -> None:
    assert parse_integer("9223372036854775807") == 2**63 - 1
    assert parse_integer("9223372036854775808") is None
    assert parse_integer("3000000000", maximum=2**31 - 1) is None
    assert parse_rounded("2.5") == 2  # half to even
    assert parse_rounded("3.5") == 4
    assert parse_rounded("$1,234,567.49") == 1234567
    assert parse_rounded("1" * 30) is None


def test_maid_and_ip() -> None:
    assert normalize_maid("6D92078A-8246-4BA4-AE5B-76104861E7DC") == "6d92078a-8246-4ba4-ae5b-76104861e7dc"
    assert normalize_maid("6d92078a82464ba4ae5b76104861e7dc") == "6d92078a-8246-4ba4-ae5b-76104861e7dc"
    assert normalize_maid("00000000-0000-0000-0000-000000000000") is None
    assert normalize_maid("not-a-uuid") is None
    assert normalize_ip("192.168.0.1") == "192.168.0.1"
    assert normalize_ip("2001:DB8::0:1") == "2001:db8::1"
    assert normalize_ip("01.2.3.4") is None
    assert normalize_ip("256.1.1.1") is None


def test_custom_values() -> None:
    assert custom_value("integer", "1,200") == (1200, None)
    assert custom_value("integer", "1.5") == (None, "not a whole number")
    assert custom_value("decimal", "x") == (None, "not a number")
    assert custom_value("boolean", "Yes") == (True, None)
    assert custom_value("boolean", "maybe") == (None, "not a boolean")
    assert custom_value("date", "2024/02/29") == (date(2024, 2, 29), None)
    assert custom_value("date", "2023-02-29") == (None, "not a date (expected YYYY-MM-DD)")
    assert custom_value("text", "  hi  ") == ("hi", None)
    assert custom_value("text", "a\x00b") == (None, "contains a NUL character")
    assert custom_value("text", "   ") == (None, None)


# --- The batch ------------------------------------------------------------------------------------


def test_batch_errors_carry_row_column_and_reason() -> None:
    df = batch(
        {
            "E-mail": ["jane@example.com", "bad", "joe@example.com", None],
            "Employees": ["1,200", "12", "many", "5"],
            "Country": ["USA", "uk", "Narnia", "Germany"],
            "Score": ["1", "2", "3", "x"],
        }
    )
    result = normalize_batch(
        df,
        {"E-mail": "email", "Employees": "employee_count", "Country": "country"},
        custom_types={"Score": "integer"},
    )
    assert dict(result.errors.schema) == ERROR_SCHEMA
    assert result.errors.rows() == [
        (3, "E-mail", "email", "bad", "invalid email address"),
        (4, "Employees", "employee_count", "many", "not a number"),
        (4, "Country", "country", "Narnia", "unknown country"),
        (5, "Score", "score", "x", "not a number"),
    ]
    records = result.records
    assert records.get_column("__row").to_list() == [2]
    assert records.row(0, named=True) == {
        "__row": 2,
        "email": "jane@example.com",
        "employee_count": 1200,
        "country": "US",
        "email_normalized": "jane@example.com",
        "email_sha256": uid2_hash("jane@example.com"),
        "custom": '{"score":1}',
    }
    assert records.schema["employee_count"] == pl.Int32


def test_batch_types_custom_json_and_long_values() -> None:
    df = batch(
        {
            "Revenue": ["$1,234,567.50", "2.5M", ""],
            "Company": ["=cmd|' /C calc'!A0", "Acme", "x" * 500],
            "Notes": ['said "no"\nthen left', None, "ok"],
            "Active": ["yes", "no", None],
            "Since": ["2024-01-05", None, "2020/12/31"],
            "Ratio": ["0.5", "1,5", None],
        }
    )
    result = normalize_batch(
        df,
        {"Revenue": "revenue", "Company": "company_name"},
        custom_types={"Notes": "text", "Active": "boolean", "Since": "date", "Ratio": "decimal"},
    )
    assert result.errors.rows() == [(4, "Company", "company_name", "x" * 200, "too long (more than 300 characters)")]
    records = result.records
    assert records.schema["revenue"] == pl.Int64
    assert records.get_column("revenue").to_list() == [1234568, 2500000]
    assert records.get_column("company_name").to_list() == ["=cmd|' /C calc'!A0", "Acme"]  # data, not escaped
    custom = [json.loads(value) for value in records.get_column("custom")]
    assert custom == [
        {"notes": 'said "no"\nthen left', "active": True, "since": "2024-01-05", "ratio": 0.5},
        {"active": False, "ratio": 1.5},
    ]


def test_batch_without_custom_values_has_null_custom() -> None:
    result = normalize_batch(
        batch({"City": ["Paris", " "], "X": [None, " "]}), {"City": "city"}, custom_types={"X": "text"}
    )
    assert result.records.get_column("custom").to_list() == [None, None]
    assert result.records.get_column("city").to_list() == ["Paris", None]


def test_batch_fallbacks_ipv6_non_ascii_and_foreign_phones() -> None:
    df = batch(
        {
            "IP": ["1.2.3.4", "2001:DB8::1", "1.2.3", "::ffff:1.2.3.4"],
            "Email": ["JÖRG@Example.com", "ÉLISE@gmail.com", "a@b.com", "x y@z.com"],
            "Phone": ["020 7946 0958", "+61 491 570 006", "+1 (234) 567-8901", "12"],
        }
    )
    result = normalize_batch(
        df, {"IP": "ip", "Email": "email", "Phone": "phone"}, custom_types={}, default_country="GB"
    )
    assert result.errors.select("__row", "column").rows() == [(4, "IP"), (5, "Email"), (5, "Phone")]
    records = result.records
    assert records.get_column("ip").to_list() == ["1.2.3.4", "2001:db8::1"]
    # Only A-Z are lowercased (as the UID2 SDK does).
    assert records.get_column("email_normalized").to_list() == ["jÖrg@example.com", "Élise@gmail.com"]
    assert records.get_column("phone_e164").to_list() == ["+442079460958", "+61491570006"]


def test_batch_rejects_bad_arguments() -> None:
    df = batch({"A": ["x"], "B": ["y"]})
    with pytest.raises(ValueError, match="not a canonical field"):
        normalize_batch(df, {"A": "email_sha256"}, custom_types={})
    with pytest.raises(ValueError, match="mapped from both"):
        normalize_batch(df, {"A": "email", "B": "email"}, custom_types={})
    with pytest.raises(ValueError, match="unknown custom type"):
        normalize_batch(df, {}, custom_types={"A": "money"})
    with pytest.raises(ValueError, match="not in the batch"):
        normalize_batch(df, {"C": "email"}, custom_types={})


def test_batch_empty_frame() -> None:
    df = batch({"Email": []})
    result = normalize_batch(df, {"Email": "email"}, custom_types={})
    assert result.records.height == 0
    assert result.errors.height == 0
    assert result.records.columns == ["__row", "email", "email_normalized", "email_sha256", "custom"]


# --- Property tests: the batch agrees with the scalar functions -----------------------------------------

_LETTERS = "abcXYZ09._-+@ '\u00e9\u00c9\u00df\u0130\u212a\u00a0\t/:?#$€,"
_dirt = st.text(alphabet=_LETTERS, max_size=24)
_spaces = st.sampled_from(["", " ", "  ", "\t", "\u00a0", "\ufeff"])


@st.composite
def _emails(draw: st.DrawFn) -> str:
    local = draw(st.text(alphabet="abcXYZ.+_-\u00e9", min_size=0, max_size=10))
    domain = draw(
        st.sampled_from(["gmail.com", "GMail.Com", "example.com", "ex..com", "b", "😊test.com", "googlemail.com"])
    )
    core = draw(st.sampled_from([f"{local}@{domain}", local, f"{local}@@{domain}", f"{local} x@{domain}"]))
    return draw(_spaces) + core + draw(_spaces)


@st.composite
def _phones(draw: st.DrawFn) -> str:
    digits = draw(st.text(alphabet="0123456789", min_size=0, max_size=13))
    prefix = draw(st.sampled_from(["", "+", "+1", "1", "+44", "0", "00", "("]))
    separators = draw(st.lists(st.sampled_from([" ", "-", ".", "(", ")", "/", "x", "ext"]), max_size=3))
    cut = [digits[i : i + 3] for i in range(0, len(digits), 3)]
    body = "".join(part + (separators[i] if i < len(separators) else "") for i, part in enumerate(cut))
    return draw(_spaces) + prefix + body + draw(_spaces)


@st.composite
def _domains(draw: st.DrawFn) -> str:
    scheme = draw(st.sampled_from(["", "http://", "HTTPS://", "//", "ftp://u:p@", "mailto:"]))
    www = draw(st.sampled_from(["", "www.", "WWW.", "www2."]))
    name = draw(st.text(alphabet="abcXYZ09-_.\u00fc\u00c9 ", min_size=0, max_size=12))
    tld = draw(st.sampled_from([".com", ".co.uk", "", ".", ".123", ".de."]))
    tail = draw(st.sampled_from(["", "/", "/path?q=1", ":8080", ":80/x", "#frag", "@other.com"]))
    return draw(_spaces) + scheme + www + name + tld + tail + draw(_spaces)


@st.composite
def _numbers(draw: st.DrawFn) -> str:
    digits = draw(st.text(alphabet="0123456789", min_size=0, max_size=12))
    seps = draw(st.lists(st.sampled_from([",", ".", " ", "'", "\u00a0"]), max_size=4))
    positions = sorted(draw(st.lists(st.integers(0, max(len(digits), 0)), max_size=len(seps))))
    body = digits
    for position, sep in zip(reversed(positions), seps, strict=False):
        body = body[:position] + sep + body[position:]
    sign = draw(st.sampled_from(["", "-", "+", "- "]))
    currency = draw(st.sampled_from(["", "$", "€ ", "USD ", "usd"]))
    suffix = draw(st.sampled_from(["", "k", "K", "M", "mm", "bn", " B", "%"]))
    order = draw(st.booleans())
    core = sign + currency + body + suffix if order else currency + sign + body + suffix
    return draw(_spaces) + core + draw(_spaces)


_countries = st.one_of(
    st.sampled_from(["US", "usa", "U.S.A.", "United Kingdom", "uk", "DEU", "Côte d'Ivoire", "Narnia", "the USA", "fr"]),
    _dirt,
).map(lambda value: value.upper() if len(value) % 3 == 0 else value)
_maids = st.one_of(st.uuids().map(str), st.uuids().map(lambda u: u.hex.upper()), _dirt, st.just("0" * 32))
_ips = st.one_of(st.ip_addresses().map(str), st.sampled_from(["01.2.3.4", "1.2.3", "::1", "zz::", "1.2.3.4:80"]), _dirt)
_postal = st.one_of(st.sampled_from(["sw1a 1aa", "02134", "K1A 0B1", "12345-6789", "ab--", " -1"]), _dirt)

FIELD_STRATEGIES: dict[str, st.SearchStrategy[str]] = {
    "email": st.one_of(_emails(), _dirt),
    "phone": st.one_of(_phones(), _dirt),
    "domain": st.one_of(_domains(), _dirt),
    "country": _countries,
    "revenue": st.one_of(_numbers(), _dirt),
    "employee_count": st.one_of(_numbers(), _dirt),
    "maid": _maids,
    "maid_type": st.sampled_from(["IDFA", "gaid", "Android", "ios", "x", "", " GAID "]),
    "ip": _ips,
    "postal_code": _postal,
    "first_name": st.one_of(_dirt, st.just("a\x00b"), st.just("x" * 201)),
}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("field", sorted(FIELD_STRATEGIES))
def test_batch_agrees_with_scalar(field: str, path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # All evaluation paths: every row, distinct values joined back, distinct values coded and gathered back (forced
    # here for small batches).
    force_path(monkeypatch, path)

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(values=st.lists(st.one_of(st.none(), FIELD_STRATEGIES[field]), min_size=1, max_size=25))
    def check(values: list[str | None]) -> None:
        for country in ("US", "GB"):
            result = normalize_batch(
                batch({"Source": values}), {"Source": field}, custom_types={}, default_country=country
            )
            by_row = {row["__row"]: row for row in result.records.iter_rows(named=True)}
            reasons = {row[0]: row[1] for row in result.errors.select("__row", "reason").rows()}
            for row_number, raw in enumerate(values, start=2):
                expected, reason = normalize_value(field, raw, default_country=country)
                if reason is not None:
                    assert reasons.get(row_number) == reason, (raw, country)
                    assert row_number not in by_row
                    continue
                assert row_number not in reasons, (raw, reasons.get(row_number))
                record = by_row[row_number]
                for column, value in expected.items():
                    assert record[column] == value, (raw, column, record[column], value)
                if not expected:
                    assert record[field] is None

    check()


@pytest.mark.parametrize("type_name", ["integer", "decimal", "boolean", "date", "text"])
def test_custom_values_agree_with_scalar(type_name: str) -> None:
    strategy = st.one_of(
        st.none(), _numbers(), _dirt, st.sampled_from(["yes", "N", "true", "2024-02-29", "2023/02/29", "1999-12-31"])
    )

    @settings(max_examples=80, deadline=None)
    @given(values=st.lists(strategy, min_size=1, max_size=25))
    def check(values: list[str | None]) -> None:
        frame = custom_values(pl.Series(values, dtype=pl.String), type_name)
        for raw, (value, reason) in zip(values, frame.iter_rows(), strict=True):
            expected_value, expected_reason = custom_value(type_name, raw)
            assert reason == expected_reason, raw
            if expected_reason is None:
                assert value == expected_value, raw

    check()


def test_field_dtypes_match_catalogue() -> None:
    values = {"email": "a@b.com", "phone": "(234) 567-8901", "revenue": "1", "employee_count": "2", "country": "US"}
    df = batch({name: [value] for name, value in values.items()})
    records = normalize_batch(df, {name: name for name in values}, custom_types={}).records
    for column, dtype in records.schema.items():
        if column in FIELDS_BY_NAME:
            assert dtype == FIELDS_BY_NAME[column].dtype, column


def test_trim_matches_polars_default_strip() -> None:
    candidates = [chr(c) for c in range(0x3100) if chr(c).isspace()] + ["\u200b", "\ufeff", "\u180e"]
    stripped = pl.Series([f"{c}a{c}" for c in candidates]).str.strip_chars().to_list()
    assert [trim(f"{c}a{c}") for c in candidates] == [value or None for value in stripped]


def test_headers_that_look_like_internal_columns() -> None:
    df = batch({"__m0_t": ["a@b.com", "bad"], "__c0_raw": ["1", "x"], "custom": ["c", None]})
    result = normalize_batch(df, {"__m0_t": "email"}, custom_types={"__c0_raw": "integer", "custom": "text"})
    assert result.records.get_column("email").to_list() == ["a@b.com"]
    assert json.loads(result.records.get_column("custom").item()) == {"c0_raw": 1, "custom_2": "c"}
    assert result.errors.select("column", "value").rows() == [("__m0_t", "bad"), ("__c0_raw", "x")]


def test_distinct_value_path_equals_per_row_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """A dirty CRM-like batch (repeating and unique columns, custom JSON, fallbacks): every path, same frames."""
    from bench.bench_normalize import CUSTOM_TYPES, MAPPING, make_batch

    frame = make_batch(6_000)
    force_path(monkeypatch, "per-row")
    per_row = normalize_batch(frame, MAPPING, custom_types=CUSTOM_TYPES)
    assert per_row.errors.height > 0 and per_row.records.height > 0
    for path in ("per-distinct-value", "coded"):
        force_path(monkeypatch, path)
        distinct = normalize_batch(frame, MAPPING, custom_types=CUSTOM_TYPES)
        assert distinct.records.equals(per_row.records), path
        assert distinct.errors.equals(per_row.errors), path
    # The default thresholds: the few-valued columns coded, the rest per distinct value or per row.
    monkeypatch.undo()
    assert normalize_batch(frame, MAPPING, custom_types=CUSTOM_TYPES).records.equals(per_row.records)


def test_few_valued_columns_are_coded_at_default_thresholds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Countries (with nulls and blanks) take the categorical path by default and give the per-row result."""
    countries = ["US", None, "uk", "", "Narnia", " Germany ", "DEU"] * 400
    frame = pl.DataFrame(
        {"__row": range(len(countries)), "Country": countries}, schema={"__row": pl.Int64, "Country": pl.String}
    )
    coded: list[str] = []
    real = normalize_batch_module._evaluate_coded

    def spy(plan: Any, p: str, *rest: Any) -> pl.DataFrame:
        coded.append(p)
        return real(plan, p, *rest)

    monkeypatch.setattr(normalize_batch_module, "_evaluate_coded", spy)
    result = normalize_batch(frame, {"Country": "country"}, custom_types={})
    assert coded == ["__m0_"]
    force_path(monkeypatch, "per-row")
    per_row = normalize_batch(frame, {"Country": "country"}, custom_types={})
    assert result.records.equals(per_row.records) and result.errors.equals(per_row.errors)
    assert result.errors.height == 400 and result.records.height == len(countries) - 400


def test_uid2_hash_column_equals_scalar_on_chunked_sliced_and_null_columns() -> None:
    """The column hash (SHA-256 in polars, Base64 over the Arrow buffers) is byte-identical to `uid2_hash`."""
    values = ["user@example.com", None, "", "é@ü.de", "x" * 300, "+12345678901"]
    chunked = pl.concat([pl.DataFrame({"v": values[:3]}), pl.DataFrame({"v": values[3:]})], rechunk=False)
    for frame in (chunked, chunked.slice(1, 4), chunked.filter(pl.col("v").is_null())):
        got = frame.select(uid2_hash_expr(pl.col("v")))["v"].to_list()
        assert got == [None if v is None else uid2_hash(v) for v in frame["v"].to_list()]
