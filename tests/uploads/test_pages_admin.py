"""The uploads page (drop zone + history) and the read-only org admin for uploads."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from django_tenants.utils import schema_context

from p360.core.uploads.models import Upload, UploadStatus

pytestmark = pytest.mark.django_db


def _make(n: int, schema: str = "org_acme", **fields) -> list[Upload]:  # type: ignore[no-untyped-def]
    with schema_context(schema):
        return [
            Upload.objects.create(
                filename=fields.get("filename", f"file-{i:03}.csv"),
                size=1000 + i,
                offset=fields.get("offset", 0),
                status=fields.get("status", UploadStatus.UPLOADING),
                created_by_email=fields.get("email", "someone@acme.test"),
                expires_at=timezone.now() + timedelta(hours=1),
            )
            for i in range(n)
        ]


def test_empty_state_and_the_drop_zone(login, acme_marketer):
    response = login(acme_marketer).get("/o/acme/uploads/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "No uploads yet." in html
    assert "data-uploader" in html and 'data-endpoint="/o/acme/api/v1/uploads/"' in html
    assert 'data-next="/o/acme/uploads/?completed={id}"' in html
    assert "tus-js-client/tus.min.js" in html and "p360/uploader.js" in html
    assert 'data-role="pick"' in html  # a real button opens the picker (keyboard users)
    assert "up to 1.0\xa0GB" in html


def test_history_lists_the_orgs_uploads_with_pagination_and_filters(login, manager, acme_marketer):
    _make(30)
    _make(1, filename="special.xlsx", status=UploadStatus.COMPLETE, offset=1000)
    _make(2, schema="org_globex", filename="globex-secret.csv")
    client = login(manager)
    first = client.get("/o/acme/uploads/").content.decode()
    assert "Page 1 of 2" in first and "31 uploads" in first
    assert "globex-secret" not in first
    second = client.get("/o/acme/uploads/?page=2").content.decode()
    assert "Page 2 of 2" in second
    found = client.get("/o/acme/uploads/?q=special").content.decode()
    assert "special.xlsx" in found and "file-001.csv" not in found
    complete = client.get("/o/acme/uploads/?status=complete").content.decode()
    assert "special.xlsx" in complete and "file-002.csv" not in complete
    none = client.get("/o/acme/uploads/?q=nothing-like-this").content.decode()
    assert "No uploads match these filters." in none
    assert login(acme_marketer).get("/o/acme/uploads/").status_code == 200


def test_the_completed_banner_shows_the_sha256(login, acme_marketer):
    (upload,) = _make(1, status=UploadStatus.COMPLETE)
    with schema_context("org_acme"):
        Upload.objects.filter(pk=upload.pk).update(sha256="ab" * 32, offset=upload.size)
    html = login(acme_marketer).get(f"/o/acme/uploads/?completed={upload.pk}").content.decode()
    assert "ab" * 32 in html
    assert login(acme_marketer).get("/o/acme/uploads/?completed=garbage").status_code == 200


def test_other_orgs_and_anonymous_visitors_cannot_open_the_page(login, globex_marketer):
    assert login(globex_marketer).get("/o/acme/uploads/").status_code == 404
    assert Client().get("/o/acme/uploads/").status_code == 302


def test_org_admin_lists_uploads_read_only_with_filters_and_progress(login, manager, acme_marketer):
    (upload,) = _make(1, filename="half.csv", offset=500)
    client = login(manager)
    changelist = client.get("/o/acme/admin/uploads/upload/")
    assert changelist.status_code == 200
    html = changelist.content.decode()
    assert "half.csv" in html and "role='progressbar'" in html and "aria-valuenow='50'" in html
    assert client.get("/o/acme/admin/uploads/upload/?status=uploading").status_code == 200
    assert client.get("/o/acme/admin/uploads/upload/?q=half").status_code == 200
    detail = client.get(f"/o/acme/admin/uploads/upload/{upload.pk}/change/")
    assert detail.status_code == 200
    assert client.get("/o/acme/admin/uploads/upload/add/").status_code == 403
    assert client.post(f"/o/acme/admin/uploads/upload/{upload.pk}/delete/", {"post": "yes"}).status_code == 403
    # The sidebar offers it; marketers have no admin at all.
    assert "/o/acme/admin/uploads/upload/" in client.get("/o/acme/admin/").content.decode()
    assert login(acme_marketer).get("/o/acme/admin/uploads/upload/").status_code in (302, 403, 404)


def test_org_admin_of_another_org_does_not_show_this_orgs_uploads(login, super_admin):
    (upload,) = _make(1, filename="acme-only.csv")
    client = login(super_admin)
    assert "acme-only.csv" not in client.get("/o/globex/admin/uploads/upload/").content.decode()
    assert client.get(f"/o/globex/admin/uploads/upload/{upload.pk}/change/").status_code in (302, 404)
