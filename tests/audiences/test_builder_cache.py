"""The per-org cache: rebuilt when the org's data or the Bombora week changes, stale entries keep serving while
a rebuild runs, LRU eviction under the memory budget, never shared between orgs."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.test import Client
from django_tenants.utils import schema_context

from audiences import cache
from tests.audiences.builder_helpers import fresh_cache, load_bombora, make_imported  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_cache")]
US = {"field": "country", "operator": "eq", "value": "US"}


def _count(client: Client, tree: Any, slug: str = "acme") -> dict[str, Any]:
    response = client.post(f"/o/{slug}/api/v1/audiences/preview", {"tree": tree}, content_type="application/json")
    assert response.status_code == 200, response.content
    return response.json()


def test_an_import_or_a_new_bombora_week_rebuilds_the_entry(acme: Any, acme_marketer: Any, login: Any) -> None:
    client = login(acme_marketer)
    with schema_context("org_acme"):
        make_imported("A", [{"country": "US", "domain": "a.com"}])
    assert _count(client, US)["count"] == 1
    with schema_context("org_acme"):
        make_imported("B", [{"country": "us", "domain": "b.com"}])
    assert _count(client, US)["count"] == 2
    surging = {"field": "bombora:Payroll", "operator": "gte", "value": 60}
    load_bombora([("a.com", "Payroll", 80)], week=dt.date(2026, 11, 16))
    assert _count(client, surging)["count"] == 1
    load_bombora([("a.com", "Payroll", 10), ("b.com", "Payroll", 70)], week=dt.date(2026, 11, 23))
    result = _count(client, surging)
    assert result["count"] == 1 and result["bombora_week"] == "2026-11-23"


def test_a_stale_entry_serves_while_the_rebuild_runs(
    acme: Any, acme_marketer: Any, login: Any, settings: Any, monkeypatch: Any
) -> None:
    settings.P360_BUILDER_BACKGROUND_REBUILD = True
    started: list[str] = []
    monkeypatch.setattr(cache, "_start_background", started.append)  # the thread itself cannot see this transaction
    client = login(acme_marketer)
    with schema_context("org_acme"):
        make_imported("A", [{"country": "US"}])
    first = _count(client, US)  # no entry yet: built synchronously
    assert (first["count"], first["stale"]) == (1, False)
    with schema_context("org_acme"):
        make_imported("B", [{"country": "US"}])
    stale = _count(client, US)
    assert (stale["count"], stale["stale"], started) == (1, True, ["org_acme"])
    with schema_context("org_acme"):
        cache._store(cache.build())  # what the background thread does
    assert (_count(client, US)["count"], _count(client, US)["stale"]) == (2, False)


def test_least_recently_used_org_is_evicted_over_budget(
    acme: Any, globex: Any, acme_marketer: Any, globex_marketer: Any, login: Any, settings: Any
) -> None:
    settings.P360_BUILDER_CACHE_MB = 0  # every entry is over budget: only the newest stays
    with schema_context("org_acme"):
        make_imported("A", [{"country": "US"}] * 3)
    with schema_context("org_globex"):
        make_imported("G", [{"country": "US"}])
    assert _count(login(acme_marketer), US)["count"] == 3
    assert [s["schema"] for s in cache.stats()] == ["org_acme"]
    assert _count(login(globex_marketer), US, slug="globex")["count"] == 1
    assert [s["schema"] for s in cache.stats()] == ["org_globex"]
    settings.P360_BUILDER_CACHE_MB = 2048
    assert _count(login(acme_marketer), US)["count"] == 3
    assert sorted(s["schema"] for s in cache.stats()) == ["org_acme", "org_globex"]
    stats = {s["schema"]: s for s in cache.stats()}
    assert stats["org_acme"]["rows"] == 3 and stats["org_globex"]["rows"] == 1 and stats["org_acme"]["bytes"] > 0


def test_same_ids_in_two_orgs_never_mix(
    acme: Any, globex: Any, acme_marketer: Any, globex_marketer: Any, login: Any
) -> None:
    with schema_context("org_acme"):
        a = make_imported("Same", [{"country": "US"}, {"country": "US"}])
    with schema_context("org_globex"):
        g = make_imported("Same", [{"country": "DE"}])
    tree = {"field": "audience", "operator": "in", "value": [a.pk]}
    assert _count(login(acme_marketer), tree)["count"] == 2
    if g.pk == a.pk:
        assert _count(login(globex_marketer), tree, slug="globex")["count"] == 1
    assert _count(login(globex_marketer), US, slug="globex")["count"] == 0


def _catalogue(client: Client, slug: str = "acme") -> dict[str, Any]:
    response = client.get(f"/o/{slug}/api/v1/fields")
    assert response.status_code == 200, response.content
    return response.json()  # type: ignore[no-any-return]


def _countries(catalogue: dict[str, Any]) -> list[str]:
    return next(field["values"] for field in catalogue["fields"] if field["name"] == "country")


def test_the_field_catalogue_follows_the_data_generation_after_an_import(
    acme: Any, acme_marketer: Any, login: Any, settings: Any, monkeypatch: Any
) -> None:
    """Issue 15 item 13: a country only the new rows have reaches the catalogue, and the catalogue says which
    generation its known values come from (and that it is stale while a rebuild runs), so the page refetches."""
    settings.P360_BUILDER_BACKGROUND_REBUILD = True
    monkeypatch.setattr(cache, "_start_background", lambda schema: None)  # the thread cannot see this transaction
    client = login(acme_marketer)
    with schema_context("org_acme"):
        make_imported("A", [{"country": "US"}])
    first = _catalogue(client)
    assert _countries(first) == ["US"] and first["stale"] is False
    assert _count(client, US)["generation"] == first["generation"]
    with schema_context("org_acme"):
        make_imported("B", [{"country": "DE"}])
    during = _catalogue(client)
    assert during["stale"] is True and during["generation"] == first["generation"]  # old values, flagged stale
    with schema_context("org_acme"):
        cache._store(cache.build())  # what the background thread does
    preview = _count(client, US)
    assert preview["generation"] != first["generation"]  # the page sees a new generation and asks again
    after = _catalogue(client)
    assert after["stale"] is False and after["generation"] == preview["generation"]
    assert sorted(_countries(after)) == ["DE", "US"]


def _people(n: int, offset: int = 0) -> list[dict[str, Any]]:
    """n people with unique emails and hashes (near-unique strings: stored memory-mapped) and a few countries."""
    return [
        {
            "email": f"P{i}@Example.com",
            "email_normalized": f"p{i}@example.com",
            "country": ("US", "DE", "FR")[i % 3],
            "employee_count": i % 500,
        }
        for i in range(offset, offset + n)
    ]


def test_a_built_frame_is_stored_per_generation_and_loaded_instead_of_rebuilt(
    acme: Any, acme_marketer: Any, login: Any, settings: Any, tmp_path: Any, monkeypatch: Any
) -> None:
    """Issue 17: a restart (or another worker) loads the generation's stored frame; the emails and hashes are served
    memory-mapped from it (out of the heap figure), with the same counts and sample rows as a fresh build."""
    from audiences import frame_files

    settings.P360_BUILDER_PERSIST = True
    settings.DATA_DIR = tmp_path
    client = login(acme_marketer)
    with schema_context("org_acme"):
        make_imported("A", _people(1500))
    trees: list[Any] = [
        US,
        {"field": "email_sha256", "operator": "is_not_null"},
        {"field": "email", "operator": "ends_with", "value": "9@example.com"},
        {"op": "and", "children": [US, {"field": "email_normalized", "operator": "starts_with", "value": "p1"}]},
    ]
    built = [_count(client, tree) for tree in trees]
    p1_in_us = sum(1 for i in range(1500) if i % 3 == 0 and str(i).startswith("1"))
    assert [b["count"] for b in built] == [500, 1500, 150, p1_in_us]
    entry = cache._entries["org_acme"]
    assert {"email", "email_normalized", "email_sha256"} <= entry.mapped
    assert entry.nbytes() < entry.frame.estimated_size()  # the mapped strings are not counted as heap
    stored = [p.name for p in frame_files.org_root("org_acme").iterdir() if p.is_dir()]
    assert frame_files.org_root("org_acme").is_relative_to(tmp_path / "builder-cache")
    assert stored == [entry.stamp.generation]

    cache.invalidate()  # a restart: nothing in memory
    monkeypatch.setattr(cache, "build", lambda **kw: pytest.fail("the stored generation should have been loaded"))
    loaded = [_count(client, tree) for tree in trees]
    assert [(b["count"], b["sample"]) for b in loaded] == [(b["count"], b["sample"]) for b in built]
    assert "load stored" in cache._entries["org_acme"].stats["build_phases"]
    monkeypatch.undo()

    with schema_context("org_acme"):  # a new generation is built and stored; the old one is removed
        make_imported("B", _people(10, offset=5000))
    assert _count(client, US)["count"] == 503
    assert [p.name for p in frame_files.org_root("org_acme").iterdir() if p.is_dir()] == [
        cache._entries["org_acme"].stamp.generation
    ]
    generation = cache._entries["org_acme"].stamp.generation
    (frame_files.directory("org_acme", generation) / frame_files.META_FILE).write_text("{broken")
    cache.invalidate()
    assert _count(client, US)["count"] == 503  # an unreadable stored frame is rebuilt, not served


def test_a_worker_waits_for_another_building_the_same_generation_and_loads_it(
    acme: Any, acme_marketer: Any, login: Any, settings: Any, tmp_path: Any, monkeypatch: Any
) -> None:
    """Issue 17: two workers asked for the same new generation build it once; the other loads what was stored."""
    import shutil
    import threading
    import time

    from audiences import frame_files

    settings.P360_BUILDER_PERSIST = True
    settings.DATA_DIR = tmp_path
    with schema_context("org_acme"):
        make_imported("A", _people(1200))
        other = cache.build()  # what the other worker builds (stored by it below)
    shutil.rmtree(tmp_path / "builder-cache")
    cache.invalidate()
    holding = threading.Event()

    def other_worker() -> None:
        with frame_files.build_lock("org_acme", other.stamp.generation):
            holding.set()
            time.sleep(0.3)
            cache._persist(other)

    thread = threading.Thread(target=other_worker)
    thread.start()
    holding.wait(5)
    monkeypatch.setattr(cache, "build", lambda **kw: pytest.fail("the generation was built twice"))
    assert _count(login(acme_marketer), US)["count"] == 400
    thread.join()
    assert "load stored" in cache._entries["org_acme"].stats["build_phases"]
