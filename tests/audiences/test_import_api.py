"""Imports through the org API (a tus upload, then POST .../imports and polling), and the org admin."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django_tenants.utils import schema_context

from audiences.models import AudienceImport, ImportStatus
from p360.core.jobs.services import run_job
from tenants.services import api_token_create
from tests.uploads.conftest import metadata_header, tus_create, tus_patch

pytestmark = pytest.mark.django_db
CSV = b"Email,Company\nann@example.com,Acme\nnot-an-email,Acme\nANN@example.com,Acme\nbob@example.com,Beta\n"


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, settings: Any) -> None:
    settings.DATA_DIR = tmp_path
    settings.MEDIA_ROOT = tmp_path / "media"


def _token_client(user: Any) -> Client:
    _, raw = api_token_create(user=user, name="test", actor=user)
    return Client(headers={"Authorization": f"Token {raw}"})


def _upload(client: Client, data: bytes = CSV, slug: str = "acme") -> str:
    created = tus_create(client, slug=slug, size=len(data), metadata=metadata_header(filename="crm.csv"))
    assert created.status_code == 201, created.content
    url = created["Location"]
    assert tus_patch(client, url, 0, data).status_code == 204
    return url.rstrip("/").rsplit("/", 1)[-1]


def test_start_an_import_from_an_upload_and_poll_it(acme_marketer: Any) -> None:
    client = _token_client(acme_marketer)
    upload_id = _upload(client)
    response = client.post(
        "/o/acme/api/v1/imports",
        {"upload_id": upload_id, "audience_name": "From the API"},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    started = response.json()
    assert started["status"] == ImportStatus.QUEUED and started["options"]["mapping"] == {
        "Email": "email",
        "Company": "company_name",
    }
    with schema_context("org_acme"):
        job_id = AudienceImport.objects.get(pk=started["id"]).job_id
    run_job(job_id)  # the task cluster's part (on-commit hooks never fire inside the test transaction)
    done = client.get(f"/o/acme/api/v1/imports/{started['id']}").json()
    assert done["status"] == ImportStatus.SUCCEEDED and done["finished"] is True
    assert (done["rows_read"], done["rows_loaded"], done["rows_quarantined"], done["duplicates"]) == (4, 2, 1, 1)
    assert done["reconciles"] is True and done["progress"]["percent"] == 100.0
    members = client.get(f"/o/acme/api/v1/audiences/{done['audience_id']}/members?format=csv")
    body = b"".join(members.streaming_content).decode()
    assert "ann@example.com" in body and "bob@example.com" in body and "not-an-email" not in body
    listing = client.get("/o/acme/api/v1/imports").json()["results"]
    assert started["id"] in [item["id"] for item in listing]


def test_bad_requests_get_the_contract_error_body(acme_marketer: Any) -> None:
    client = _token_client(acme_marketer)
    missing = client.post("/o/acme/api/v1/imports", {"audience_name": "x"}, content_type="application/json")
    assert missing.status_code == 400 and "upload_id" in missing.json()["error"]["details"]["fields"]
    unknown = client.post(
        "/o/acme/api/v1/imports",
        {"upload_id": "00000000-0000-0000-0000-000000000000", "audience_name": "x"},
        content_type="application/json",
    )
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"
    not_csv = _upload(client, b"\x7fELF\x02\x01\x01" + b"\x00" * 200)
    refused = client.post(
        "/o/acme/api/v1/imports", {"upload_id": not_csv, "audience_name": "x"}, content_type="application/json"
    )
    assert refused.status_code == 400 and "program" in str(refused.json()["error"]["details"]).lower()


def test_another_org_cannot_import_or_read_an_acme_upload(acme_marketer: Any, globex_marketer: Any) -> None:
    upload_id = _upload(_token_client(acme_marketer))
    outsider = _token_client(globex_marketer)
    own_org = outsider.post(
        "/o/globex/api/v1/imports", {"upload_id": upload_id, "audience_name": "stolen"}, content_type="application/json"
    )
    assert own_org.status_code == 404  # the upload id does not exist in globex's schema
    assert (
        outsider.post(
            "/o/acme/api/v1/imports",
            {"upload_id": upload_id, "audience_name": "stolen"},
            content_type="application/json",
        ).status_code
        == 404
    )
    assert outsider.get("/o/acme/api/v1/imports").status_code == 404


def test_the_org_admin_lists_imports_and_runs_one_again(login: Any, manager: Any, tmp_path: Path) -> None:
    from django.core.management import call_command

    path = tmp_path / "admin.csv"
    path.write_bytes(CSV)
    call_command("import_audience", "--org", "acme", str(path), "--name", "Admin view", "--json", stdout=io.StringIO())
    client = login(manager)
    listing = client.get("/o/acme/admin/audiences/audienceimport/?q=admin.csv")
    assert listing.status_code == 200 and b"admin.csv" in listing.content
    with schema_context("org_acme"):
        imp = AudienceImport.objects.get(audience_name="Admin view")
    detail = client.get(f"/o/acme/admin/audiences/audienceimport/{imp.pk}/change/")
    assert detail.status_code == 200 and b"quarantine.csv" in detail.content
    response = client.post(
        "/o/acme/admin/audiences/audienceimport/", {"action": "rerun_imports", "_selected_action": [imp.pk]}
    )
    assert response.status_code == 302
    with schema_context("org_acme"):
        assert AudienceImport.objects.filter(audience_name="Admin view").count() == 2
    assert login(manager).get("/o/globex/admin/audiences/audienceimport/").status_code == 404


def test_the_quarantine_csv_names_lines_and_reasons(login: Any, acme_marketer: Any, tmp_path: Path) -> None:
    from django.core.management import call_command

    path = tmp_path / "q.csv"
    path.write_bytes(CSV)
    call_command("import_audience", "--org", "acme", str(path), "--name", "Q", stdout=io.StringIO())
    with schema_context("org_acme"):
        imp = AudienceImport.objects.get(audience_name="Q")
    body = b"".join(login(acme_marketer).get(f"/o/acme/audiences/imports/{imp.pk}/quarantine.csv").streaming_content)
    assert body.decode().splitlines() == [
        "line,column,field,value,reason",
        "3,Email,email,not-an-email,invalid email address",
    ]
