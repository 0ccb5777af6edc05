"""Activation API: destinations (credentials write-only), delivery configuration, deliveries, an audience's
activation panel data; contract error bodies; org isolation; secrets never in API, logs or admin pages."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from django_tenants.utils import schema_context

from activation.models import Destination, Uid2Identity
from tests.activation.conftest import h, person
from tests.activation.sftp_server import PASSWORD, USER
from tests.audiences.builder_helpers import make_imported

pytestmark = pytest.mark.django_db
SECRET = "s3cr3t-Pa55-never-shown"


def _post(client: Any, url: str, payload: Any) -> Any:
    return client.post(url, payload, content_type="application/json")


def test_destinations_api_hides_credentials_and_isolates_orgs(login: Any, super_admin: Any, acme_marketer: Any,
                                                              globex_marketer: Any, sftp: Any, caplog: Any,
                                                              ttd: Any) -> None:  # fmt: skip
    caplog.set_level(logging.DEBUG)
    admin = login(super_admin)
    created = _post(admin, "/o/acme/api/v1/destinations", {
        "name": "LiveRamp US", "kind": "liveramp", "host": "127.0.0.1", "port": sftp.port, "username": USER,
        "remote_dir": sftp.remote_dir, "host_key": sftp.host_key_line, "credentials": {"password": SECRET},
    })  # fmt: skip
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["credentials_set"] is True and body["host_key_pinned"] is True
    ttd_dest = _post(admin, "/o/acme/api/v1/destinations", {"name": "TTD", "kind": "ttd", "base_url": ttd.base_url,
                                                            "credentials": {"auth_token": SECRET}})  # fmt: skip
    assert ttd_dest.status_code == 201 and ttd_dest.json()["advertiser_id"] == "acme01"  # from the org
    listing = admin.get("/o/acme/api/v1/destinations")
    assert [d["name"] for d in listing.json()["results"]] == ["LiveRamp US", "TTD"]
    for response in (created, ttd_dest, listing, admin.get(f"/o/acme/api/v1/destinations/{body['id']}")):
        assert SECRET not in response.content.decode()
    with schema_context("org_acme"):
        stored = Destination.objects.get(name="LiveRamp US").credentials_encrypted
        assert SECRET not in stored and stored
    # Marketers read but may not change destinations; another org sees none of them.
    marketer = login(acme_marketer)
    assert marketer.get("/o/acme/api/v1/destinations").status_code == 200
    refused = _post(marketer, "/o/acme/api/v1/destinations", {"name": "x", "kind": "s3", "bucket": "b"})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "permission_denied"
    assert login(globex_marketer).get("/o/acme/api/v1/destinations").status_code == 404
    assert admin.get("/o/globex/api/v1/destinations").json()["results"] == []
    bad = _post(admin, "/o/acme/api/v1/destinations", {"name": "No key", "kind": "sftp", "host": "h", "username": "u"})
    assert bad.status_code == 400 and "host key" in bad.json()["error"]["message"] + str(bad.json()["error"])
    dup = _post(admin, "/o/acme/api/v1/destinations", {"name": "TTD", "kind": "ttd"})
    assert dup.status_code == 400 and "already exists" in str(dup.json()["error"])
    # Admin pages of the destination never show the secret either.
    with schema_context("org_acme"):
        pk = Destination.objects.get(name="LiveRamp US").pk
    for url in ("/o/acme/admin/activation/destination/", f"/o/acme/admin/activation/destination/{pk}/change/"):
        page = admin.get(url)
        assert page.status_code == 200 and SECRET not in page.content.decode()
    assert SECRET not in caplog.text


def test_config_deliveries_and_audience_activation(login: Any, super_admin: Any, acme: Any, sftp: Any,
                                                   s3_staging: Any, globex_marketer: Any,
                                                   django_capture_on_commit_callbacks: Any) -> None:  # fmt: skip
    admin = login(super_admin)
    cfg = admin.patch("/o/acme/api/v1/delivery-config", {"enabled": True, "lookback_days": 60, "push_mode": "split"},
                      content_type="application/json")  # fmt: skip
    assert cfg.status_code == 200 and cfg.json()["cadence"] == "weekly" and cfg.json()["lookback_days"] == 60
    bad = admin.patch("/o/acme/api/v1/delivery-config", {"lookback_days": 45}, content_type="application/json")
    assert bad.status_code == 400 and "30, 60, 90" in str(bad.json()["error"])
    with schema_context("org_acme"):
        audience = make_imported("Panel", [person(i) for i in range(30)])
        Uid2Identity.objects.create(kind="email", hashed=h("person1@example.com"), status="mapped", uid2="U1")
    created = _post(admin, "/o/acme/api/v1/destinations", {
        "name": "LR", "kind": "liveramp", "host": "127.0.0.1", "port": sftp.port, "username": USER,
        "remote_dir": sftp.remote_dir, "host_key": sftp.host_key_line, "credentials": {"password": PASSWORD},
        "audiences": [audience.pk],
    })  # fmt: skip
    assert created.status_code == 201
    refused = _post(admin, "/o/acme/api/v1/deliveries", {"destination": "LR", "dry_run": "false"})
    assert (
        refused.status_code == 400 and "dry_run" in refused.json()["error"]["details"]["fields"]
    )  # never a real delivery
    dry = _post(admin, "/o/acme/api/v1/deliveries", {"destination": "LR", "dry_run": True})
    assert dry.status_code == 200 and dry.json()["status"] == "dry_run" and dry.json()["added"] == 30
    with django_capture_on_commit_callbacks(execute=True):
        sent = _post(admin, "/o/acme/api/v1/deliveries", {"destination": "LR"})
    assert sent.status_code == 201  # started on the task cluster (synchronous in tests)
    listing = admin.get("/o/acme/api/v1/deliveries?destination=LR").json()["results"]
    assert [d["status"] for d in listing] == ["sent", "dry_run"]
    paged = admin.get("/o/acme/api/v1/deliveries?limit=1&offset=1").json()  # the shared bounded paginator
    assert paged["count"] == 2 and [d["status"] for d in paged["results"]] == ["dry_run"] and paged["previous"]
    assert admin.get("/o/acme/api/v1/deliveries?limit=-1").status_code == 400
    assert admin.get("/o/acme/api/v1/deliveries?destination=nope").status_code == 404
    with django_capture_on_commit_callbacks(execute=True):  # the first read queues the count (a job, run at once here)
        counting = admin.get(f"/o/acme/api/v1/audiences/{audience.pk}/activation").json()
    assert counting["uid2"]["state"] == "counting" and counting["match_rate"] is None
    act = admin.get(f"/o/acme/api/v1/audiences/{audience.pk}/activation").json()
    assert act["match_rate"] == round(1 / 30, 4) and act["uid2"]["mapped"] == 1 and act["uid2"]["state"] == "current"
    assert act["destinations"][0]["name"] == "LR" and act["last_delivery"]["status"] == "sent"
    assert act["next_delivery_at"] is not None
    missing = admin.get("/o/acme/api/v1/audiences/987654/activation")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert login(globex_marketer).get(f"/o/acme/api/v1/audiences/{audience.pk}/activation").status_code == 404
    page = admin.get(f"/o/acme/audiences/{audience.pk}/")
    assert page.status_code == 200 and "Activation" in page.content.decode() and "3.3%" in page.content.decode()
