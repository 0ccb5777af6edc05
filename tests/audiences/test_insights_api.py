"""Audience insights (issue 18) through the API: every figure equals the same figure computed in SQL (one test per
chart), quality parts, freshness, similarity, exclusion, usage and audit, BI exports with a token, and tenant
isolation (globex never reads acme's insights)."""

from __future__ import annotations

import datetime as dt
import io
import random
from typing import Any
from unittest.mock import ANY

import polars as pl
import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone
from django_tenants.utils import schema_context

from audiences import cache
from audiences.insights.composition import EMPLOYEE_BANDS, REVENUE_BANDS, band_sql
from audiences.models import Audience, AudienceVersion
from tests.audiences.builder_helpers import fresh_cache, load_bombora, make_imported  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_cache")]
API = "/o/acme/api/v1"
INDUSTRIES = ["Technology", "Software", "Retail", "Finance", None]
COUNTRIES = ["US", "GB", "DE", "usa", None]
DOMAINS = [f"d{i}.com" for i in range(30)] + ["not a domain", None]
TITLES = [None, "CTO", "VP Sales", "Engineer", "Head of IT"]


def _rows(seed: int, n: int, emails: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        email = rng.choice([None, f"p{rng.randrange(emails)}@x.com"]) if i % 3 else None
        rows.append(
            {
                "email": email,
                "email_normalized": email,
                "phone_e164": "+14155550100" if rng.random() < 0.1 else None,  # (its hash derived, like the email's)
                "domain": rng.choice(DOMAINS),
                "industry": rng.choice(INDUSTRIES),
                "country": rng.choice(COUNTRIES),
                "revenue": rng.choice([None, rng.randrange(-5, 2_000_000_000)]),
                "employee_count": rng.choice([None, rng.randrange(0, 20_000)]),
                "job_title": rng.choice(TITLES),
                "company_name": rng.choice([None, "Acme", "Beta"]),
            }
        )
    return rows


@pytest.fixture
def data(acme: Any) -> dict[str, int]:
    with schema_context("org_acme"):
        crm = make_imported("CRM", _rows(1, 400, 150))
        events = make_imported("Event leads", _rows(2, 250, 150))  # shares emails with CRM; newer version wins
    load_bombora(
        [
            (d, topic, random.Random(f"{d}{topic}").randrange(0, 101))
            for d in DOMAINS[:20]
            for topic in ("Cloud", "Payroll")
        ]
    )
    return {"crm": crm.pk, "events": events.pk}


def _sql(query: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with schema_context("org_acme"), connection.cursor() as cursor:
        cursor.execute(query, params or [])
        return list(cursor.fetchall())


# The universe rule written out independently of the engines: one person per email (newest version, first row),
# else one per record; an imported audience's members are people from its version or sharing an email with it.
MEMBERS = """
WITH cur AS (SELECT current_version_id AS vid FROM audiences_audience WHERE kind = 'imported'
             AND current_version_id IS NOT NULL),
recs AS (SELECT * FROM audiences_record WHERE version_id IN (SELECT vid FROM cur)),
people AS (SELECT * FROM recs WHERE email_normalized IS NULL
           UNION ALL (SELECT DISTINCT ON (email_normalized) * FROM recs WHERE email_normalized IS NOT NULL
                      ORDER BY email_normalized, version_id DESC, row)),
m AS (SELECT p.* FROM people p WHERE p.version_id = {vid} OR (p.email_normalized IS NOT NULL AND EXISTS
      (SELECT 1 FROM audiences_record r WHERE r.version_id = {vid} AND r.email_normalized = p.email_normalized)))
"""


def _members_sql(audience_id: int) -> str:
    with schema_context("org_acme"):
        vid = Audience.objects.get(pk=audience_id).current_version_id
    return MEMBERS.format(vid=int(vid))  # type: ignore[arg-type]


def _expected(rows: list[tuple[Any, int]], limit: int, order: list[str] | None = None) -> list[dict[str, Any]]:
    present = [(v, int(n)) for v, n in rows if v is not None]
    if order:
        present.sort(key=lambda r: order.index(r[0]))
    else:
        present.sort(key=lambda r: (-r[1], str(r[0])))
    result = [{"value": v, "count": n} for v, n in present[:limit]]
    missing = [int(n) for v, n in rows if v is None]
    return result + ([{"value": None, "count": missing[0]}] if missing and missing[0] else [])


def _insights(client: Client, audience_id: int, slug: str = "acme") -> Any:
    response = client.get(f"/o/{slug}/api/v1/audiences/{audience_id}/insights")
    assert response.status_code == 200, response.content
    return response.json()


@pytest.fixture
def body(data: dict[str, int], acme_marketer: Any, login: Any) -> dict[str, Any]:
    return _insights(login(acme_marketer), data["crm"])


def test_insights_have_the_contract_shape(body: dict[str, Any], data: dict[str, int]) -> None:
    assert {"size", "composition", "quality", "stale", "data_changed_at"} <= set(body)
    assert {"industry", "country"} <= set(body["composition"])
    assert set(body["quality"]) >= {"score", "parts", "recommendations"}
    assert 0 <= body["quality"]["score"] <= 100
    assert body["stale"] is False and body["data_changed_at"]
    (size,) = _sql(_members_sql(data["crm"]) + "SELECT count(*) FROM m")[0]
    assert body["size"] == size


@pytest.mark.parametrize("field", ["industry", "country", "job_title", "domain"])
def test_category_chart_equals_sql(body: dict[str, Any], data: dict[str, int], field: str) -> None:
    rows = _sql(_members_sql(data["crm"]) + f"SELECT {field}, count(*) FROM m GROUP BY {field}")
    limit = {"domain": 20, "job_title": 25}.get(field, 50)
    assert body["composition"][field] == _expected(rows, limit)
    assert any(r["value"] is None for r in body["composition"][field])  # missing values appear as null


@pytest.mark.parametrize(("field", "column", "bands"), [("employee_band", "employee_count", EMPLOYEE_BANDS),
                                                         ("revenue_band", "revenue", REVENUE_BANDS)])  # fmt: skip
def test_band_chart_equals_sql(body: dict[str, Any], data: dict[str, int], field: str, column: str, bands: Any) -> None:
    rows = _sql(_members_sql(data["crm"]) + f"SELECT {band_sql(column, bands)} b, count(*) FROM m GROUP BY b")
    assert body["composition"][field] == _expected(rows, 50, [label for label, _, _ in bands])


def test_bombora_surging_chart_equals_sql(body: dict[str, Any], data: dict[str, int]) -> None:
    rows = _sql(
        _members_sql(data["crm"])
        + """, s AS (SELECT domain, topic_id, max(score) AS score FROM public.ingestion_bombora_score
                     WHERE week = (SELECT max(week) FROM public.ingestion_bomboraweek WHERE status = 'ready')
                     GROUP BY domain, topic_id)
        SELECT t.name, count(*) FROM m JOIN s ON s.domain = m.domain JOIN public.ingestion_bomboratopic t
        ON t.id = s.topic_id WHERE s.score >= 60 GROUP BY t.name"""
    )
    assert rows
    assert body["composition"]["bombora_surging"] == _expected(rows, 20)


def test_quality_parts_equal_sql(body: dict[str, Any], data: dict[str, int]) -> None:
    parts = body["quality"]["parts"]
    assert set(parts) == {
        "completeness",
        "validity",
        "uid2_ready",
        "freshness",
        "bombora_freshness",
        "duplicates",
        "size",
    }
    (size, email, domain, uid2, bad_domain, bad_country) = _sql(
        _members_sql(data["crm"])
        + r"""SELECT count(*), count(email), count(domain),
        count(*) FILTER (WHERE email_normalized IS NOT NULL OR phone_e164 IS NOT NULL),
        count(*) FILTER (WHERE domain !~ '^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*\.[a-z]{2,63}$'),
        count(*) FILTER (WHERE country !~ '^[A-Za-z]{2}$') FROM m"""
    )[0]
    assert parts["completeness"]["fields"]["email"] == round(email / size, 6)
    assert parts["completeness"]["fields"]["domain"] == round(domain / size, 6)
    assert parts["uid2_ready"]["count"] == uid2
    assert parts["validity"]["fields"]["domain"]["valid"] == domain - bad_domain
    assert (
        parts["validity"]["fields"]["country"]["present"] - parts["validity"]["fields"]["country"]["valid"]
        == bad_country
    )
    assert parts["size"]["size"] == size and parts["size"]["meets_liveramp"] is True
    recs = body["quality"]["recommendations"]
    assert any("lack an email: map the Email column" in r for r in recs)
    assert any("country values look invalid" in r for r in recs)
    assert any("below the 10,000-50,000 an ICP seed needs" in r for r in recs)
    weighted = sum(p["weight"] * p["score"] for p in parts.values())
    assert body["quality"]["score"] == round(weighted)


def test_a_tiny_audience_is_told_it_is_below_liverams_minimum(acme: Any, acme_marketer: Any, login: Any) -> None:
    with schema_context("org_acme"):
        tiny = make_imported("Tiny", [{"domain": "x.com"}] * 3)
    body = _insights(login(acme_marketer), tiny.pk)
    assert (
        "this audience is below LiveRamp's 25-row minimum: widen the conditions" in body["quality"]["recommendations"]
    )
    assert any(r.startswith("100 % of records lack an email") for r in body["quality"]["recommendations"])


def test_tree_insights_for_the_builder_equal_sql(data: dict[str, int], acme_marketer: Any, login: Any) -> None:
    tree = {"op": "and", "children": [{"field": "country", "operator": "in", "value": ["us", "gb"]},
                                      {"field": "industry", "operator": "is_not_null"}]}  # fmt: skip
    response = login(acme_marketer).post(f"{API}/audiences/insights", {"tree": tree}, content_type="application/json")
    assert response.status_code == 200, response.content
    body = response.json()
    people = MEMBERS.split("m AS")[0].rstrip().rstrip(",")
    rows = _sql(
        people + ", m AS (SELECT * FROM people WHERE lower(country) IN ('us', 'gb') AND industry IS NOT NULL) "
        "SELECT industry, count(*) FROM m GROUP BY industry"
    )
    assert body["size"] == sum(n for _, n in rows)
    assert body["composition"]["industry"] == _expected(rows, 50)
    bad = login(acme_marketer).post(
        f"{API}/audiences/insights", {"tree": {"op": "and"}}, content_type="application/json"
    )
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_tree"


def test_freshness_flags_stale_audiences_in_the_api_and_the_list(
    data: dict[str, int], acme_marketer: Any, login: Any, settings: Any
) -> None:
    settings.P360_AUDIENCE_STALE_DAYS = 10
    old = timezone.now() - dt.timedelta(days=11)
    with schema_context("org_acme"):
        AudienceVersion.objects.filter(pk=Audience.objects.get(pk=data["events"]).current_version_id).update(
            created_at=old
        )
    client = login(acme_marketer)
    body = _insights(client, data["events"])
    assert body["stale"] is True and body["data_changed_at"] == old.isoformat()
    assert any("the data last changed 11 days ago" in r for r in body["quality"]["recommendations"])
    assert _insights(client, data["crm"])["stale"] is False
    page = client.get("/o/acme/audiences/").content.decode()
    assert page.count('data-testid="stale"') == 1


def test_similarity_equals_sql_and_circles_are_sized_by_audience(
    data: dict[str, int], acme_marketer: Any, login: Any
) -> None:
    body = login(acme_marketer).get(f"{API}/audiences/similarity?a={data['crm']}&b={data['events']}").json()
    a_sql, b_sql = _members_sql(data["crm"]), _members_sql(data["events"])
    (size_a,) = _sql(a_sql + "SELECT count(*) FROM m")[0]
    (size_b,) = _sql(b_sql + "SELECT count(*) FROM m")[0]
    (overlap,) = _sql(
        a_sql.replace("m AS", "m AS")
        + ", mb AS ("
        + b_sql.split("m AS (")[1].replace("p.* FROM people p", "p.* FROM people p", 1)
        + " SELECT count(*) FROM m JOIN mb USING (version_id, row)"
    )[0]
    assert (body["a"]["size"], body["b"]["size"], body["overlap"]) == (size_a, size_b, overlap)
    assert overlap > 0
    assert body["jaccard"] == round(overlap / (size_a + size_b - overlap), 6)
    c = body["circles"]
    assert c["r1"] / c["r2"] == pytest.approx((size_a / size_b) ** 0.5, rel=1e-3)
    similar = login(acme_marketer).get(f"{API}/audiences/{data['crm']}/similar").json()["similar"]
    assert similar[0]["id"] == data["events"] and similar[0]["jaccard"] == body["jaccard"]


def test_exclusion_helper_saves_the_difference(data: dict[str, int], acme_marketer: Any, login: Any) -> None:
    client = login(acme_marketer)
    response = client.post(f"{API}/audiences/{data['crm']}/exclude", {"exclude": [data["events"]]},
                           content_type="application/json")  # fmt: skip
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["tree"]["children"][1] == {"op": "not", "children": [{"field": "audience", "operator": "in",
                                                                      "value": [data["events"]]}]}  # fmt: skip
    a_sql, b_sql = _members_sql(data["crm"]), _members_sql(data["events"])
    (only_a,) = _sql(a_sql + ", mb AS (" + b_sql.split("m AS (")[1] + " SELECT count(*) FROM m WHERE NOT EXISTS "
                     "(SELECT 1 FROM mb WHERE mb.version_id = m.version_id AND mb.row = m.row)")[0]  # fmt: skip
    assert body["audience"]["count"] == only_a
    assert body["audience"]["name"] == "CRM without Event leads"
    # lineage both ways
    usage = client.get(f"{API}/audiences/{data['crm']}/usage").json()
    assert [u["name"] for u in usage["used_by"] if u["kind"] == "audience"] == ["CRM without Event leads"]
    derived = client.get(f"{API}/audiences/{body['audience']['id']}/usage").json()
    assert {u["id"] for u in derived["built_from"]} == {data["crm"], data["events"]}
    assert derived["count_history"][0]["count"] == only_a
    bad = client.post(
        f"{API}/audiences/{data['crm']}/exclude", {"exclude": [data["crm"]]}, content_type="application/json"
    )
    assert bad.status_code == 400 and "itself" in bad.json()["error"]["message"]


def test_usage_lists_campaigns_registered_providers_and_the_audit_trail(
    data: dict[str, int], acme: Any, acme_marketer: Any, login: Any
) -> None:
    from campaigns.models import Campaign
    from p360.core.registry import AudienceUsage, register_audience_usage, unregister_audience_usage

    with schema_context("org_acme"):
        Campaign.objects.create(name="Spring push").audiences.add(data["crm"])
    register_audience_usage(
        key="test-deliveries",
        order=999,
        provider=lambda a: [AudienceUsage(kind="delivery", id=7, name="LiveRamp weekly")],
    )
    try:
        client = login(acme_marketer)
        _insights(client, data["crm"])
        _insights(client, data["crm"])  # one "viewed" row per hour, not per call
        client.get(f"{API}/audiences/{data['crm']}/export?what=analytics&format=csv")
        usage = client.get(f"{API}/audiences/{data['crm']}/usage").json()
    finally:
        unregister_audience_usage("test-deliveries")
    kinds = {(u["kind"], u["name"]) for u in usage["used_by"]}
    assert {("campaign", "Spring push"), ("delivery", "LiveRamp weekly")} <= kinds
    verbs = [a["verb"] for a in usage["activity"]]
    assert verbs.count("viewed") == 1 and "exported" in verbs
    assert usage["activity"][0]["actor"] == "marketer@acme.test"
    assert usage["count_history"][0]["count"] == 400


def test_bi_exports_with_a_token_csv_and_parquet(data: dict[str, int], acme_marketer: Any) -> None:
    from tenants.services import api_token_create

    _, raw = api_token_create(user=acme_marketer, name="bi")
    client = Client(HTTP_AUTHORIZATION=f"Token {raw}")
    # members: the audience's members file (its records, as `members?format=csv`), streamed
    with schema_context("org_acme"):
        vid = Audience.objects.get(pk=data["crm"]).current_version_id
    (size,) = _sql(f"SELECT count(*) FROM audiences_record WHERE version_id = {int(vid)}")[0]  # type: ignore[arg-type]
    csv = client.get(f"{API}/audiences/{data['crm']}/export?what=members&format=csv")
    assert csv.status_code == 200 and csv["Content-Type"].startswith("text/csv")
    members = pl.read_csv(io.BytesIO(b"".join(csv.streaming_content)), infer_schema=False)
    assert members.height == size and "email_sha256" in members.columns
    parquet = client.get(f"{API}/audiences/{data['crm']}/export?what=members&format=parquet")
    assert pl.read_parquet(io.BytesIO(b"".join(parquet.streaming_content))).height == size
    analytics = pl.read_parquet(
        io.BytesIO(client.get(f"{API}/audiences/{data['crm']}/export?what=analytics&format=parquet").content)
    )
    rows = _sql(_members_sql(data["crm"]) + "SELECT country, count(*) FROM m GROUP BY country")
    exported = analytics.filter(pl.col("field") == "country").select("value", "count").rows()
    assert sorted(exported, key=str) == sorted([(v, n) for v, n in rows], key=str)
    assert client.get(f"{API}/audiences/{data['crm']}/export?format=xlsx").status_code == 400
    assert Client().get(f"{API}/audiences/{data['crm']}/export").status_code in (401, 403)


def test_globex_cannot_read_acme_insights(
    data: dict[str, int], globex_marketer: Any, acme_marketer: Any, login: Any
) -> None:
    client = login(globex_marketer)
    pk = data["crm"]
    for url in (f"{API}/audiences/{pk}/insights", f"{API}/audiences/{pk}/usage", f"{API}/audiences/{pk}/similar",
                f"{API}/audiences/{pk}/export", f"{API}/audiences/similarity?a={pk}&b={data['events']}",
                f"/o/acme/audiences/{pk}/", f"/o/acme/audiences/{pk}/insights/industry.csv"):  # fmt: skip
        assert client.get(url).status_code == 404, url
    assert client.post(f"{API}/audiences/{pk}/exclude", {"exclude": [data["events"]]},
                       content_type="application/json").status_code == 404  # fmt: skip
    assert client.post(f"/o/acme/audiences/{pk}/exclude/", {"exclude": str(data["events"])}).status_code == 404
    assert client.get("/o/acme/audiences/similarity/").status_code == 404
    assert client.post(f"{API}/audiences/insights", {"tree": {"field": "country", "operator": "is_null"}},
                       content_type="application/json").status_code == 404  # fmt: skip
    # Globex's own API with acme's ids: its schema has its own canary audiences, never acme's people.
    own = client.get(f"/o/globex/api/v1/audiences/{pk}/insights")
    assert own.status_code == 404
    canary = client.get("/o/globex/api/v1/audiences/1/insights").json()
    assert canary["size"] == 0 and canary["name"] == "globex-canary-audience-1"


def test_insights_do_not_wait_for_the_cache_s_bombora_read(
    data: dict[str, int], acme_marketer: Any, login: Any, monkeypatch: Any
) -> None:
    """Issue 17: right after a rebuild the cache reads the week's scores in a thread (46 s at 20M); insights are
    served meanwhile without the surging-topics chart, say so, and show it once the scores are read."""
    client = login(acme_marketer)
    complete = _insights(client, data["crm"])
    assert complete["bombora_pending"] is False and complete["composition"]["bombora_surging"]
    entry = cache._entries["org_acme"]
    scores, entry.bombora_frame = entry.bombora_frame, None  # as while the loader thread reads them

    def never(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("insights waited for (or read) the week's Bombora scores")

    monkeypatch.setattr(cache, "bombora_long", never)
    pending = _insights(client, data["crm"])
    assert pending["bombora_pending"] is True and pending["composition"]["bombora_surging"] == []
    assert pending["size"] == complete["size"] and pending["quality"] == complete["quality"]
    page = client.get(f"/o/acme/audiences/{data['crm']}/")
    assert page.status_code == 200 and b'data-testid="bombora-pending"' in page.content
    entry.bombora_frame = scores  # the loader finished
    assert _insights(client, data["crm"]) == {**complete, "elapsed_ms": ANY, "bombora_pending": False}
