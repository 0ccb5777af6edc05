"""Issue 17: the UID2 hashes (`email_sha256`, `phone_sha256`) are not stored; every reader derives them from
`email_normalized` / `phone_e164`. The SQL expression (and migration 0009's `uid2_hash(text)`) equals Python's
`base64(sha256(utf8))` on any text, and the real surfaces (an import's members export, `read_version`, the builder
cache, the import report) give exactly the hashes Python computes from the stored base values."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from django.db import connection
from django_tenants.utils import schema_context

from audiences import cache, records
from audiences.models import Audience, AudienceImport
from audiences.normalize import uid2_hash
from tests.audiences.test_import import run, write

pytestmark = pytest.mark.django_db

TEXTS = [
    "ann@example.com",
    "+14155550101",
    "josé@exämple.com",  # non-ASCII: UTF-8 bytes
    "日本語@例え.jp",
    "😀@emoji.test",
    "a\\b@example.com",  # a backslash
    "\\\\",  # two
    "\\x41",  # a literal backslash-x-4-1, not "A"
    "\\000",  # a literal backslash and three zeros, not NUL
    "tab\there",
    "new\nline",
    "quote'and\"double",
    "",
    " ",
]


@pytest.mark.parametrize("value", TEXTS)
def test_the_sql_hash_equals_python_on_any_text(value: str, acme: Any) -> None:
    with schema_context(acme.schema_name), connection.cursor() as cursor:
        cursor.execute(f"SELECT uid2_hash(%s), {records.uid2_hash_sql('%s')}", [value, value])
        function, inlined = cursor.fetchone()
    assert function == inlined == uid2_hash(value)


def test_the_sql_hash_of_null_is_null(acme: Any) -> None:
    with schema_context(acme.schema_name), connection.cursor() as cursor:
        cursor.execute(f"SELECT uid2_hash(NULL), {records.uid2_hash_sql('NULL::text')}")
        assert cursor.fetchone() == (None, None)


def test_the_function_is_immutable_and_the_columns_are_gone(acme: Any) -> None:
    with schema_context(acme.schema_name), connection.cursor() as cursor:
        cursor.execute("SELECT provolatile FROM pg_proc WHERE proname = 'uid2_hash'")
        assert {row[0] for row in cursor.fetchall()} == {"i"}
        cursor.execute(
            "SELECT count(*) FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND table_name = 'audiences_record' AND column_name IN ('email_sha256', 'phone_sha256')"
        )
        assert cursor.fetchone()[0] == 0


LINES = [
    "Email,Phone,Company",
    "Ann@Example.com,415-555-0101,Acme",
    "jane.doe+news@gmail.com,,Beta",
    "josé@exämple.com,(415) 555-0102,Gamma",
    ",+44 20 7946 0958,Delta",
    "nobody@example.org,,Eps",
    ",,Zeta",
]


def test_every_surface_derives_the_hashes_python_computes(tmp_path: Path, login: Any, acme_marketer: Any) -> None:
    result = run(write(tmp_path, "derived.csv", LINES), name="Derived hashes")
    with schema_context("org_acme"):
        audience = Audience.objects.get(pk=result["audience_id"])
        stored = records.read_version(audience.current_version_id, ["row", "email_normalized", "phone_e164"])
        read = records.read_version(audience.current_version_id)
        report = AudienceImport.objects.filter(audience=audience).latest("pk").quality
    assert stored.height == result["rows_loaded"] >= 5
    expected = {
        row["row"]: (
            None if row["email_normalized"] is None else uid2_hash(row["email_normalized"]),
            None if row["phone_e164"] is None else uid2_hash(row["phone_e164"]),
        )
        for row in stored.to_dicts()
    }
    assert any(e is not None for e, _ in expected.values()) and any(p is not None for _, p in expected.values())
    assert any(e is None for e, _ in expected.values()) and any(p is None for _, p in expected.values())
    # read_version (exports, merges, tests)
    assert {r["row"]: (r["email_sha256"], r["phone_sha256"]) for r in read.to_dicts()} == expected
    # the members export (the API's machine file), in row order
    response = login(acme_marketer).get(f"/o/acme/api/v1/audiences/{audience.pk}/members?format=csv")
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    ordered = [expected[row] for row in sorted(expected)]
    assert [(r["email_sha256"] or None, r["phone_sha256"] or None) for r in rows] == ordered
    # the builder cache (derived in polars), one person per record here
    cache.invalidate()
    try:
        with schema_context("org_acme"):
            entry = cache.build()
            frame = entry.frame.select("email_normalized", "email_sha256", "phone_e164", "phone_sha256")
        got = set(frame.select(pl.all().cast(pl.String)).select("email_sha256", "phone_sha256").rows())
        assert set(expected.values()) <= got
    finally:
        cache.invalidate()
    # the import report counts a hash wherever its base is
    filled = report["completeness"]
    assert filled.get("email_sha256") == filled.get("email_normalized")
    assert filled.get("phone_sha256") == filled.get("phone_e164")
    assert report["uid2_ready_share"] == filled["email_normalized"] > 0
    assert report["validity"].get("email_sha256") == 1.0
