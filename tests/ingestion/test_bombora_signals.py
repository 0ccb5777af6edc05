"""Story 6.1: research volume and the surge indicator are stored beside the composite score when the file carries
them (a CSV with a header); files without them (Master Surge, ADAT) leave them empty; bad values are quarantined
with line and reason; duplicates merge (highest volume, surging if any row says so)."""

from __future__ import annotations

import pytest
from django.db import connection

from ingestion.models import QuarantinedRow
from tests.ingestion.bombora_helpers import surge_file, write
from tests.ingestion.helpers import ingest

pytestmark = pytest.mark.django_db


def signals() -> list[tuple[str, str, int, int | None, bool | None]]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT s.domain, t.name, s.score, s.volume, s.surging FROM public.ingestion_bombora_score s "
            "JOIN public.ingestion_bomboratopic t ON t.id = s.topic_id ORDER BY 1, 2"
        )
        return list(cursor.fetchall())


def test_volume_and_surge_are_stored_when_the_file_carries_them(tmp_path):
    path = write(
        tmp_path / "intent_20261116.csv",
        [
            "Domain,Company Name,Topic,Composite Score,Research Volume,Surge",
            'acme.com,Acme,Cloud Security,70,"1,250",Yes',
            "beta.org,Beta,CRM,55,40,false",
            "gamma.net,Gamma,CRM,61,,",
            "delta.io,Delta,CRM,62,12.5,yes",
            "eps.io,Eps,CRM,63,7,maybe",
            "acme.com,Acme,Cloud Security,65,2000,no",
        ],
    )
    result = ingest("bombora", str(path))
    assert (result["rows_read"], result["rows_loaded"], result["rows_quarantined"]) == (6, 3, 2)
    assert signals() == [
        ("acme.com", "Cloud Security", 70, 2000, True),  # duplicates: highest score, highest volume, any surge
        ("beta.org", "CRM", 55, 40, False),
        ("gamma.net", "CRM", 61, None, None),
    ]
    reasons = dict(QuarantinedRow.objects.filter(run_id=result["run_id"]).values_list("line_no", "reason"))
    assert reasons == {
        5: "research volume '12.5' is not a whole number",
        6: "surge 'maybe' is not true/false (or yes/no, 1/0)",
    }


def test_files_without_them_leave_them_empty(tmp_path):
    ingest("bombora", str(surge_file(tmp_path, [("a.com", "CRM", 70)])))
    assert signals() == [("a.com", "CRM", 70, None, None)]


def test_the_org_api_shows_a_domains_signals(tmp_path, acme_marketer, login):
    path = write(
        tmp_path / "intent_20261116.csv",
        [
            "Domain,Company Name,Topic,Composite Score,Research Volume,Surge",
            "acme.com,Acme,Cloud Security,70,1250,yes",
            "acme.com,Acme,CRM,40,,",
        ],
    )
    ingest("bombora", str(path))
    client = login(acme_marketer)
    body = client.get("/o/acme/api/v1/fields/bombora/domain?domain=ACME.com").json()
    assert body == {
        "domain": "acme.com",
        "week": "2026-11-16",
        "topics": [
            {"topic": "Cloud Security", "score": 70, "volume": 1250, "surging": True, "surging_by_score": True},
            {"topic": "CRM", "score": 40, "volume": None, "surging": None, "surging_by_score": False},
        ],
    }
    assert client.get("/o/acme/api/v1/fields/bombora/domain").status_code == 400
    assert client.get("/o/acme/api/v1/fields/bombora/domain?domain=a.com&week=nope").status_code == 400


def test_the_global_admin_shows_a_domains_volume_and_surge(tmp_path, super_admin, acme_marketer, login):
    path = write(
        tmp_path / "intent_20261116.csv",
        [
            "Domain,Company Name,Topic,Composite Score,Research Volume,Surge",
            "acme.com,Acme,Cloud Security,40,1250,yes",
            "acme.com,Acme,CRM,75,,",
        ],
    )
    ingest("bombora", str(path))
    url = "/admin/bombora/bomboraweek/domain/"
    page = login(super_admin).get(url, {"domain": "ACME.com"})
    assert page.status_code == 200
    html = page.content.decode()
    assert "Cloud Security" in html and "1250" in html and ">yes<" in html  # volume and Bombora's flag
    assert 'data-topic="CRM"' in html and "—" in html  # a row without them shows empty cells
    assert login(super_admin).get(url, {"domain": "acme.com", "week": "junk"}).status_code == 200  # not a 500
    assert login(acme_marketer).get(url, {"domain": "acme.com"}).status_code in (302, 403)  # marketers: no admin
    weeks = login(super_admin).get("/admin/bombora/bomboraweek/").content.decode()
    assert url in weeks  # linked from the weeks list
