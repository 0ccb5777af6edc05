"""Audience insights pages: the audience page draws every chart with its table view and CSV (figures equal SQL),
the quality score and recommendations, freshness, most similar audiences, lineage and activity; the similarity
page; the exclusion form; the builder's insights panel is on the builder page."""

# ruff: noqa: F811  (the `data` fixture is imported from the API tests)
from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from django.test import Client

from audiences.models import Audience
from tests.audiences.builder_helpers import fresh_cache  # noqa: F401
from tests.audiences.test_insights_api import _members_sql, _sql, data  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_cache")]
PAGES = "/o/acme/audiences"


def test_audience_page_shows_insights(data: dict[str, int], acme_marketer: Any, login: Any) -> None:
    client: Client = login(acme_marketer)
    page = client.get(f"{PAGES}/{data['crm']}/").content.decode()
    for field in ("industry", "country", "employee_band", "revenue_band", "job_title", "domain", "bombora_surging"):
        assert f'data-chart="{field}"' in page and f"/insights/{field}.csv" in page
    assert page.count("Table view") >= 8
    assert 'data-testid="quality-score"' in page and "lack an email: map the Email column" in page
    assert 'data-testid="similar"' in page and "Event leads" in page
    assert "Remove members of" in page and 'data-testid="count-history"' in page
    assert 'data-testid="activity"' in page  # the page view itself is recorded


def test_chart_csv_equals_sql(data: dict[str, int], acme_marketer: Any, login: Any) -> None:
    response = login(acme_marketer).get(f"{PAGES}/{data['crm']}/insights/industry.csv")
    assert response.status_code == 200
    got = {(r["industry"] or None): int(r["count"]) for r in csv.DictReader(io.StringIO(response.content.decode()))}
    expected = dict(_sql(_members_sql(data["crm"]) + "SELECT industry, count(*) FROM m GROUP BY industry"))
    assert got == expected
    assert login(acme_marketer).get(f"{PAGES}/{data['crm']}/insights/nope.csv").status_code == 404


def test_similarity_page_and_exclusion_form(data: dict[str, int], acme_marketer: Any, login: Any, acme: Any) -> None:
    client = login(acme_marketer)
    page = client.get(f"{PAGES}/similarity/?a={data['crm']}&b={data['events']}").content.decode()
    assert 'data-testid="overlap"' in page and "<circle" in page
    assert "Choose two different" in client.get(f"{PAGES}/similarity/?a={data['crm']}&b={data['crm']}").content.decode()
    response = client.post(f"{PAGES}/{data['crm']}/exclude/", {"exclude": str(data["events"])})
    assert response.status_code == 302
    from django_tenants.utils import schema_context

    with schema_context("org_acme"):
        saved = Audience.objects.get(name="CRM without Event leads")
    assert response["Location"].endswith(f"/{saved.pk}/")


def test_builder_page_has_the_insights_panel(data: dict[str, int], acme_marketer: Any, login: Any) -> None:
    page = login(acme_marketer).get(f"{PAGES}/build/").content.decode()
    assert 'data-testid="builder-insights"' in page and "insights/panel.js" in page
