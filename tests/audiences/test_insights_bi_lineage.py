"""Issue 18, BI exports and lineage: the members export is the one streamed members file (CSV byte for byte,
Parquet in row groups with exact values), streamed in bounded pieces; another org's token is refused; "derived
audiences" is one indexed query on `Audience.parent_ids`, kept in step with the tree."""

from __future__ import annotations

import io
from typing import Any

import polars as pl
import pyarrow.parquet as pq
import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_context

from audiences.insights import exports
from audiences.models import Audience
from audiences.normalize import uid2_hash
from tests.audiences.builder_helpers import fresh_cache, make_imported  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_cache")]
API = "/o/acme/api/v1"
ROWS = 6000
PLUS_HASHED, PLUS_HASH = "person39@company39.com", "+cXnOdR3bZ7MUXLgm+YX+EWOaw1pMDBcUNM6tCj62Ig="


def _rows(n: int) -> list[dict[str, Any]]:
    return [
        {
            # row 0's UID2 hash (derived) starts with "+": a machine value a spreadsheet would evaluate
            "email": PLUS_HASHED if i == 0 else f"p{i}@x.com",
            "email_normalized": PLUS_HASHED if i == 0 else f"p{i}@x.com",
            "phone_e164": "+14155550039" if i % 2 else None,
            "job_title": "=SUM(A1)" if i == 1 else ("" if i == 2 else "Engineer"),
            "revenue": i * 1000 if i % 3 else None,
            "employee_count": i % 500,
            "domain": f"d{i % 40}.com",
            "custom": {"tier": "gold", "n": i} if i % 5 == 0 else None,
        }
        for i in range(n)
    ]


@pytest.fixture
def big(acme: Any) -> int:
    with schema_context("org_acme"):
        return int(make_imported("BI big", _rows(ROWS)).pk)


def _token_client(user: Any) -> Client:
    from tenants.services import api_token_create

    _, raw = api_token_create(user=user, name="bi")
    return Client(HTTP_AUTHORIZATION=f"Token {raw}")


def _body(response: Any) -> tuple[bytes, list[bytes]]:
    assert response.status_code == 200, getattr(response, "content", b"")
    assert response.streaming, "the members export must stream"
    pieces = [bytes(p) for p in response.streaming_content]
    return b"".join(pieces), pieces


def test_members_csv_export_is_the_members_file_streamed(big: int, acme_marketer: Any) -> None:
    client = _token_client(acme_marketer)
    exported, pieces = _body(client.get(f"{API}/audiences/{big}/export?what=members&format=csv"))
    members, _ = _body(client.get(f"{API}/audiences/{big}/members?format=csv"))
    assert exported == members  # one path: the same rows and bytes
    assert len(pieces) > ROWS // 2  # arrives as PostgreSQL sends it, never assembled in memory
    frame = pl.read_csv(io.BytesIO(exported), infer_schema=False)
    assert frame.height == ROWS
    assert frame.get_column("email_sha256")[0] == uid2_hash(PLUS_HASHED) == PLUS_HASH  # exact: no spreadsheet escaping
    assert frame.get_column("job_title")[1] == "=SUM(A1)"


def test_members_parquet_streams_in_row_groups_with_exact_values(
    big: int, acme_marketer: Any, monkeypatch: Any
) -> None:
    monkeypatch.setattr(exports, "BATCH_BYTES", 64 * 1024)  # small batches: several row groups for 6,000 rows
    client = _token_client(acme_marketer)
    body, pieces = _body(client.get(f"{API}/audiences/{big}/export?what=members&format=parquet"))
    parquet = pq.ParquetFile(io.BytesIO(body))
    assert parquet.metadata.num_rows == ROWS
    assert parquet.num_row_groups >= 5
    # streamed: each row group leaves as it is written (bounded pieces), not one body at the end
    assert len(pieces) >= parquet.num_row_groups and max(len(p) for p in pieces) < len(body) / 2
    frame = pl.read_parquet(io.BytesIO(body))
    with schema_context("org_acme"), connection.cursor() as cursor:
        version = Audience.objects.get(pk=big).current_version_id
        cursor.execute(
            f"SELECT email_normalized, phone_e164, job_title, revenue, employee_count, custom::text "
            f"FROM audiences_record_v{int(version)} ORDER BY row"  # type: ignore[arg-type]
        )
        expected = cursor.fetchall()
    got = frame.select("email_sha256", "phone_e164", "job_title", "revenue", "employee_count", "custom").rows()
    # typed and exact: "+..." kept, empty text kept, JSON as text; the hash derived is Python's of the stored email
    assert got == [(None if r[0] is None else uid2_hash(r[0]), *r[1:]) for r in expected]
    assert frame.schema["revenue"] == pl.Int64 and frame.schema["employee_count"] == pl.Int32


def test_members_parquet_memory_is_one_batch_not_the_audience(big: int, monkeypatch: Any) -> None:
    """The generator holds at most one batch of CSV: the largest piece it yields does not grow with members."""
    monkeypatch.setattr(exports, "BATCH_BYTES", 32 * 1024)
    with schema_context("org_acme"):
        audience = Audience.objects.get(pk=big)
        pieces = [len(p) for p in exports.members_parquet(audience)]
    assert len(pieces) > 10
    assert max(pieces) < 64 * 1024  # a compressed row group of one 32 KB batch, whatever the audience size


def test_empty_audience_exports_a_valid_empty_parquet(acme: Any, acme_marketer: Any) -> None:
    with schema_context("org_acme"):
        empty = make_imported("BI empty", [])
    body, _ = _body(_token_client(acme_marketer).get(f"{API}/audiences/{empty.pk}/export?what=members&format=parquet"))
    frame = pl.read_parquet(io.BytesIO(body))
    assert frame.height == 0 and "email_sha256" in frame.columns


def test_another_orgs_token_is_refused(big: int, globex_marketer: Any) -> None:
    client = _token_client(globex_marketer)
    for fmt in ("csv", "parquet"):
        response = client.get(f"{API}/audiences/{big}/export?what=members&format={fmt}")
        assert response.status_code in (403, 404), response.status_code
        assert not getattr(response, "streaming", False)
    # globex's own API with acme's id: its schema has no such audience
    own = client.get(f"/o/globex/api/v1/audiences/{big}/export?what=members&format=csv")
    assert own.status_code == 404 and own.json()["error"]


def test_derived_audiences_come_from_one_indexed_lookup(acme: Any) -> None:
    from audiences.insights import usage
    from audiences.saved import built_audience_create, built_audience_update

    with schema_context("org_acme"):
        a = make_imported("Lineage A", [{"email": "a@x.com"}])
        b = make_imported("Lineage B", [{"email": "b@x.com"}])
        tree = {
            "op": "and",
            "children": [
                {"field": "audience", "operator": "in", "value": [a.pk]},
                {"op": "not", "children": [{"field": "audience", "operator": "in", "value": [b.pk]}]},
            ],
        }
        derived = built_audience_create(name="A without B", tree=tree, actor=None)
        assert sorted(Audience.objects.get(pk=derived.pk).parent_ids) == sorted([a.pk, b.pk])
        with CaptureQueriesContext(connection) as queries:
            found = usage.derived(b)
        assert [u.name for u in found] == ["A without B"]
        reads = [q["sql"] for q in queries if "audiences_audience" in q["sql"]]  # (django-tenants sets the path)
        assert len(reads) == 1 and "@>" in reads[0]  # parent_ids @> [id]: the GIN index
        # the tree changes: the index follows (save keeps parent_ids in step)
        built_audience_update(
            audience=derived, actor=None, tree={"field": "audience", "operator": "in", "value": [a.pk]}
        )
        assert usage.derived(b) == [] and [u.name for u in usage.derived(a)] == ["A without B"]
        with connection.cursor() as cursor:
            cursor.execute("SET enable_seqscan = off")
            cursor.execute(
                "EXPLAIN SELECT id FROM audiences_audience WHERE parent_ids @> %s::jsonb", [f"[{int(a.pk)}]"]
            )
            plan = " ".join(r[0] for r in cursor.fetchall())
            cursor.execute("RESET enable_seqscan")
        assert "audience_parent_ids_gin" in plan
