"""Issue 15 item 1: one REDS file with rows of two organisations, probed from each org's admin.

Each org's campaign manager sees only its slice (rows, quarantined lines, routed count, error text),
in the change page, the changelist and its tooltips, searches, and the marketer pages; its re-run
touches only its own rows and is recorded for its org. Every probe asserts no canary of the other org."""

from __future__ import annotations

import pytest
from django.test import Client
from django_tenants.utils import schema_context

from ingestion.ingestion_store.models import RedsEvent
from ingestion.models import IngestionRun, QuarantinedRow
from p360.core.audit.models import AuditEvent
from tenants.models import Role
from tenants.services import user_create
from tests.ingestion.helpers import ingest, set_cpm
from tests.ingestion.test_reds import events, write

pytestmark = pytest.mark.django_db

# What each org must never see of the other (raw lines, advertiser id, error text, slug).
CANARIES = {
    "acme": ["acme01", "acme-secret-campaign", "acme-secret-user"],
    "globex": ["globex01", "globex-secret-campaign", "globex-secret-user", "no CPM rate", "globex"],
}
STRANGER = "stranger-secret-user"  # a row of no organisation: only the global admin sees it


def _bad_row(advertiser: str, org: str) -> list[str]:
    return [
        "2026-11-20T05:59:00Z",
        advertiser,
        f"{org}-secret-campaign",
        "li9",
        "bogus",
        "0",
        "",
        f"{org}-secret-user",
        "UID2",
        "",
    ]


@pytest.fixture
def shared_run(acme, globex, tmp_path):
    set_cpm(acme, "10")  # globex has no CPM: its slice carries a warning only globex may read
    rows = [
        *events("acme01"),
        *events("globex01")[:2],
        _bad_row("acme01", "acme"),
        _bad_row("globex01", "globex"),
        [*_bad_row("stranger", "x")[:7], STRANGER, "UID2", ""],
    ]
    result = ingest("reds", str(write(tmp_path, "shared-2026112005.psv", rows)))
    assert result["status"] == "succeeded" and result["routed"] == {"acme": 5, "globex": 2}
    return IngestionRun.objects.get(pk=result["run_id"])


@pytest.fixture
def globex_manager(globex):
    return user_create(email="cm@globex.test", role=Role.CAMPAIGN_MANAGER, orgs=[globex], password="x-pass-360-long")


class Probe:
    def __init__(self) -> None:
        self.tried = 0
        self.leaks: list[str] = []

    def check(self, where: str, body: str, forbidden: list[str]) -> None:
        self.tried += 1
        low = body.lower()
        self.leaks += [f"{where}: {word}" for word in forbidden if word.lower() in low]


def _probe_org(client: Client, slug: str, other: str, run: IngestionRun, probe: Probe) -> None:
    forbidden = [*CANARIES[other], STRANGER, "stranger"]
    base = f"/o/{slug}/admin/ingestion/ingestionrun/"
    for where, params in [
        ("changelist", {}),
        ("changelist reds", {"source__exact": "reds"}),
        ("changelist search secret", {"q": f"{other}-secret"}),
        ("changelist search error", {"q": "no CPM"}),
        ("changelist search adv", {"q": f"{other}01"}),
        ("changelist status", {"status__exact": "succeeded"}),
    ]:
        response = client.get(base, params)
        assert response.status_code == 200, where
        body = response.content.decode().replace(params.get("q", "\x00"), "")  # the search box echoes the query
        probe.check(where, body, forbidden)
    change = client.get(f"{base}{run.pk}/change/")
    assert change.status_code == 200
    probe.check("change page", change.content.decode(), forbidden)
    for path in (
        f"/o/{slug}/ingestion/runs/{run.pk}/",
        f"/o/{slug}/ingestion/runs/{run.pk}/quarantine.csv",
        f"/o/{slug}/admin/audit/auditevent/",
        f"/o/{slug}/admin/jobs/job/",
        f"/o/{slug}/admin/",
    ):
        response = client.get(path)
        assert response.status_code in (200, 404), path
        probe.check(path, response.content.decode(), forbidden)


def test_each_org_admin_sees_only_its_slice_of_a_multi_org_run(
    shared_run, acme, globex, manager, globex_manager, login
):
    probe = Probe()
    acme_client, globex_client = login(manager), login(globex_manager)
    _probe_org(acme_client, "acme", "globex", shared_run, probe)
    _probe_org(globex_client, "globex", "acme", shared_run, probe)

    # Its own slice is there, exactly.
    acme_page = acme_client.get(f"/o/acme/admin/ingestion/ingestionrun/{shared_run.pk}/change/").content.decode()
    assert "acme-secret-campaign" in acme_page and "acme: 5" in acme_page
    assert "6 / 5 / " in acme_page  # read / loaded / quarantined of acme's rows only
    globex_page = globex_client.get(f"/o/globex/admin/ingestion/ingestionrun/{shared_run.pk}/change/").content.decode()
    assert "globex-secret-campaign" in globex_page and "no CPM rate" in globex_page and "globex: 2" in globex_page
    globex_list = globex_client.get("/o/globex/admin/ingestion/ingestionrun/").content.decode()
    assert "no CPM rate" in globex_list  # the tooltip carries its own warning

    # The global admin still sees the whole run.
    whole = login(_super()).get(f"/admin/ingestion/ingestionrun/{shared_run.pk}/change/").content.decode()
    assert STRANGER in whole and "acme-secret-user" in whole and "globex-secret-user" in whole
    assert probe.tried >= 20 and probe.leaks == [], probe.leaks
    print(f"cross-org probes tried: {probe.tried}, leaks: {len(probe.leaks)}")


def _super():
    from tenants.models import User

    return User.objects.get(email="admin@test.local")


def test_org_admin_rerun_touches_only_its_own_slice(
    shared_run, acme, globex, manager, login, django_capture_on_commit_callbacks
):
    with schema_context(globex.schema_name):
        globex_before = sorted(RedsEvent.objects.values_list("id", "file_id", "line_no"))
    client = login(manager)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/o/acme/admin/ingestion/ingestionrun/",
            {"action": "rerun_runs", "_selected_action": [shared_run.pk]},
            follow=True,
        )
    assert b"Started 1 run(s)" in response.content
    new = IngestionRun.objects.get(rerun_of=shared_run)
    assert (new.status, new.org, new.rows_read, new.rows_loaded, new.rows_quarantined) == (
        "succeeded",
        acme,
        6,
        5,
        1,
    )
    assert new.routed == {"acme": 5} and new.params["slice_of"] == shared_run.pk
    assert [row.raw for row in QuarantinedRow.objects.filter(run=new)] == [
        row.raw for row in QuarantinedRow.objects.filter(run=shared_run, org_slug="acme")
    ]
    with schema_context(globex.schema_name):
        assert sorted(RedsEvent.objects.values_list("id", "file_id", "line_no")) == globex_before
    with schema_context(acme.schema_name):
        assert RedsEvent.objects.count() == 5  # replaced, never doubled
    audit = AuditEvent.objects.get(action="ingestion.rerun", entity_id=str(new.pk))
    assert audit.org_id == acme.pk and audit.actor_email == manager.email
    probe = Probe()
    page = client.get(f"/o/acme/admin/ingestion/ingestionrun/{new.pk}/change/").content.decode()
    probe.check("rerun change page", page, [*CANARIES["globex"], STRANGER])
    assert probe.leaks == []
    # The globex admin does not see acme's re-run at all.
    assert login(_super()).get(f"/o/globex/admin/ingestion/ingestionrun/{new.pk}/change/").status_code in (302, 404)
