"""Issue 17: the builder's typed read (ADBC: binary COPY into Arrow, in page slices on two connections, strings
coded per slice) builds exactly the frame that the COPY CSV read builds, which the property tests hold equal to SQL.

The ADBC connection sees committed rows only, so this module commits its own org (and a Bombora week), outside the
test transaction, and drops them after."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import polars as pl
import pytest
from django.db import connection
from django_tenants.utils import schema_context

from audiences import cache
from p360.core import arrow_reads
from tests.audiences.builder_helpers import load_bombora, make_imported

pytestmark = [pytest.mark.django_db, pytest.mark.slow]
SLUG = "builder-read"
DEFAULT_SLICE = cache.SLICE_BYTES
WEEK = dt.date(2031, 3, 3)  # far ahead: the current week only while this module runs
CUSTOM = {"Score": "integer", "Tier": "text", "VIP": "boolean", "Since": "date", "Ratio": "decimal"}
INDUSTRIES = [None, "Technology", "TECHNOLOGY", "technology ", "Retail", "Ärzte", "ÄRZTE", "Straße"]


def _people(n: int, offset: int = 0) -> list[dict[str, Any]]:
    """Emails nearly unique (kept as text) with some repeats across audiences and some missing; companies and
    domains repeated (coded); every custom type, with nulls and values of the wrong JSON type."""
    rows = []
    for i in range(offset, offset + n):
        email = None if i % 7 == 0 else f"p{i % 2500}@Example.com".lower()
        rows.append(
            {
                "email": email,
                "email_normalized": email,
                # the other deferred identifiers (read in the second pass), present on different rows
                "phone_e164": None if i % 3 == 0 else f"+1555{i:07d}",
                "maid": f"{i:08d}-0000-4000-8000-000000000000" if i % 4 == 1 else None,
                "ip": None if i % 5 == 2 else f"10.0.{i % 250}.{i % 199}",
                "domain": None if i % 11 == 0 else f"d{i % 97}.com",
                "company_name": f"Company {i % 400}",
                "industry": INDUSTRIES[i % len(INDUSTRIES)],
                "country": ["US", "us", "GB", None][i % 4],
                "job_title": ["CTO", "cto", "Head of IT", None][i % 4],
                "revenue": None if i % 5 == 0 else i * 1000,
                "employee_count": None if i % 6 == 0 else i % 300,
                "custom": {
                    "score": i % 9 if i % 3 else "nine",
                    "tier": ["Gold", "gold", "Silver"][i % 3],
                    "vip": bool(i % 2) if i % 4 else None,
                    "since": f"2024-01-{1 + i % 9:02d}" if i % 5 else "soon",
                    "ratio": [0.1, 0.5, 1.25, -2.0][i % 4],
                }
                if i % 10
                else {},
            }
        )
    return rows


@pytest.fixture(scope="module")
def committed_org(django_db_setup: Any, django_db_blocker: Any) -> Iterator[Any]:
    from bombora.models import BomboraTopic, BomboraWeek
    from bombora.store import partition_name
    from tenants.models import Organization
    from tenants.services import org_create

    with django_db_blocker.unblock():
        topics_before = set(BomboraTopic.objects.values_list("pk", flat=True))
        org = org_create(slug=SLUG, name="Builder read org")
        with schema_context(org.schema_name):
            make_imported("A", _people(3000), custom_types=CUSTOM)
            make_imported("B", _people(1200, offset=2000), custom_types=CUSTOM)
            make_imported("C", _people(40, offset=9000))
        load_bombora([(f"d{i}.com", ["Payroll", "Cloud Security"][i % 2], i % 101) for i in range(0, 97, 3)], week=WEEK)
        connection.set_schema_to_public()  # type: ignore[attr-defined]
        try:
            yield org
        finally:
            connection.set_schema_to_public()  # type: ignore[attr-defined]
            BomboraWeek.objects.filter(week=WEEK).delete()
            with connection.cursor() as cursor:
                cursor.execute(f"DROP TABLE IF EXISTS public.{partition_name(WEEK)}")
            BomboraTopic.objects.exclude(pk__in=topics_before).delete()  # committed: other tests expect none
            org = Organization.objects.get(pk=org.pk)
            org.domains.all().delete()
            org.delete(force_drop=True)


def _build(org: Any, *, arrow: bool, monkeypatch: Any) -> cache.Entry:
    """Built on a thread of its own: its Django connection is outside the test's transaction, like a request's."""

    def run() -> cache.Entry:
        from django.db import connection as thread_connection

        try:
            thread_connection.set_schema(org.schema_name)  # type: ignore[attr-defined]
            assert arrow_reads.available() == arrow
            return cache.build()  # the Bombora scores too (no background thread), with the same reader
        finally:
            thread_connection.close()

    with monkeypatch.context() as patch, ThreadPoolExecutor(max_workers=1) as pool:
        if not arrow:
            patch.setattr(arrow_reads, "available", lambda: False)
        entry = pool.submit(run).result()
    assert entry.bombora_frame is not None
    return entry


def _assert_same(left: cache.Entry, right: cache.Entry) -> None:
    assert left.frame.schema == right.frame.schema
    assert left.frame.equals(right.frame)
    assert left.strings.keys() == right.strings.keys()
    for name, info in left.strings.items():
        other = right.strings[name]
        assert info.lowercase == other.lowercase, name
        for a, b in ((info.categories, other.categories), (info.lowered_categories, other.lowered_categories)):
            assert (a is None) == (b is None), name
            if a is not None and b is not None:
                assert a.equals(b), name
    assert left.imported_masks.keys() == right.imported_masks.keys()
    assert all(left.imported_masks[k].equals(right.imported_masks[k]) for k in left.imported_masks)
    assert left.has_hash is not None and right.has_hash is not None and left.has_hash.equals(right.has_hash)
    assert left.bombora.equals(right.bombora)


@pytest.mark.parametrize("slice_bytes", [DEFAULT_SLICE, 16 * 8192])
def test_the_typed_read_builds_the_same_frame_as_the_csv_read(
    committed_org: Any, settings: Any, monkeypatch: Any, slice_bytes: int
) -> None:
    settings.P360_BUILDER_PERSIST = False
    settings.P360_BUILDER_BACKGROUND_REBUILD = False
    csv = _build(committed_org, arrow=False, monkeypatch=monkeypatch)
    monkeypatch.setattr(cache, "SLICE_BYTES", slice_bytes)
    with schema_context(committed_org.schema_name):
        versions = _versions()
        slices = cache._record_slices(versions)
    assert (len(slices) > len(versions)) == (slice_bytes < DEFAULT_SLICE)  # several slices per version
    typed = _build(committed_org, arrow=True, monkeypatch=monkeypatch)
    rows = _people(3000) + _people(1200, offset=2000) + _people(40, offset=9000)
    people = len({r["email_normalized"] for r in rows} - {None}) + sum(r["email_normalized"] is None for r in rows)
    assert typed.height == csv.height == people  # one person per email across the audiences
    frame = typed.frame
    assert frame.get_column("custom.vip").dtype == pl.Boolean and frame.get_column("custom.since").dtype == pl.Date
    assert isinstance(frame.get_column("company_name").dtype, pl.Enum)
    assert frame.get_column("email").dtype == pl.String  # nearly unique: kept as text
    _assert_same(typed, csv)


def _versions() -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_version_id FROM audiences_audience WHERE kind = 'imported' ORDER BY id")
        return [int(row[0]) for row in cursor.fetchall()]


def test_a_read_out_of_key_order_is_sorted_as_one_in_order() -> None:
    """Issue 17: a scan in (version_id, row) order skips the sort; slices arriving in another order (rows written out
    of order, several versions) are sorted, and both give the same keys and people's columns. Slices share one
    mapping per column (codes given in arrival order); a text column (`tag`) stays text. Every identifier (the
    deferred columns) is read as text."""
    assert set(cache.DEFERRED) | {"email_normalized"} == cache.TEXT_COLUMNS
    import pyarrow as pa

    schema: dict[str, Any] = {"version_id": pl.Int64, "row": pl.Int64, "city": pl.String, "tag": pl.String}
    schema["n"] = pl.Int32
    keys = [(v, r) for v in (3, 5) for r in range(1500)]
    rows = [(v, r, f"City {(v * 7 + r) % 13}", f"t{i}", (v + r) % 5 or None) for i, (v, r) in enumerate(keys)]

    def read(order: list[int]) -> cache._Read:
        parts = [rows[i : i + 1200] for i in range(0, len(rows), 1200)]
        tables = [pa.table({k: [row[j] for row in parts[i]] for j, k in enumerate(schema)}) for i in order]
        shared = cache._Dictionaries(text=frozenset({"tag"}))
        return cache._Read.from_slices(
            [cache._slice_columns(table, schema, shared) for table in tables], schema, shared
        )

    ordered, shuffled = read([0, 1, 2]), read([2, 0, 1])
    assert ordered.order is None and shuffled.order is not None
    assert isinstance(ordered.columns["city"], cache._Coded) and isinstance(shuffled.columns["city"], cache._Coded)
    assert isinstance(ordered.columns["tag"], pl.Series) and isinstance(shuffled.columns["tag"], pl.Series)
    assert cache._in_key_order(ordered.sorted_keys()) and ordered.sorted_keys().equals(shuffled.sorted_keys())
    assert "tag" in shuffled.columns and "tag" in ordered.columns
    keep = pl.Series([0, 2, 3, 1199, 1200, 1499, 1500, 2999], dtype=pl.UInt32)
    for name in ("city", "tag", "n"):
        a, b = ordered.take(name, keep), shuffled.take(name, keep)
        a, b = (x.decoded() if isinstance(x, cache._Coded) else x for x in (a, b))
        assert a.equals(b) and a.to_list() == [rows[int(i)][list(schema).index(name)] for i in keep]


@pytest.mark.parametrize(("rows", "distinct"), [(900, 60), (900, 880), (5000, 300), (5000, 4800)])
def test_a_coded_column_encodes_as_its_text_does(rows: int, distinct: int) -> None:
    """The codes path (slices' dictionaries) gives the text path's Enum (categories sorted by lowercase form, then as
    written; up to 1000 rows the text path is the original polars unique/sort/cast) or String, with mixed case,
    Unicode folding and nulls."""
    import random

    import pyarrow as pa
    import pyarrow.compute as pc

    rng = random.Random(rows + distinct)
    alphabet = ["a", "A", "ä", "Ä", "ß", "SS", "ss", "İ", "i", "\u0131", "Ω", "ω", " ", "1", "Z", "é", "É", "\u0301"]
    values = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 5))) for _ in range(distinct)]
    for name in ("industry", "domain", "email"):
        text = pl.Series(name, [None if rng.random() < 0.1 else rng.choice(values) for _ in range(rows)])
        encoded = pc.dictionary_encode(text.to_arrow().cast(pa.large_string()))
        codes, dictionary = pl.from_arrow(encoded.indices), pl.from_arrow(encoded.dictionary)
        assert isinstance(codes, pl.Series) and isinstance(dictionary, pl.Series)
        coded = cache._Coded(codes=codes.cast(pl.UInt32), values=dictionary.cast(pl.String))
        (left, left_info), (right, right_info) = cache._encode(name, coded), cache._encode(name, text)
        assert left.dtype == right.dtype and left.equals(right) and left_info.lowercase == right_info.lowercase
        for a, b in (
            (left_info.categories, right_info.categories),
            (left_info.lowered_categories, right_info.lowered_categories),
        ):
            assert (a is None) == (b is None) and (a is None or b is None or a.equals(b))


def _build_deferred(org: Any, monkeypatch: Any, gate: Any) -> cache.Entry:
    """A first build with its deferred pass (emails, hashes) held at `gate` until the test opens it."""
    read = cache._SecondPass.read

    def held(self: Any) -> Any:
        assert gate.wait(60), "the test never opened the gate"
        return read(self)

    monkeypatch.setattr(cache._SecondPass, "read", held)

    def run() -> cache.Entry:
        from django.db import connection as thread_connection

        try:
            thread_connection.set_schema(org.schema_name)  # type: ignore[attr-defined]
            return cache.build(defer=True)
        finally:
            thread_connection.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result()


NULL_TESTS = {
    "op": "or",
    "children": [
        {"field": "email_sha256", "operator": "is_not_null"},
        {"op": "and", "children": [{"field": "email", "operator": "is_null"}, {"field": "country", "operator": "eq", "value": "US"}]},
        {"op": "and", "children": [{"field": "phone_e164", "operator": "is_not_null"}, {"field": "ip", "operator": "is_null"}]},
        {"op": "not", "children": [{"field": "maid", "operator": "is_null"}]},
    ],
}  # fmt: skip


def test_a_deferred_build_counts_before_its_emails_are_read_and_then_equals_a_whole_build(
    committed_org: Any, settings: Any, monkeypatch: Any
) -> None:
    """Issue 17: a first build reads emails and hashes after the rest; until then null tests on them are exact (their
    presence), the sample goes without them, and the finished entry is the one-go build's frame."""
    import threading

    from audiences.logic.polars_engine import evaluate
    from audiences.preview import _field_stats, _frame_for, evaluate_tree, parse_tree, sample_records

    settings.P360_BUILDER_PERSIST = False
    settings.P360_BUILDER_BACKGROUND_REBUILD = False
    whole = _build(committed_org, arrow=True, monkeypatch=monkeypatch)
    gate = threading.Event()
    settings.P360_BUILDER_BACKGROUND_REBUILD = True
    entry = _build_deferred(committed_org, monkeypatch, gate)
    try:
        assert entry.deferred == {"email", "email_sha256", "phone", "phone_e164", "phone_sha256", "maid", "ip"}
        assert entry.deferred == set(cache.DEFERRED)
        assert "email" not in entry.ready_frame.columns and not entry.deferred_done.is_set()
        with schema_context(committed_org.schema_name):
            node = parse_tree(NULL_TESTS, custom=entry.custom, refs={})
            pending = evaluate_tree(entry, node, memo=False)
            expected = evaluate(whole.frame, node, whole.strings)
        assert (pending.count, pending.nodes) == (expected.count, expected.nodes)
        assert pending.count == sum(
            r["email_sha256"] is not None
            or (r["email"] is None and (r["country"] or "").lower() == "us")
            or (r["phone_e164"] is not None and r["ip"] is None)
            or r["maid"] is not None
            for r in whole.frame.select("email", "email_sha256", "country", "phone_e164", "ip", "maid").to_dicts()
        )
        assert entry.has_hash is not None and whole.has_hash is not None and entry.has_hash.equals(whole.has_hash)
        rows = sample_records(entry, [0, 1, 2], wait=False)
        assert rows and all(not set(cache.DEFERRED) & set(row) for row in rows)
        fields = _field_stats(entry)  # the field catalogue's known values, without the columns being read
        assert "email" not in fields and fields["company_name"]["values"]
        assert not entry.deferred_done.is_set()  # nothing above waited for the deferred pass
    finally:
        gate.set()
    assert entry.deferred_done.wait(60) and entry.deferred_error is None
    _assert_same(entry, whole)  # entry.frame: every column, in the one-go build's order
    with schema_context(committed_org.schema_name):
        frame = _frame_for(entry, node, {})
    assert frame.get_column("email").dtype == pl.String  # the column itself now, not its presence
    assert _field_stats(entry)["email"]["examples"]  # added by the next call


def test_a_failed_deferred_pass_drops_the_entry_and_never_serves_a_partial_frame(
    committed_org: Any, settings: Any, monkeypatch: Any
) -> None:
    import threading

    settings.P360_BUILDER_PERSIST = False
    settings.P360_BUILDER_BACKGROUND_REBUILD = True

    failing = threading.Event()

    def fail(self: Any, entry: Any) -> None:
        assert failing.wait(60)
        raise OSError("the connection went away")

    opened = threading.Event()
    opened.set()
    monkeypatch.setattr(cache._SecondPass, "run", fail)
    entry = _build_deferred(committed_org, monkeypatch, opened)
    try:
        cache._store(entry)
        assert committed_org.schema_name in {s["schema"] for s in cache.stats()}
        failing.set()
        assert entry.deferred_done.wait(60)
        with pytest.raises(RuntimeError, match="deferred columns"):
            _ = entry.frame
        assert committed_org.schema_name not in {s["schema"] for s in cache.stats()}  # the next request builds again
    finally:
        failing.set()
        cache.invalidate()
