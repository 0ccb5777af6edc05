"""Both admins: dashboards, role scoping in lists, filters and autocompletes, the org switcher."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from p360.admin_ui import switch_org_path
from tenants.models import Organization, User

pytestmark = pytest.mark.django_db

GLOBAL_CHANGELISTS = [
    "/admin/tenants/organization/",
    "/admin/tenants/user/",
    "/admin/tenants/membership/",
    "/admin/tenants/apitoken/",
    "/admin/audit/auditevent/",
    "/admin/jobs/job/",
]
ORG_CHANGELISTS = [
    "/o/acme/admin/audiences/audience/",
    "/o/acme/admin/campaigns/campaign/",
    "/o/acme/admin/jobs/job/",
    "/o/acme/admin/audit/auditevent/",
]


@pytest.mark.parametrize("url", ["/admin/", "/o/acme/admin/", *GLOBAL_CHANGELISTS, *ORG_CHANGELISTS])
def test_pages_render_for_super_admin_and_campaign_manager(login, super_admin, manager, url):
    for user in (super_admin, manager):
        response = login(user).get(url)
        assert response.status_code == 200, (user.email, url)
        assert b"Development" in response.content or b"Test" in response.content  # environment label


@pytest.mark.parametrize("url", [*GLOBAL_CHANGELISTS, *ORG_CHANGELISTS])
def test_changelists_use_a_bounded_number_of_queries(login, super_admin, url):
    client = login(super_admin)
    client.get(url)  # warm caches (content types, sessions)
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    # django-tenants sends `SET search_path` before each query: count the queries themselves.
    real = [q["sql"][:120] for q in queries.captured_queries if not q["sql"].startswith("SET search_path")]
    assert len(real) <= 20, real


def test_campaign_manager_sees_only_assigned_orgs_in_lists_filters_and_autocomplete(login, manager):
    client = login(manager)
    orgs_page = client.get("/admin/tenants/organization/").content.decode()
    assert "Acme Corporation" in orgs_page and "Globex" not in orgs_page
    users_page = client.get("/admin/tenants/user/").content.decode()
    assert "marketer@acme.test" in users_page and "marketer@globex.test" not in users_page
    assert "admin@test.local" not in users_page
    filters = client.get("/admin/jobs/job/").content.decode()
    assert "Globex" not in filters
    autocomplete = client.get(
        "/admin/autocomplete/",
        {"app_label": "tenants", "model_name": "membership", "field_name": "org", "term": ""},
    ).json()
    assert [row["text"] for row in autocomplete["results"]] == ["Acme Corporation"]
    assert client.get(
        f"/admin/tenants/organization/{Organization.objects.get(slug='globex').pk}/change/"
    ).status_code in (302, 404)


def test_campaign_manager_cannot_edit_staff_or_see_task_queue_tables(login, manager, super_admin):
    client = login(manager)
    assert client.get(f"/admin/tenants/user/{super_admin.pk}/change/").status_code in (302, 404)
    assert (
        client.get("/admin/django_q/schedule/").status_code == 403
        or client.get("/admin/django_q/schedule/").status_code == 404
    )


def test_marketer_cannot_use_the_global_admin(login, acme_marketer):
    response = login(acme_marketer).get("/admin/")
    assert response.status_code == 403  # the branded 403, not a login page that bounces back (issue 15)
    assert login(acme_marketer).get("/admin/tenants/user/").status_code == 403


def test_org_switcher_lists_visible_orgs_and_keeps_the_page(login, manager, super_admin):
    page = login(manager).get("/o/acme/admin/audiences/audience/").content.decode()
    assert "/o/acme/admin/audiences/audience/" in page and "/o/globex/" not in page
    page = login(super_admin).get("/o/acme/admin/audiences/audience/").content.decode()
    assert 'href="/o/globex/admin/audiences/audience/"' in page


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/o/acme/admin/audiences/audience/", "/o/globex/admin/audiences/audience/"),
        ("/o/acme/admin/audiences/audience/1/change/", "/o/globex/admin/audiences/audience/"),
        ("/o/acme/admin/", "/o/globex/admin/"),
        ("/o/acme/", "/o/globex/"),
        ("/admin/tenants/user/", "/o/globex/admin/"),
        ("/orgs/", "/o/globex/"),
    ],
)
def test_switch_org_path(path, expected):
    assert switch_org_path(path, "globex") == expected


def test_creating_an_org_in_the_admin_goes_through_the_service(login, super_admin):
    response = login(super_admin).post(
        "/admin/tenants/organization/add/",
        {"name": "Umbrella", "slug": "umbrella", "ttd_advertiser_id": "", "salesforce_account_id": ""},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    org = Organization.objects.get(slug="umbrella")
    assert org.schema_name == "org_umbrella" and org.domains.get().domain == "umbrella"


def test_admin_rejects_a_bad_slug_with_a_clear_message(login, super_admin):
    response = login(super_admin).post("/admin/tenants/organization/add/", {"name": "Bad", "slug": "Bad Slug"})
    assert response.status_code == 200
    assert "invalid slug" in response.content.decode()


def test_campaign_manager_creates_a_marketer_in_their_org(login, manager, acme):
    response = login(manager).post(
        "/admin/tenants/user/add/",
        {"email": "new@acme.test", "full_name": "New Person", "role": "marketer", "orgs": [acme.pk], "password": ""},
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    user = User.objects.get(email="new@acme.test")
    assert list(user.memberships.values_list("org__slug", flat=True)) == ["acme"]


def test_admin_history_is_kept_per_org(login, super_admin):
    client = login(super_admin)
    client.post(
        "/o/acme/admin/audiences/audience/1/change/",
        {
            "name": "acme renamed",
            "description": "",
            "kind": "imported",
            "status": "draft",
            "retention_versions": 5,
            "versions-TOTAL_FORMS": 0,
            "versions-INITIAL_FORMS": 0,
        },
    )
    assert "acme renamed" in client.get("/o/acme/admin/audiences/audience/1/history/").content.decode()
    history = client.get("/o/globex/admin/audiences/audience/1/history/").content.decode()
    assert "acme renamed" not in history and "Changed name" not in history


def test_dashboards_show_counts_and_recent_activity(login, super_admin):
    client = login(super_admin)
    org_dashboard = client.get("/o/acme/admin/").content.decode()
    assert "Audiences" in org_dashboard and "Recent activity" in org_dashboard
    global_dashboard = client.get("/admin/").content.decode()
    assert "Organisations" in global_dashboard and "Recent jobs" in global_dashboard


def test_deleting_in_the_org_admin_is_audited_in_that_org(login, super_admin, acme):
    from django_tenants.utils import schema_context

    from audiences.models import Audience
    from p360.core.audit.models import AuditEvent
    from tests.factories import AudienceFactory

    with schema_context(acme.schema_name):
        target = AudienceFactory(name="to delete")
    response = login(super_admin).post(f"/o/acme/admin/audiences/audience/{target.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    with schema_context(acme.schema_name):
        assert not Audience.objects.filter(pk=target.pk).exists()
    event = AuditEvent.objects.filter(action="audience.deleted").latest("id")
    assert (event.org_slug, event.entity_id, event.before["name"]) == ("acme", str(target.pk), "to delete")


def _columns_at_1440(grid_class: str) -> int:
    """Tailwind: md >= 768 px, lg >= 1024 px, xl >= 1280 px; the last matching prefix wins at 1440 px."""
    return int(grid_class.split()[-1].rsplit("-", 1)[1])


@pytest.mark.parametrize("cards", range(2, 10))
def test_dashboard_card_grid_never_leaves_a_lone_card_at_1440(cards):
    from p360.admin_ui import kpi_grid_class

    columns = _columns_at_1440(kpi_grid_class(cards))
    assert cards <= columns or cards % columns != 1, (cards, columns)


def test_global_dashboard_cards_fill_their_rows(login, super_admin):
    response = login(super_admin).get("/admin/")
    kpis = response.context["kpis"]
    assert len(kpis) % _columns_at_1440(response.context["kpi_grid"]) != 1
    assert response.context["kpi_grid"] in response.content.decode()


def test_org_admin_audience_list_shows_record_counts_with_separators(login, manager, acme):
    from django_tenants.utils import schema_context

    from tests.factories import AudienceFactory

    with schema_context(acme.schema_name):
        AudienceFactory(name="Big list", record_count=1234567)
    page = login(manager).get("/o/acme/admin/audiences/audience/?q=Big+list").content.decode()
    assert "1,234,567" in page and "1234567<" not in page
