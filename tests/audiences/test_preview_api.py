"""The builder's API: field catalogue, Bombora topic search and preview, through the test client."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client
from django_tenants.utils import schema_context

from tests.audiences.builder_helpers import fresh_cache, load_bombora, make_imported  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_cache")]

PEOPLE = [
    {"email": "ann@a.com", "email_normalized": "ann@a.com", "domain": "acme.com",
     "industry": "Technology", "revenue": 50_000_000, "country": "US", "employee_count": 200},
    {"email": "bob@b.com", "email_normalized": "bob@b.com", "domain": "beta.io",
     "industry": "technology", "revenue": 5_000_000, "country": "GB"},
    {"domain": "gamma.org", "industry": "Retail", "country": "US"},
    {"email": "cy@c.com", "email_normalized": "cy@c.com", "domain": "acme.com",
     "industry": "Finance", "revenue": None, "country": "us", "custom": {"lead_score": 7}},
]  # fmt: skip


def _post(client: Client, tree: Any, slug: str = "acme", **extra: Any) -> Any:
    return client.post(f"/o/{slug}/api/v1/audiences/preview", {"tree": tree, **extra}, content_type="application/json")


@pytest.fixture
def acme_people(acme: Any) -> Any:
    with schema_context("org_acme"):
        return make_imported("CRM", PEOPLE, custom_types={"Lead Score": "integer"})


def test_preview_counts_samples_and_per_node_counts(acme_people: Any, acme_marketer: Any, login: Any) -> None:
    client = login(acme_marketer)
    tree = {
        "op": "and",
        "children": [
            {"field": "industry", "operator": "eq", "value": "TECHNOLOGY"},
            {"op": "not", "children": [{"field": "revenue", "operator": "gt", "value": 10_000_000}]},
        ],
    }
    response = _post(client, tree, sample=5)
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["count"] == 1 and data["universe"] == 4
    assert [r["email"] for r in data["sample"]] == ["bob@b.com"]
    assert data["uid2_ready"] == 1 and data["uid2_ready_share"] == 1.0
    assert data["nodes"][""] == {"count": 1, "running": 1}
    assert data["nodes"]["children[0]"] == {"count": 2, "running": 2}
    assert data["nodes"]["children[1]"] == {"count": 3, "running": 1}  # NOT includes unknown revenue
    assert data["nodes"]["children[1].children[0]"] == {"count": 1, "running": 1}
    assert isinstance(data["elapsed_ms"], float)


def test_preview_reads_custom_fields_and_bombora(acme_people: Any, acme_marketer: Any, login: Any) -> None:
    load_bombora([("acme.com", "Cloud Security", 72), ("beta.io", "Cloud Security", 40)])
    client = login(acme_marketer)
    surging = _post(client, {"field": "bombora:cloud security", "operator": "gte", "value": 60}).json()
    assert surging["count"] == 2  # ann and cy share acme.com
    custom = _post(client, {"field": "custom.lead_score", "operator": "between", "value": [5, 9]}).json()
    assert custom["count"] == 1 and custom["sample"][0]["custom"] == {"lead_score": 7}


def test_bad_trees_get_400_with_the_node_path(acme_people: Any, acme_marketer: Any, login: Any) -> None:
    client = login(acme_marketer)
    tree = {
        "op": "and",
        "children": [
            {"field": "industry", "operator": "eq", "value": "x"},
            {"op": "or", "children": [{"field": "revenue", "operator": "contains", "value": "1"}]},
        ],
    }
    response = _post(client, tree)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_tree"
    assert error["details"]["path"] == "children[1].children[0].operator"
    assert error["details"]["errors"][0]["path"] == "children[1].children[0].operator"


def test_field_catalogue_lists_record_custom_bombora_and_audience_fields(
    acme_people: Any, acme_marketer: Any, login: Any
) -> None:
    client = login(acme_marketer)
    data = client.get("/o/acme/api/v1/fields").json()
    by_name = {f["name"]: f for f in data["fields"]}
    assert by_name["revenue"]["type"] == "number" and by_name["revenue"]["max"] == 50_000_000
    assert set(by_name["country"]["values"]) == {"US", "GB", "us"}
    assert by_name["custom.lead_score"]["type"] == "number" and by_name["custom.lead_score"]["group"] == "Custom"
    assert by_name["bombora:<topic>"]["type"] == "bombora"
    audiences = by_name["audience"]["values"]
    assert {"id": acme_people.pk, "name": "CRM", "kind": "imported", "count": 4} in audiences
    assert data["bombora"] == {"week": None, "topics": 0}


def test_bombora_topic_search(acme_people: Any, acme_marketer: Any, login: Any) -> None:
    load_bombora([("acme.com", "Cloud Security", 72), ("beta.io", "Cloud Storage", 90), ("x.com", "Payroll", 99)])
    client = login(acme_marketer)
    client.get("/o/acme/api/v1/fields")  # builds the cache
    data = client.get("/o/acme/api/v1/fields/bombora?q=cloud&limit=5").json()
    assert data["week"] == "2026-11-23"
    assert [t["field"] for t in data["topics"]] == ["bombora:Cloud Security", "bombora:Cloud Storage"]
    assert [t["surging_domains"] for t in data["topics"]] == [1, 1]


def test_other_orgs_cannot_preview_or_read_fields(acme_people: Any, globex_marketer: Any, login: Any) -> None:
    client = login(globex_marketer)
    assert _post(client, {"field": "country", "operator": "eq", "value": "US"}).status_code == 404
    assert client.get("/o/acme/api/v1/fields").status_code == 404
    own = _post(client, {"field": "country", "operator": "eq", "value": "US"}, slug="globex").json()
    assert own["universe"] == 0 and own["count"] == 0


def test_a_sample_size_too_big_for_an_integer_is_a_400(acme_people: Any, acme_marketer: Any, login: Any) -> None:
    tree = {"field": "country", "operator": "is_not_null"}
    body = '{"tree": ' + json.dumps(tree) + ', "sample": 1e400}'  # JSON 1e400 parses to inf
    response = login(acme_marketer).post("/o/acme/api/v1/audiences/preview", body, content_type="application/json")
    assert response.status_code == 400
