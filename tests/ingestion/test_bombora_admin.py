"""Bombora in the global admin: weeks, topics with current-week counts, coverage per org (scoped by role), upload."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command

from bombora import selectors
from bombora.models import BomboraWeek
from ingestion.models import IngestionRun
from tests.ingestion.bombora_helpers import WEEK, scores, surge_file, surge_line
from tests.ingestion.helpers import ingest

pytestmark = pytest.mark.django_db


def audience(tmp_path: Path, org: str, websites: list[str]) -> None:
    path = tmp_path / f"{org}-audience.csv"
    path.write_text("Email,Website\n" + "".join(f"p{i}@{org}.test,{w}\n" for i, w in enumerate(websites)))
    out = io.StringIO()
    call_command("import_audience", "--org", org, str(path), "--name", "Accounts", "--json", stdout=out)
    assert json.loads(out.getvalue())["rows_loaded"] == len(websites)


@pytest.fixture
def week(tmp_path):
    rows = [
        ("acme.com", "Cloud Security", 72),
        ("acme.com", "CRM", 30),
        ("beta.org", "Cloud Security", 65),
        ("gamma.net", "CRM", 40),
        ("globex-only.io", "CRM", 90),
    ]
    return ingest("bombora", str(surge_file(tmp_path, rows)))


def test_weeks_page_lists_counts_and_run(week, super_admin, manager, login):
    for user in (super_admin, manager):
        page = login(user).get("/admin/bombora/bomboraweek/")
        assert page.status_code == 200
        body = page.content.decode()
        assert "2026-11-16" in body or "Nov. 16, 2026" in body
        assert f"run #{week['run_id']}" in body and "Output_MasterSurgeFile_20261119.csv.gz" in body
        assert "Coverage by organisation" in body
    assert "Upload a Bombora file" in login(super_admin).get("/admin/bombora/bomboraweek/").content.decode()
    assert "Upload a Bombora file" not in login(manager).get("/admin/bombora/bomboraweek/").content.decode()
    # Bombora runs are global: a campaign manager sees them among the runs too.
    assert login(manager).get(f"/admin/ingestion/ingestionrun/{week['run_id']}/change/").status_code == 200


def test_marketers_cannot_open_the_bombora_admin(week, acme_marketer, login):
    client = login(acme_marketer)
    for url in (
        "/admin/bombora/bomboraweek/",
        "/admin/bombora/bomboraweek/coverage/",
        "/admin/bombora/bomboratopic/",
    ):
        assert client.get(url).status_code in (302, 403)


def test_topics_are_searchable_with_current_week_counts(week, super_admin, login):
    client = login(super_admin)
    body = client.get("/admin/bombora/bomboratopic/").content.decode()
    assert "Cloud Security" in body and "CRM" in body
    found = client.get("/admin/bombora/bomboratopic/", {"q": "cloud"}).content.decode()
    assert "Cloud Security" in found and ">CRM<" not in found
    counts = {t.name: (t.week_domains, t.week_surging) for t in selectors.topics_with_counts()}
    assert counts == {"Cloud Security": (2, 2), "CRM": (3, 1)}


def test_coverage_counts_each_org_and_is_scoped_by_role(week, tmp_path, acme, globex, super_admin, manager, login):
    audience(tmp_path, "acme", ["https://www.acme.com", "beta.org", "nobombora.com", "acme.com/about"])
    audience(tmp_path, "globex", ["globex-only.io", "zzz.com"])
    rows = {
        c.org.slug: (c.domains, c.covered, c.surging)
        for c in selectors.coverage(acme.__class__.objects.filter(slug__in=["acme", "globex"]))
    }
    assert rows == {"acme": (3, 2, 2), "globex": (2, 1, 1)}
    everything = login(super_admin).get("/admin/bombora/bomboraweek/coverage/").content.decode()
    assert 'data-org="acme"' in everything and 'data-org="globex"' in everything
    scoped = login(manager).get("/admin/bombora/bomboraweek/coverage/").content.decode()
    assert 'data-org="acme"' in scoped and 'data-org="globex"' not in scoped
    assert "67 %" in scoped


def test_upload_loads_the_week_for_super_admins_only(super_admin, manager, login):
    body = gzip.compress((surge_line("up.com", "CRM", 61) + "\n").encode())
    upload = SimpleUploadedFile("Output_MasterSurgeFile_20261116.csv.gz", body)
    assert login(manager).post("/admin/bombora/bomboraweek/upload/", {"file": upload}).status_code == 403
    client = login(super_admin)
    assert client.get("/admin/bombora/bomboraweek/upload/").status_code == 200
    upload = SimpleUploadedFile("Output_MasterSurgeFile_20261116.csv.gz", body)
    response = client.post("/admin/bombora/bomboraweek/upload/", {"file": upload})
    assert response.status_code == 302
    run = IngestionRun.objects.get(source="bombora")
    assert (run.status, run.trigger, run.created_by_email) == ("succeeded", "upload", super_admin.email)
    assert scores() == [("up.com", "CRM", 61)] and BomboraWeek.objects.get().week == WEEK


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("notes.pdf", b"%PDF", "only .csv, .gz, .txt files are accepted"),
        ("surge.csv", b"Acme,a.com,1,2,Tech,CRM,50,x,US\n", "no week"),
        ("page_20261116.csv", b"<html></html>\n", "not a Bombora file"),
    ],
)
def test_upload_of_a_bad_file_says_why(super_admin, login, name, content, expected):
    client = login(super_admin)
    response = client.post(
        "/admin/bombora/bomboraweek/upload/", {"file": SimpleUploadedFile(name, content)}, follow=True
    )
    assert response.status_code == 200 and expected in response.content.decode()
    assert not BomboraWeek.objects.exists()
