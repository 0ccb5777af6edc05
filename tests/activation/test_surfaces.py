"""Global dashboard (deliveries across orgs, failures), org admin pages and actions, schedules and cadence."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from activation.delivery import due_destinations
from activation.models import Delivery, DeliveryStatus, Destination
from activation.services import config_update, destination_create
from tests.activation.conftest import person
from tests.audiences.builder_helpers import make_imported

pytestmark = pytest.mark.django_db


def _s3_dest(name: str, audiences: list[Any]) -> Destination:
    return destination_create(actor=None, name=name, kind="s3", data={"bucket": "b"},
                              audience_ids=[a.pk for a in audiences])  # fmt: skip


def test_global_dashboard_lists_deliveries_across_orgs_and_failures(login: Any, super_admin: Any, acme: Any,
                                                                    globex: Any) -> None:  # fmt: skip
    for org, status in ((acme, DeliveryStatus.FAILED), (globex, DeliveryStatus.SENT)):
        with schema_context(org.schema_name):
            dest = _s3_dest(f"{org.slug}-bucket", [])
            Delivery.objects.create(
                destination=dest, status=status, rows=42, error="boom" if status == "failed" else ""
            )
    page = login(super_admin).get("/admin/")
    html = page.content.decode()
    assert page.status_code == 200
    assert "Deliveries across organisations" in html and "acme-bucket" in html and "globex-bucket" in html
    assert "Delivery failures" in html


def test_org_admin_pages_and_dry_run_action(login: Any, super_admin: Any, acme: Any) -> None:
    client = login(super_admin)
    with schema_context(acme.schema_name):
        audience = make_imported("Admin people", [person(i) for i in range(30)])
        dest = _s3_dest("Admin S3", [audience])
    for url in ("/o/acme/admin/activation/destination/", "/o/acme/admin/activation/delivery/",
                "/o/acme/admin/activation/deliveryconfig/", "/o/acme/admin/activation/uid2identity/",
                "/o/acme/admin/activation/ttdmember/", "/o/acme/admin/activation/icpseed/",
                "/o/acme/admin/activation/destination/add/"):  # fmt: skip
        assert client.get(url).status_code == 200, url
    response = client.post("/o/acme/admin/activation/destination/",
                           {"action": "dry_run", "_selected_action": [dest.pk]}, follow=True)  # fmt: skip
    assert response.status_code == 200 and "Admin S3: 30 rows, +30 / -0" in response.content.decode()
    with schema_context(acme.schema_name):
        assert Delivery.objects.get(destination=dest).status == DeliveryStatus.DRY_RUN


def test_campaign_manager_works_in_the_activation_admin_of_their_org_only(
    login: Any, manager: Any, acme: Any, globex: Any
) -> None:
    """The org admin's sidebar offers activation to campaign managers: every page opens for their org, and
    another org's activation admin is a 404 (the org rule), never its data."""
    client = login(manager)
    for url in ("/o/acme/admin/activation/destination/", "/o/acme/admin/activation/delivery/",
                "/o/acme/admin/activation/deliveryconfig/", "/o/acme/admin/activation/icpseed/"):  # fmt: skip
        assert client.get(url).status_code == 200, url
    assert client.get("/o/globex/admin/activation/destination/").status_code == 404


def test_cadence_decides_which_destinations_are_due(acme: Any) -> None:
    with schema_context(acme.schema_name):
        audience = make_imported("Cadence", [person(i) for i in range(30)])
        dest = _s3_dest("Weekly S3", [audience])
        assert due_destinations() == []  # deliveries are off by default
        config_update(actor=None, enabled=True)
        assert due_destinations() == [dest]
        sent = Delivery.objects.create(destination=dest, status=DeliveryStatus.SENT, finished_at=timezone.now())
        assert due_destinations() == []
        Delivery.objects.filter(pk=sent.pk).update(created_at=timezone.now() - dt.timedelta(days=7))
        assert due_destinations() == [dest]
        config_update(actor=None, cadence="monthly")
        assert due_destinations() == []


def test_org_sidebar_lists_the_registered_activation_entries(login: Any, super_admin: Any, acme: Any) -> None:
    html = login(super_admin).get("/o/acme/admin/").content.decode()
    for model in ("destination", "delivery", "deliveryconfig", "uid2identity", "ttdmember", "icpseed"):
        assert f'href="/o/acme/admin/activation/{model}/"' in html, model
    assert html.index('href="/o/acme/admin/reporting/summary/"') < html.index(
        'href="/o/acme/admin/activation/destination/"'
    )


def test_schedules_are_installed_with_the_configured_cron(settings: Any) -> None:
    from django_q.models import Schedule

    from p360.core.jobs.schedules import ensure_schedules

    ensure_schedules()
    funcs = set(Schedule.objects.values_list("func", flat=True))
    assert {"activation.jobs.start_due_deliveries", "activation.jobs.start_uid2_refresh",
            "activation.jobs.start_icp_seed_refresh"} <= funcs  # fmt: skip
    settings.P360_DELIVERY_CRON = "15 3 * * *"
    ensure_schedules()  # registered schedules read their setting late: a changed cron updates the row by name
    assert Schedule.objects.get(func="activation.jobs.start_due_deliveries").cron == "15 3 * * *"


def test_audience_page_shows_the_activation_panel_registered_by_activation(
    login: Any, super_admin: Any, acme: Any
) -> None:
    from p360.core import registry

    assert "activation" in [p.key for p in registry.audience_panels()]
    with schema_context(acme.schema_name):
        audience = make_imported("Panel people", [person(i) for i in range(5)])
        _s3_dest("Panel S3", [audience])
    html = login(super_admin).get(f"/o/acme/audiences/{audience.pk}/").content.decode()
    assert 'id="activation-panel"' in html and "UID2 match rate" in html and "Panel S3" in html
    assert 'href="/o/acme/admin/activation/destination/"' not in html  # a destination exists: no set-up link


def test_destination_refused_by_the_services_is_a_form_error_not_a_500(login: Any, super_admin: Any,
                                                                        acme: Any) -> None:  # fmt: skip
    client = login(super_admin)
    form = {"name": "No key", "kind": "sftp", "enabled": "on", "host": "sftp.example.com", "port": "22",
            "username": "u", "remote_dir": "/in", "host_key": "", "password": "s3cret-pw"}  # fmt: skip
    response = client.post("/o/acme/admin/activation/destination/add/", form)
    html = response.content.decode()
    assert response.status_code == 200  # the form again, with the services' reason
    assert "needs the server&#x27;s host key" in html and "s3cret-pw" not in html
    form.update(name="Bad key", host_key="not a key")
    response = client.post("/o/acme/admin/activation/destination/add/", form)
    assert response.status_code == 200 and "not an OpenSSH public key" in response.content.decode()
    with schema_context(acme.schema_name):
        _s3_dest("Taken", [])
        assert not Destination.objects.filter(name__in=["No key", "Bad key"]).exists()
    response = client.post("/o/acme/admin/activation/destination/add/",
                           {"name": "Taken", "kind": "s3", "bucket": "b", "port": "22"})  # fmt: skip
    assert response.status_code == 200 and "already exists" in response.content.decode()


def test_global_deliveries_list_filters_pages_and_scopes_by_org(login: Any, super_admin: Any, manager: Any,
                                                                 acme: Any, globex: Any) -> None:  # fmt: skip
    for org in (acme, globex):
        with schema_context(org.schema_name):
            dest = _s3_dest(f"{org.slug}-drop", [])
            Delivery.objects.create(destination=dest, status=DeliveryStatus.SENT, rows=7)
            Delivery.objects.create(destination=dest, status=DeliveryStatus.FAILED, error=f"{org.slug} refused")
    client = login(super_admin)
    page = client.get("/admin/activation/delivery/")
    html = page.content.decode()
    assert page.status_code == 200 and "acme-drop" in html and "globex-drop" in html and "4 deliveries" in html
    failed = client.get("/admin/activation/delivery/", {"status": "failed"}).content.decode()
    assert "acme refused" in failed and "globex refused" in failed and "2 deliveries" in failed
    only_globex = client.get("/admin/activation/delivery/", {"org": "globex"}).content.decode()
    assert "globex-drop" in only_globex and "acme-drop" not in only_globex
    found = client.get("/admin/activation/delivery/", {"q": "acme refused"}).content.decode()
    assert "1 delivery" in found and 'href="/o/acme/admin/activation/delivery/' in found
    # An org's staff (campaign manager of acme) sees acme's deliveries only, whatever the filter says.
    scoped = login(manager)
    mine = scoped.get("/admin/activation/delivery/").content.decode()
    assert "acme-drop" in mine and "globex" not in mine
    assert "globex-drop" not in scoped.get("/admin/activation/delivery/", {"org": "globex"}).content.decode()
    assert "globex refused" not in scoped.get("/admin/activation/delivery/", {"q": "globex"}).content.decode()


def test_global_deliveries_page_uses_the_paginator(acme: Any, globex: Any) -> None:
    from activation.admin_ui import global_deliveries_page
    from tenants.models import Organization

    for org in (acme, globex):
        with schema_context(org.schema_name):
            dest = _s3_dest(f"{org.slug}-pages", [])
            for _ in range(3):
                Delivery.objects.create(destination=dest, status=DeliveryStatus.SENT)
    orgs = Organization.objects.filter(slug__in=["acme", "globex"])
    first = global_deliveries_page(orgs, per_page=4)
    second = global_deliveries_page(orgs, per_page=4, page=2)
    assert first["paginator"].count == 6 and first["paginator"].num_pages == 2
    assert len(first["page_obj"].object_list) == 4 and len(second["page_obj"].object_list) == 2
    seen = {(r["org_slug"], r["id"]) for r in [*first["page_obj"].object_list, *second["page_obj"].object_list]}
    assert len(seen) == 6
    assert global_deliveries_page(orgs, page="junk")["page_obj"].number == 1
