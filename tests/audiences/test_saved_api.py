"""Saved (built) audiences through the API: save, materialise, edit with versions, count history, members CSV,
overlap, templates, refresh; preview counts equal SQL materialisation on generated data; tenant isolation."""

from __future__ import annotations

import random
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django_tenants.utils import schema_context

from audiences.models import Audience, AudienceCount, AudienceDefinition
from tests.audiences.builder_helpers import fresh_cache, load_bombora, make_imported  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_cache")]
API = "/o/acme/api/v1"

INDUSTRIES = ["Technology", "Software", "Retail", "Finance", None]
COUNTRIES = ["US", "GB", "DE", None]
DOMAINS = [f"d{i}.com" for i in range(30)] + [None]


def _generated(seed: int, n: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        email = rng.choice([None, f"p{rng.randrange(120)}@x.com"])
        rows.append(
            {
                "email": email,
                "email_normalized": email,
                "domain": rng.choice(DOMAINS),
                "industry": rng.choice(INDUSTRIES),
                "country": rng.choice(COUNTRIES),
                "revenue": rng.choice([None, rng.randrange(0, 50_000_000)]),
                "employee_count": rng.choice([None, rng.randrange(1, 5000)]),
                "job_title": rng.choice([None, "CTO", "VP Sales", "Engineer", "Head of IT"]),
            }
        )
    return rows


@pytest.fixture
def data(acme: Any) -> dict[str, Any]:
    with schema_context("org_acme"):
        crm = make_imported("CRM", _generated(1, 300))
        events = make_imported("Event leads", _generated(2, 200))
    load_bombora([(d, "Cloud Security", random.Random(i).randrange(0, 101)) for i, d in enumerate(DOMAINS[:-1])])
    return {"crm": crm.pk, "events": events.pk}


def _json(client: Client, method: str, url: str, payload: Any = None) -> Any:
    return getattr(client, method)(url, payload, content_type="application/json")


TREES = [
    {"field": "country", "operator": "eq", "value": "us"},
    {
        "op": "and",
        "children": [
            {"field": "industry", "operator": "in", "value": ["technology", "SOFTWARE"]},
            {"op": "not", "children": [{"field": "revenue", "operator": "lt", "value": 10_000_000}]},
            {"field": "bombora:Cloud Security", "operator": "gte", "value": 60},
        ],
    },
    {
        "op": "or",
        "children": [
            {"field": "job_title", "operator": "contains", "value": "vp"},
            {"op": "and", "children": [{"field": "email_sha256", "operator": "is_not_null"},
                                       {"field": "employee_count", "operator": "between", "value": [100, 2000]}]},
        ],
    },
]  # fmt: skip


def test_preview_counts_equal_sql_materialisation(data: dict[str, Any], acme_marketer: Any, login: Any) -> None:
    client = login(acme_marketer)
    trees = [*TREES, {"field": "audience", "operator": "in", "value": [data["crm"]]}]
    trees.append({"op": "and", "children": [trees[-1], {"op": "not", "children": [
        {"field": "audience", "operator": "in", "value": [data["events"]]}]}]})  # fmt: skip
    for index, tree in enumerate(trees):
        preview = _json(client, "post", f"{API}/audiences/preview", {"tree": tree, "sample": 0}).json()
        saved = _json(client, "post", f"{API}/audiences", {"name": f"Saved {index}", "tree": tree})
        assert saved.status_code == 201, saved.content
        assert saved.json()["count"] == preview["count"], tree
        with schema_context("org_acme"), connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM audiences_builtmember WHERE audience_id = %s", [saved.json()["id"]])
            assert cursor.fetchone()[0] == preview["count"]
        # A saved audience is itself a field: the preview reads its materialised members.
        again = {"field": "audience", "operator": "in", "value": [saved.json()["id"]]}
        assert _json(client, "post", f"{API}/audiences/preview", {"tree": again}).json()["count"] == preview["count"]
    assert preview["universe"] > 0 and 0 < preview["count"] < preview["universe"]


def test_save_edit_versions_count_history_and_members(data: dict[str, Any], acme_marketer: Any, login: Any) -> None:
    client = login(acme_marketer)
    created = _json(client, "post", f"{API}/audiences", {"name": "US", "tree": TREES[0], "description": "d"}).json()
    assert (created["kind"], created["version"], created["description"]) == ("built", 1, "d")
    assert created["tree"] == TREES[0]
    narrower = {"op": "and", "children": [TREES[0], {"field": "industry", "operator": "eq", "value": "Retail"}]}
    patched = _json(client, "patch", f"{API}/audiences/{created['id']}", {"tree": narrower, "note": "retail only"})
    assert patched.status_code == 200, patched.content
    detail = client.get(f"{API}/audiences/{created['id']}").json()
    assert detail["version"] == 2 and detail["count"] <= created["count"]
    assert [v["number"] for v in detail["versions"]] == [2, 1]
    assert detail["versions"][0]["note"] == "retail only"
    assert detail["versions"][0]["changes"] == 'added industry eq "Retail"'
    assert detail["versions"][0]["created_by"] == "marketer@acme.test"
    assert [c["count"] for c in detail["count_history"]] == [created["count"], detail["count"]]
    renamed = _json(client, "patch", f"{API}/audiences/{created['id']}", {"name": "US retail"}).json()
    assert renamed["name"] == "US retail" and renamed["version"] == 2
    members = client.get(f"{API}/audiences/{created['id']}/members?format=csv")
    lines = b"".join(members.streaming_content).decode().strip().splitlines()
    assert lines[0].startswith("email,") and len(lines) == 1 + detail["count"]
    assert all(",US," in line or ",us," in line.lower() for line in lines[1:])


def test_refresh_after_new_data_records_history(data: dict[str, Any], acme_marketer: Any, login: Any) -> None:
    client = login(acme_marketer)
    created = _json(client, "post", f"{API}/audiences", {"name": "GB", "tree": {
        "field": "country", "operator": "eq", "value": "GB"}}).json()  # fmt: skip
    with schema_context("org_acme"):
        make_imported("More", [{"country": "GB"}, {"country": "gb"}])
    refreshed = _json(client, "post", f"{API}/audiences/{created['id']}/refresh").json()
    assert refreshed["count"] == created["count"] + 2
    assert [c["reason"] for c in refreshed["count_history"]] == ["created", "manual"]
    with schema_context("org_acme"):
        from audiences.saved import refresh_all_built

        assert refresh_all_built() == {"refreshed": 1, "failed": 0}
        assert AudienceCount.objects.filter(audience_id=created["id"]).count() == 3


def test_overlap_of_two_and_three_audiences(data: dict[str, Any], acme_marketer: Any, login: Any) -> None:
    client = login(acme_marketer)
    us = _json(client, "post", f"{API}/audiences", {"name": "US", "tree": TREES[0]}).json()
    two = client.get(f"{API}/audiences/overlap?ids={data['crm']},{us['id']}").json()
    regions = {tuple(r["ids"]): r["count"] for r in two["regions"]}
    counts = {a["id"]: a["count"] for a in two["audiences"]}
    assert regions[(data["crm"], us["id"])] == two["intersection"]
    assert regions[(data["crm"],)] + two["intersection"] == counts[data["crm"]]
    assert regions[(us["id"],)] + two["intersection"] == counts[us["id"]] == us["count"]
    three = client.get(f"{API}/audiences/overlap?ids={data['crm']},{data['events']},{us['id']}").json()
    assert len(three["regions"]) == 7
    assert sum(r["count"] for r in three["regions"] if us["id"] in r["ids"]) == us["count"]
    assert client.get(f"{API}/audiences/overlap?ids={data['crm']}").status_code == 400
    assert client.get(f"{API}/audiences/overlap?ids=1,x").status_code == 400
    assert client.get(f"{API}/audiences/overlap?ids={data['crm']},999999").status_code == 404


def test_templates_builtin_and_custom(data: dict[str, Any], acme_marketer: Any, login: Any) -> None:
    client = login(acme_marketer)
    listed = client.get(f"{API}/audience-templates").json()
    names = [t["name"] for t in listed]
    assert "ICP: technology companies over $10M revenue surging on a topic" in names
    assert "UID2-ready contacts in the US" in names and all(t["builtin"] for t in listed)
    uid2 = next(t for t in listed if t["name"] == "UID2-ready contacts in the US")
    assert _json(client, "post", f"{API}/audiences/preview", {"tree": uid2["tree"]}).status_code == 200
    tree = {"op": "and", "children": [{"field": "country", "operator": "eq", "value": None, "placeholder": True}]}
    made = _json(client, "post", f"{API}/audience-templates", {"name": "By country", "tree": tree})
    assert made.status_code == 201 and made.json()["builtin"] is False
    bad = _json(client, "post", f"{API}/audience-templates", {"name": "Bad", "tree": {"field": "nope"}})
    assert bad.status_code == 400 and bad.json()["error"]["details"]["path"] == "field"


def test_bad_saves_are_400_and_write_nothing(data: dict[str, Any], acme_marketer: Any, login: Any) -> None:
    client = login(acme_marketer)
    no_name = _json(client, "post", f"{API}/audiences", {"tree": TREES[0]})
    assert no_name.status_code == 400 and "name" in no_name.json()["error"]["details"]["fields"]
    bad_tree = _json(
        client, "post", f"{API}/audiences", {"name": "x", "tree": {"op": "not", "children": [TREES[0], TREES[0]]}}
    )
    assert bad_tree.status_code == 400 and bad_tree.json()["error"]["details"]["path"] == "children"
    dup = _json(client, "post", f"{API}/audiences", {"name": "CRM", "tree": TREES[0]})
    assert dup.status_code == 400 and "already exists" in dup.json()["error"]["message"]
    imported = _json(client, "patch", f"{API}/audiences/{data['crm']}", {"name": "y"})
    assert imported.status_code == 400
    saved = _json(client, "post", f"{API}/audiences", {"name": "ok", "tree": TREES[0]}).json()
    self_ref = {"field": "audience", "operator": "in", "value": [saved["id"]]}
    refused = _json(client, "patch", f"{API}/audiences/{saved['id']}", {"tree": self_ref})
    assert refused.status_code == 400 and refused.json()["error"]["details"]["path"] == "value"
    with schema_context("org_acme"):
        assert Audience.objects.filter(kind="built").count() == 1
        assert AudienceDefinition.objects.filter(audience_id=saved["id"]).count() == 1


def test_other_org_cannot_see_or_edit_saved_audiences(
    data: dict[str, Any], acme_marketer: Any, globex_marketer: Any, login: Any
) -> None:
    saved = _json(login(acme_marketer), "post", f"{API}/audiences", {"name": "mine", "tree": TREES[0]}).json()
    other = login(globex_marketer)
    assert other.get(f"{API}/audiences/{saved['id']}").status_code == 404
    assert _json(other, "patch", f"{API}/audiences/{saved['id']}", {"name": "x"}).status_code == 404
    assert other.get(f"{API}/audiences/{saved['id']}/members?format=csv").status_code == 404
    assert other.get(f"{API}/audience-templates").status_code == 404
    # The same id in globex's own schema is globex's row (a canary), never acme's audience.
    own = other.get(f"/o/globex/api/v1/audiences/{saved['id']}")
    assert own.status_code == 404 or own.json()["name"] != "mine"
    assert _json(other, "post", "/o/globex/api/v1/audiences/preview", {
        "tree": {"field": "audience", "operator": "in", "value": [data["crm"]]}}).status_code in (200, 400)  # fmt: skip


def test_scheduled_refresh_starts_one_job_per_org_with_built_audiences(
    data: dict[str, Any], acme_marketer: Any, login: Any
) -> None:
    from audiences.jobs import start_refresh_jobs
    from p360.core.jobs.models import Job
    from p360.core.jobs.services import run_job

    saved = _json(login(acme_marketer), "post", f"{API}/audiences", {"name": "US", "tree": TREES[0]}).json()
    assert start_refresh_jobs() == 1  # globex has none
    job = Job.objects.filter(kind="audiences.refresh_built").latest("id")
    assert job.org.slug == "acme"
    run_job(job.pk)
    job.refresh_from_db()
    assert job.status == "succeeded" and job.result == {"refreshed": 1, "failed": 0}
    with schema_context("org_acme"):
        assert list(AudienceCount.objects.filter(audience_id=saved["id"]).values_list("reason", flat=True)) == [
            "created",
            "scheduled",
        ]
