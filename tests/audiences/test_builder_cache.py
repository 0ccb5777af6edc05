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
