"""The ingestion runs pages of both admins, re-run action, dashboards, org admin upload, settings."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django_tenants.utils import schema_context

from campaigns.models import ClientSettings, CpmRate
from ingestion.models import IngestionRun
from tests.ingestion.helpers import SURFSIDE_HEADER, ingest, ingest_failing, set_cpm, surfside_rows, write_csv
from tests.ingestion.test_reds import HEADER, events, write

pytestmark = pytest.mark.django_db


@pytest.fixture
def runs(acme, globex, tmp_path):
    set_cpm(acme, "10")
    set_cpm(globex, "10")
    good = ingest("surfside", str(write_csv(tmp_path / "good.csv", SURFSIDE_HEADER, surfside_rows())), "--org", "acme")
    bad_rows = [*surfside_rows(n=1), ["2026-11-20", "C", "S", "P", "K", "-1", "0", "0", "0"]]
    partial = ingest("surfside", str(write_csv(tmp_path / "partial.csv", SURFSIDE_HEADER, bad_rows)), "--org", "acme")
    ingest_failing("surfside", str(write_csv(tmp_path / "broken.csv", ["Date"], [["x"]])), "--org", "acme")
    other = ingest(
        "surfside", str(write_csv(tmp_path / "globex.csv", SURFSIDE_HEADER, surfside_rows())), "--org", "globex"
    )
    reds = ingest("reds", str(write(tmp_path, "h.psv", events("acme01"))))
    return {"good": good["run_id"], "partial": partial["run_id"], "globex": other["run_id"], "reds": reds["run_id"]}


def test_org_admin_lists_its_runs_with_filters_and_counts(runs, acme, manager, login):
    client = login(manager)
    page = client.get(f"/o/{acme.slug}/admin/ingestion/ingestionrun/")
    assert page.status_code == 200
    body = page.content.decode()
    assert "good.csv" in body and "partial.csv" in body and "broken.csv" in body and "h.psv" in body
    assert "globex.csv" not in body
    assert "Upload a file" in body
    failed = client.get(f"/o/{acme.slug}/admin/ingestion/ingestionrun/", {"status__exact": "failed"}).content.decode()
    assert "broken.csv" in failed and "good.csv" not in failed
    reds_only = client.get(f"/o/{acme.slug}/admin/ingestion/ingestionrun/", {"source__exact": "reds"}).content.decode()
    assert "h.psv" in reds_only and "good.csv" not in reds_only
    detail = client.get(f"/o/{acme.slug}/admin/ingestion/ingestionrun/{runs['partial']}/change/").content.decode()
    assert "is negative" in detail  # quarantined rows with line and reason


def test_other_org_admin_cannot_open_the_run(runs, globex, super_admin, login):
    client = login(super_admin)
    assert client.get(f"/o/{globex.slug}/admin/ingestion/ingestionrun/{runs['good']}/change/").status_code in (302, 404)
    listing = client.get(f"/o/{globex.slug}/admin/ingestion/ingestionrun/").content.decode()
    assert "good.csv" not in listing and "globex.csv" in listing


def test_global_admin_scopes_runs_by_role(runs, super_admin, manager, login):
    everything = login(super_admin).get("/admin/ingestion/ingestionrun/").content.decode()
    assert "globex.csv" in everything and "h.psv" in everything
    scoped = login(manager).get("/admin/ingestion/ingestionrun/").content.decode()
    assert "good.csv" in scoped and "globex.csv" not in scoped and "h.psv" not in scoped
    by_org = login(super_admin).get("/admin/ingestion/ingestionrun/", {"org": "none"}).content.decode()
    assert "h.psv" in by_org and "good.csv" not in by_org


def test_rerun_action_starts_a_new_run_that_replaces_exactly(
    runs, acme, manager, login, django_capture_on_commit_callbacks
):
    client = login(manager)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/o/{acme.slug}/admin/ingestion/ingestionrun/",
            {"action": "rerun_runs", "_selected_action": [runs["good"]]},
            follow=True,
        )
    assert response.status_code == 200 and b"Started 1 run(s)" in response.content
    new = IngestionRun.objects.get(rerun_of_id=runs["good"])
    assert (new.status, new.trigger, new.rows_loaded) == ("succeeded", "retry", 4)


def test_dashboards_show_ingestion_health(runs, acme, super_admin, manager, login):
    assert "Ingestion failures (24 h)" in login(super_admin).get("/admin/").content.decode()
    org_dash = login(manager).get(f"/o/{acme.slug}/admin/").content.decode()
    assert "Ingestion failures (24 h)" in org_dash and "Surfside failed" in org_dash


def test_org_admin_facebook_upload(acme, manager, login):
    set_cpm(acme, "10")
    client = login(manager)
    assert client.get(f"/o/{acme.slug}/admin/ingestion/ingestionrun/upload-facebook/").status_code == 200
    content = (
        b"Day,Campaign name,Ad set name,Ad name,Impressions,Link clicks,Results,Revenue\n"
        b'2026-11-20,FB camp,Set,Ad 1,"1,000",10,1,5\n'
    )
    response = client.post(
        f"/o/{acme.slug}/admin/ingestion/ingestionrun/upload-facebook/",
        {"file": SimpleUploadedFile("fb.csv", content)},
        follow=True,
    )
    assert b"Loaded fb.csv: 1 rows read, 1 loaded" in response.content
    assert IngestionRun.objects.get(org=acme, source="facebook").created_by_email == manager.email


def test_cpm_and_client_settings_through_the_org_admin(acme, manager, login):
    client = login(manager)
    response = client.post(
        f"/o/{acme.slug}/admin/campaigns/cpmrate/add/",
        {"cpm": "11.5", "effective_date": "2026-10-01", "currency": "USD", "note": "renewal"},
    )
    assert response.status_code == 302, response.content[:2000]
    opened = client.get(f"/o/{acme.slug}/admin/campaigns/clientsettings/")
    assert opened.status_code == 302 and "/change/" in opened.url
    response = client.post(
        opened.url,
        {"currency": "USD", "alert_emails": "a@acme.test", "vibe_advertiser_id": "adv", "vibe_api_key": "secret-key"},
    )
    assert response.status_code == 302, response.content[:2000]
    with schema_context(acme.schema_name):
        assert CpmRate.objects.get().cpm == 11.5
        row = ClientSettings.objects.get()
        assert row.has_vibe_key and "secret-key" not in row.vibe_api_key_encrypted
    assert client.get(f"/o/{acme.slug}/admin/campaigns/dailymetric/").status_code == 200
    assert client.get(f"/o/{acme.slug}/admin/campaigns/strategy/").status_code == 200


def admin_upload(client, org, name: str, content: bytes, source: str, run_date: str = ""):
    return client.post(
        f"/o/{org.slug}/admin/ingestion/ingestionrun/upload-facebook/",
        {"file": SimpleUploadedFile(name, content), "source": source, "run_date": run_date},
        follow=True,
    )


def test_every_source_loads_through_the_org_admin_with_exact_counts(acme, globex, manager, login):
    set_cpm(acme, "10")
    client = login(manager)
    surfside = "\n".join([",".join(SURFSIDE_HEADER), *(",".join(map(str, r)) for r in surfside_rows(n=3))]) + "\n"
    response = admin_upload(client, acme, "media-report-2026-11-20.csv", surfside.encode(), "surfside", "2026-11-20")
    assert b"3 rows read, 3 loaded, 0 quarantined" in response.content
    vibe = (
        "date,campaign_name,strategy_name,placement_name,creative_name,impressions,clicks,conversions,revenue\n"
        "2026-11-20,CTV,Prime,Hulu,Spot,1000,5,1,10\n2026-11-20,CTV,Prime,Roku,Spot,2000,6,0,0\n"
    )
    assert b"2 rows read, 2 loaded" in admin_upload(client, acme, "vibe.csv", vibe.encode(), "vibe").content
    rows = [*events("acme01"), *events("globex01")[:2]]
    reds_text = "\n".join("|".join(r) for r in [HEADER, *rows]) + "\n"
    response = admin_upload(client, acme, "h.psv", reds_text.encode(), "reds")
    assert b"7 rows read, 5 loaded, 2 quarantined" in response.content
    run = IngestionRun.objects.get(source="reds")
    assert run.org == acme and run.routed == {"acme": 5}
    assert "belongs to another organisation" in run.quarantined.first().reason
    with schema_context(globex.schema_name):
        from ingestion.ingestion_store.models import RedsEvent

        assert RedsEvent.objects.count() == 0  # an acme manager cannot write into globex


def test_ingest_vibe_file(acme, tmp_path):
    set_cpm(acme, "10")
    path = tmp_path / "vibe.csv"
    path.write_text(
        "date,campaign_name,strategy_name,placement_name,creative_name,impressions,clicks,conversions,revenue\n"
        "2026-11-20,CTV,Prime,Hulu,Spot,1000,5,1,10.50\n"
    )
    result = ingest("vibe", str(path), "--org", "acme", "--date", "2026-11-20")
    assert (result["rows_read"], result["rows_loaded"], result["rows_quarantined"]) == (1, 1, 0)
