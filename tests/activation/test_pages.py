"""The marketer pages of activation (/o/<slug>/activation/): destinations with their last delivery, delivery
settings, a destination's settings and audiences, a dry run with its diff. Managers edit; a marketer sees and
gets 403 on every change; another org's destination is a 404; credentials never appear in the HTML."""

from __future__ import annotations

from typing import Any

import pytest
from django_tenants.utils import schema_context

from activation.models import Delivery, DeliveryStatus, Destination
from activation.services import config, credentials, destination_create
from tests.activation.conftest import person
from tests.activation.sftp_server import PASSWORD, USER
from tests.audiences.builder_helpers import make_imported

pytestmark = pytest.mark.django_db
NEW_SECRET = "new-sftp-pass-Wq2"


def _setup(sftp: Any) -> tuple[Any, Any, Destination]:
    first = make_imported("Page buyers", [person(i) for i in range(30)])
    second = make_imported("Page browsers", [person(i) for i in range(100, 140)])
    dest = destination_create(
        actor=None, name="LR page", kind="liveramp",
        data={"host": "127.0.0.1", "port": sftp.port, "username": USER, "remote_dir": sftp.remote_dir,
              "host_key": sftp.host_key_line, "credentials": {"password": PASSWORD}},
        audience_ids=[first.pk],
    )  # fmt: skip
    Delivery.objects.create(destination=dest, status=DeliveryStatus.FAILED, rows=7, error="the server said no")
    return first, second, dest


def test_manager_sees_edits_and_dry_runs_without_credentials_in_the_html(login: Any, manager: Any, acme: Any,
                                                                           sftp: Any) -> None:  # fmt: skip
    client = login(manager)
    with schema_context(acme.schema_name):
        first, second, dest = _setup(sftp)
    page = client.get("/o/acme/activation/")
    html = page.content.decode()
    assert page.status_code == 200
    assert f'href="/o/acme/activation/destinations/{dest.pk}/"' in html and "failed" in html
    assert "the server said no" in html and 'href="/o/acme/activation/"' in html  # status and the nav link
    # the delivery settings
    saved = client.post("/o/acme/activation/", {"enabled": "on", "cadence": "daily", "lookback_days": "",
                                                 "push_mode": "split"}, follow=True)  # fmt: skip
    assert saved.status_code == 200 and "Delivery settings saved." in saved.content.decode()
    with schema_context(acme.schema_name):
        c = config()
        assert (c.enabled, c.cadence, c.lookback_days, c.push_mode) == (True, "daily", None, "split")
    url = f"/o/acme/activation/destinations/{dest.pk}/"
    detail = client.get(url).content.decode()
    assert PASSWORD not in detail and 'type="password" name="password" value=""' in detail and "(set)" in detail
    form = {"region": "us", "host": "127.0.0.1", "port": str(sftp.port), "username": USER,
            "remote_dir": sftp.remote_dir, "host_key": sftp.host_key_line, "compression": "gzip",
            "pgp_public_key": "", "pgp_subkey_id": "", "audiences": [first.pk, second.pk]}  # fmt: skip
    assert client.post(url, {**form, "password": NEW_SECRET}).status_code == 302  # disabled: no "enabled"
    with schema_context(acme.schema_name):
        dest.refresh_from_db()
        assert not dest.enabled and dest.compression == "gzip" and credentials(dest)["password"] == NEW_SECRET
        assert set(dest.audiences.values_list("pk", flat=True)) == {first.pk, second.pk}
    detail = client.get(url).content.decode()
    assert NEW_SECRET not in detail and PASSWORD not in detail
    # an empty password keeps the stored one; a refused change is a form error with the typed values kept
    refused = client.post(url, {**form, "enabled": "on", "region": "eu", "remote_dir": "/elsewhere"})
    assert refused.status_code == 400 and "under /uploads/&lt;subfolder&gt;" in refused.content.decode()
    assert "/elsewhere" in refused.content.decode()
    with schema_context(acme.schema_name):
        dest.refresh_from_db()
        assert dest.region == "us" and credentials(dest)["password"] == NEW_SECRET
    # the dry run builds the files and shows the diff; nothing is sent
    dry = client.post(f"{url}dry-run/", follow=True)
    html = dry.content.decode()
    assert dry.status_code == 200 and "Dry run: 70 rows, +70 / -0. Nothing was sent." in html
    assert "+70 / \u22120" in html and "Last dry run" in html
    assert list(sftp.local_dir.iterdir()) == []
    # the audience page's Activation panel links here
    audience_page = client.get(f"/o/acme/audiences/{first.pk}/").content.decode()
    assert 'href="/o/acme/activation/"' in audience_page and f'href="{url}"' in audience_page


def test_marketer_sees_but_every_change_is_403(login: Any, acme_marketer: Any, acme: Any, sftp: Any) -> None:
    client = login(acme_marketer)
    with schema_context(acme.schema_name):
        first, _, dest = _setup(sftp)
    page = client.get("/o/acme/activation/")
    assert page.status_code == 200 and "LR page" in page.content.decode()
    assert "administrators change these settings" in page.content.decode()
    url = f"/o/acme/activation/destinations/{dest.pk}/"
    detail = client.get(url)
    assert detail.status_code == 200 and PASSWORD not in detail.content.decode()
    assert "Dry run (show" not in detail.content.decode()
    assert client.post("/o/acme/activation/", {"enabled": "on", "cadence": "daily"}).status_code == 403
    assert client.post(url, {"username": "evil", "audiences": [first.pk]}).status_code == 403
    assert client.post(f"{url}dry-run/").status_code == 403
    with schema_context(acme.schema_name):
        dest.refresh_from_db()
        assert dest.username == USER and not config().enabled
        assert not Delivery.objects.filter(dry_run=True).exists()
    # the API applies the same rule
    api = client.patch(f"/o/acme/api/v1/destinations/{dest.pk}", {"enabled": False}, content_type="application/json")
    assert api.status_code == 403


def test_another_orgs_destination_is_a_404(login: Any, manager: Any, acme_marketer: Any, acme: Any,
                                           globex: Any, sftp: Any) -> None:  # fmt: skip
    with schema_context(globex.schema_name):
        theirs = destination_create(actor=None, name="Globex bucket", kind="s3", data={"bucket": "globex-b"})
    with schema_context(acme.schema_name):
        assert not Destination.objects.filter(pk=theirs.pk).exists()  # ids are per org schema
    for user in (manager, acme_marketer):
        client = login(user)
        assert client.get(f"/o/acme/activation/destinations/{theirs.pk}/").status_code == 404
        assert client.post(f"/o/acme/activation/destinations/{theirs.pk}/dry-run/").status_code == 404
        assert client.get("/o/globex/activation/").status_code == 404  # not their org
        assert client.get(f"/o/globex/activation/destinations/{theirs.pk}/").status_code == 404
    with schema_context(globex.schema_name):
        assert Destination.objects.get(pk=theirs.pk).bucket == "globex-b"


def test_manager_creates_a_destination_from_the_pages_and_a_marketer_cannot(
    login: Any, manager: Any, acme_marketer: Any, acme: Any, globex: Any, sftp: Any
) -> None:
    with schema_context(acme.schema_name):
        buyers = make_imported("New dest buyers", [person(i) for i in range(5)])
    client = login(manager)
    assert 'href="/o/acme/activation/destinations/new/"' in client.get("/o/acme/activation/").content.decode()
    kinds = client.get("/o/acme/activation/destinations/new/").content.decode()
    assert '?kind=liveramp"' in kinds and '?kind=ttd"' in kinds
    form_page = client.get("/o/acme/activation/destinations/new/?kind=liveramp").content.decode()
    assert 'name="name"' in form_page and "files.liveramp.com" in form_page and 'name="password"' in form_page
    form = {"kind": "liveramp", "name": "LR new", "region": "us", "host": "127.0.0.1", "port": str(sftp.port),
            "username": USER, "remote_dir": sftp.remote_dir, "host_key": sftp.host_key_line, "compression": "",
            "pgp_public_key": "", "pgp_subkey_id": "", "audiences": [buyers.pk]}  # fmt: skip
    # refused: the EU endpoint takes keys only; the typed values come back, nothing is stored
    refused = client.post("/o/acme/activation/destinations/new/", {**form, "region": "eu", "password": PASSWORD})
    html = refused.content.decode()
    assert refused.status_code == 400 and "takes SSH keys only" in html and 'value="LR new"' in html
    assert PASSWORD not in html
    created = client.post("/o/acme/activation/destinations/new/", {**form, "password": PASSWORD, "enabled": "on"})
    assert created.status_code == 302
    with schema_context(acme.schema_name):
        dest = Destination.objects.get(name="LR new")
        assert created["Location"] == f"/o/acme/activation/destinations/{dest.pk}/"
        assert dest.enabled and dest.port == sftp.port and credentials(dest)["password"] == PASSWORD
        assert list(dest.audiences.values_list("pk", flat=True)) == [buyers.pk]
    with schema_context(globex.schema_name):
        assert not Destination.objects.filter(name="LR new").exists()  # created in the org of the URL only
    # a marketer may not create (the page and the POST)
    marketer = login(acme_marketer)
    assert marketer.get("/o/acme/activation/destinations/new/").status_code == 403
    assert marketer.post("/o/acme/activation/destinations/new/", {**form, "name": "LR evil"}).status_code == 403
    assert 'destinations/new/"' not in marketer.get("/o/acme/activation/").content.decode()
    with schema_context(acme.schema_name):
        assert not Destination.objects.filter(name="LR evil").exists()


def test_destinations_are_listed_with_their_kind_in_words(login: Any, acme_marketer: Any, acme: Any) -> None:
    """Session 13 walk: the list read `s3 · disabled`, `ttd` (codes) where the destination's page says "Generic S3"."""
    from activation.services import destination_create

    with schema_context(acme.schema_name):
        destination_create(actor=None, name="Words bucket", kind="s3", data={"bucket": "b"}, audience_ids=[])
    page = login(acme_marketer).get("/o/acme/activation/").content.decode()
    assert '<span class="muted small">Generic S3' in page and '<span class="muted small">s3' not in page
