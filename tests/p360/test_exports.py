"""Issue 15 item 3: one export rule (p360.core.exports). Machine files carry exact values; files people
open are formula-safe (XLSX text cells; CSV neutralises only what a spreadsheet would evaluate)."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import re
import zipfile
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from django.db import connection

from p360.core.exports import neutralise, neutralise_expr, neutralise_sql, would_evaluate, xlsx_bytes
from tests.audiences.test_import import run, write

VALUES = [
    "+cXnOdR3bZ7MUXLgm+YX+EWOaw1pMDBcUNM6tCj62Ig=",  # Base64 SHA-256 starting with +
    "+14155550039",  # E.164 phone: a number to a spreadsheet, not a formula
    "-12.5",
    "+3",
    "1e5",
    "=SUM(1+1)",
    "@SUM(1)",
    "-2+3",
    "\tcmd",
    "\r=x",
    "=cmd|' /C calc'!A0",
    "plain",
    "",
    "a=b",
]
EXPECTED = {
    "+cXnOdR3bZ7MUXLgm+YX+EWOaw1pMDBcUNM6tCj62Ig=": "'+cXnOdR3bZ7MUXLgm+YX+EWOaw1pMDBcUNM6tCj62Ig=",
    "+14155550039": "+14155550039",
    "-12.5": "-12.5",
    "+3": "+3",
    "1e5": "1e5",
    "=SUM(1+1)": "'=SUM(1+1)",
    "@SUM(1)": "'@SUM(1)",
    "-2+3": "'-2+3",
    "\tcmd": "'\tcmd",
    "\r=x": "'\r=x",
    "=cmd|' /C calc'!A0": "'=cmd|' /C calc'!A0",
    "plain": "plain",
    "": "",
    "a=b": "a=b",
}


def test_the_rule_is_the_same_in_python_polars_and_sql(db: Any) -> None:
    assert [neutralise(v) for v in VALUES] == [EXPECTED[v] for v in VALUES]
    assert neutralise(-3) == -3 and not would_evaluate("-3")
    frame = pl.DataFrame({"v": VALUES}).select(neutralise_expr(pl.col("v")).alias("v"))
    assert frame["v"].to_list() == [EXPECTED[v] for v in VALUES]
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {neutralise_sql('v')} FROM unnest(%s::text[]) WITH ORDINALITY AS t(v, n) ORDER BY n", [VALUES]
        )
        assert [row[0] for row in cursor.fetchall()] == [EXPECTED[v] for v in VALUES]


def xlsx_cells(body: bytes) -> list[list[tuple[str, str]]]:
    """(type, text) of every cell of the first sheet, by row (t="inlineStr"/"s" text, "n" number)."""
    with zipfile.ZipFile(io.BytesIO(body)) as book:
        sheet = book.read("xl/worksheets/sheet1.xml").decode()
        shared = book.read("xl/sharedStrings.xml").decode() if "xl/sharedStrings.xml" in book.namelist() else ""
    strings = [re.sub(r"<[^>]+>", "", s) for s in re.findall(r"<si>(.*?)</si>", shared, re.S)]
    rows = []
    for row in re.findall(r"<row[^>]*>(.*?)</row>", sheet, re.S):
        cells = []
        for attrs, inner in re.findall(r"<c([^>]*)>(.*?)</c>", row, re.S):
            kind = (re.search(r't="(\w+)"', attrs) or [None, "n"])[1]
            text = re.sub(r"<[^>]+>", "", inner)
            cells.append(
                ("text", strings[int(text)]) if kind == "s" else ("text" if kind == "inlineStr" else kind, text)
            )
        rows.append(cells)
    return rows


def _unescape(text: str) -> str:
    return (
        text.replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", '"')
        .replace("&apos;", "'")
    )


def test_xlsx_has_text_cells_verbatim_and_numbers_as_numbers() -> None:
    body = xlsx_bytes(["value", "count"], [[v, 7] for v in VALUES if v])
    rows = xlsx_cells(body)
    assert [(kind, _unescape(text)) for kind, text in (r[0] for r in rows[1:])] == [
        ("text", v.replace("\r", "_x000D_")) for v in VALUES if v
    ]
    assert {r[1] for r in rows[1:]} == {("n", "7")}


@pytest.fixture
def phones_and_hashes(tmp_path: Path, db: Any) -> dict[str, Any]:
    lines = ["Email,Phone,First Name"] + [
        f"person{i}@company{i}.com,+1415555{i:04d},{'=SUM(1+1)' if i == 1 else f'P{i}'}" for i in range(100)
    ]
    result = run(write(tmp_path, "people.csv", lines), name="Exact values")
    expected = {
        f"person{i}@company{i}.com": base64.b64encode(
            hashlib.sha256(f"person{i}@company{i}.com".encode()).digest()
        ).decode()
        for i in range(100)
    }
    assert sum(h.startswith("+") for h in expected.values()) == 2  # person39, person61
    return {"id": result["audience_id"], "hashes": expected}


def test_machine_csv_carries_exact_values(phones_and_hashes: dict[str, Any], login: Any, acme_marketer: Any) -> None:
    response = login(acme_marketer).get(f"/o/acme/api/v1/audiences/{phones_and_hashes['id']}/members?format=csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert {r["email"]: r["email_sha256"] for r in rows} == phones_and_hashes["hashes"]
    by_email = {r["email"]: r for r in rows}
    assert by_email["person39@company39.com"]["email_sha256"] == "+cXnOdR3bZ7MUXLgm+YX+EWOaw1pMDBcUNM6tCj62Ig="
    assert by_email["person39@company39.com"]["phone_e164"] == "+14155550039"
    assert by_email["person1@company1.com"]["first_name"] == "=SUM(1+1)"  # data, exactly as imported


def test_people_downloads_are_formula_safe(phones_and_hashes: dict[str, Any], login: Any, acme_marketer: Any) -> None:
    client = login(acme_marketer)
    url = f"/o/acme/audiences/{phones_and_hashes['id']}/members/download/"
    response = client.get(url, {"format": "csv"})
    rows = {r["email"]: r for r in csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode()))}
    assert rows["person39@company39.com"]["email_sha256"] == "'+cXnOdR3bZ7MUXLgm+YX+EWOaw1pMDBcUNM6tCj62Ig="
    assert rows["person39@company39.com"]["phone_e164"] == "+14155550039"  # a number stays a number
    assert rows["person1@company1.com"]["first_name"] == "'=SUM(1+1)"
    assert rows["person2@company2.com"]["first_name"] == "P2"
    xlsx = client.get(url, {"format": "xlsx"})
    assert xlsx.status_code == 200 and xlsx["Content-Type"].startswith("application/vnd.openxmlformats")
    sheet = xlsx_cells(xlsx.content)
    header = [text for _, text in sheet[0]]
    cells = [dict(zip(header, row, strict=False)) for row in sheet[1:]]
    person39 = next(c for c in cells if c["email"][1] == "person39@company39.com")
    assert person39["email_sha256"] == ("text", "+cXnOdR3bZ7MUXLgm+YX+EWOaw1pMDBcUNM6tCj62Ig=")
    assert person39["phone_e164"] == ("text", "+14155550039")
    assert client.get(url, {"format": "pdf"}).status_code == 400
    page = client.get(f"/o/acme/audiences/{phones_and_hashes['id']}/").content.decode()
    assert "members/download/?format=xlsx" in page
