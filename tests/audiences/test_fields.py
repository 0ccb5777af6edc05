"""The canonical field catalogue, header -> field proposals, header clean-up, custom names and types."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from audiences.fields import (
    CANONICAL_FIELDS,
    DERIVED_FIELDS,
    FIELDS,
    FIELDS_BY_NAME,
    custom_field_name,
    custom_field_names,
    infer_custom_types,
    propose_mapping,
    unique_headers,
)

CONTRACT_FIELDS = [
    "email",
    "phone",
    "first_name",
    "last_name",
    "job_title",
    "company_name",
    "domain",
    "industry",
    "revenue",
    "employee_count",
    "country",
    "region",
    "city",
    "postal_code",
    "maid",
    "maid_type",
    "ip",
]


def test_catalogue_covers_the_contract() -> None:
    assert list(CANONICAL_FIELDS) == CONTRACT_FIELDS
    assert set(DERIVED_FIELDS) == {"email_normalized", "email_sha256", "phone_e164", "phone_sha256"}
    assert FIELDS_BY_NAME["revenue"].dtype == pl.Int64
    assert FIELDS_BY_NAME["revenue"].pg_type == "bigint"
    assert FIELDS_BY_NAME["employee_count"].dtype == pl.Int32
    assert FIELDS_BY_NAME["employee_count"].pg_type == "integer"
    assert FIELDS_BY_NAME["maid_type"].choices == ("IDFA", "GAID")
    for spec in FIELDS:
        assert spec.label and spec.kind and spec.pg_type
        if spec.name not in ("revenue", "employee_count"):
            assert spec.dtype == pl.String, spec.name


@pytest.mark.parametrize(
    ("header", "field"),
    [
        ("Email", "email"), ("E-mail", "email"), ("Email Address", "email"), ("EMAIL_ADDR", "email"),
        ("Work Email", "email"), ("e_mail", "email"), ("EmailAddress", "email"), ("Personal Email Address", "email"),
        ("Phone", "phone"), ("Phone Number", "phone"), ("Mobile", "phone"), ("Cell Phone", "phone"),
        ("HQ Phone", "phone"), ("First", "first_name"), ("First Name", "first_name"), ("firstName", "first_name"),
        ("Given name", "first_name"), ("Surname", "last_name"), ("Last_Name", "last_name"), ("Title", "job_title"),
        ("Job Title", "job_title"), ("Company", "company_name"), ("Account Name", "company_name"),
        ("Company Name", "company_name"), ("Website", "domain"), ("Company Domain", "domain"), ("URL", "domain"),
        ("Web Site", "domain"), ("Industry", "industry"), ("Annual Revenue", "revenue"), ("Revenue (USD)", "revenue"),
        ("Employees", "employee_count"), ("Employee Count", "employee_count"), ("# of employees", "employee_count"),
        ("Number of Employees", "employee_count"), ("Country", "country"), ("Country Code", "country"),
        ("State", "region"), ("Province", "region"), ("State/Province", "region"), ("City", "city"),
        ("Zip", "postal_code"), ("ZIP Code", "postal_code"), ("Postcode", "postal_code"), ("Postal Code", "postal_code"),
        ("IDFA", "maid"), ("GAID", "maid"), ("Advertising ID", "maid"), ("MAID", "maid"), ("MAID Type", "maid_type"),
        ("IP Address", "ip"), ("IP", "ip"),
    ],
)  # fmt: skip
def test_synonyms(header: str, field: str) -> None:
    assert propose_mapping([header]) == {header: field}


@pytest.mark.parametrize(
    "header",
    ["Notes", "Lead Score", "Email Opt-in", "Phone Type", "Email SHA256", "Created Date", "Name", "", "Account ID"],
)
def test_non_fields_stay_custom(header: str) -> None:
    assert propose_mapping([header]) == {header: None}


def test_each_field_proposed_once_exact_beats_keyword() -> None:
    headers = ["Secondary Email", "Email", "E-mail", "Work Phone", "Mobile", "Website", "Company Domain"]
    assert propose_mapping(headers) == {
        "Secondary Email": None,  # keyword match loses to the exact synonym further right
        "Email": "email",
        "E-mail": None,  # same strength: the first one wins
        "Work Phone": "phone",
        "Mobile": None,
        "Website": "domain",
        "Company Domain": None,
    }


def test_unique_headers() -> None:
    assert unique_headers(["Email", "email", "Email", " Email ", "", None, "Email (2)", "__row"]) == [
        "Email",
        "email",
        "Email (2)",
        "Email (3)",
        "column_5",
        "column_6",
        "Email (2) (2)",
        "__row (2)",
    ]


@given(st.lists(st.one_of(st.none(), st.text(max_size=8)), max_size=30))
def test_unique_headers_are_unique(headers: list[str | None]) -> None:
    result = unique_headers(headers)
    assert len(result) == len(headers)
    assert len(set(result)) == len(result)
    assert all(name.strip() for name in result)


def test_custom_field_names() -> None:
    assert custom_field_name("Lead Score (%)") == "lead_score"
    assert custom_field_name("2024 Spend") == "f_2024_spend"
    assert custom_field_name("Ünïcödé Näme") == "unicode_name"
    assert custom_field_name("!!!") == "field"
    assert custom_field_name("customFieldName") == "custom_field_name"
    assert len(custom_field_name("x" * 300)) == 63
    assert custom_field_names(["Lead Score", "lead_score", "LEAD-SCORE", "custom"]) == {
        "Lead Score": "lead_score",
        "lead_score": "lead_score_2",
        "LEAD-SCORE": "lead_score_3",
        "custom": "custom_2",  # `custom` is the records' JSON column
    }


@given(st.lists(st.text(max_size=12), max_size=20, unique=True))
def test_custom_field_names_are_safe_and_unique(headers: list[str]) -> None:
    names = list(custom_field_names(headers).values())
    assert len(set(names)) == len(names)
    for name in names:
        assert name[0].isalpha() and len(name) <= 63
        assert all(c.isascii() and (c.isalnum() or c == "_") for c in name)
        assert name == name.lower()


def test_infer_custom_types() -> None:
    df = pl.DataFrame(
        {
            "Score": ["1", "2", " 1,200 ", None, ""],
            "Ratio": ["0.5", "1", "2.25", None, None],
            "Active": ["yes", "No", "TRUE", "f", None],
            "Since": ["2024-01-05", "2023/12/31", None, None, None],
            "Notes": ["call", "2", None, None, None],
            "Empty": [None, " ", "", None, None],
            "Flags": ["0", "1", "1", "0", None],
        }
    )
    assert infer_custom_types(df, df.columns) == {
        "Score": "integer",
        "Ratio": "decimal",
        "Active": "boolean",
        "Since": "date",
        "Notes": "text",
        "Empty": "text",
        "Flags": "integer",
    }


def test_infer_custom_types_uses_a_sample() -> None:
    df = pl.DataFrame({"N": ["1"] * 20 + ["x"]})
    assert infer_custom_types(df, ["N"], sample=20) == {"N": "integer"}
    assert infer_custom_types(df, ["N"]) == {"N": "text"}
