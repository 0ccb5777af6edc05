"""The builder's marketer pages through the test client: they render for the org's users, another org's user
and another org's audience id get 404, anonymous visitors are sent to the login page."""

from __future__ import annotations

from typing import Any

import pytest
from django_tenants.utils import schema_context

from audiences.models import Audience, AudienceKind
from tests.audiences.builder_helpers import fresh_cache, make_imported  # noqa: F401
from tests.factories import AudienceFactory

pytestmark = pytest.mark.django_db

PAGES = ["/o/acme/audiences/build/", "/o/acme/audiences/build/templates/", "/o/acme/audiences/overlap/"]


def _built(name: str, org: str = "acme") -> Audience:
    with schema_context(f"org_{org}"):
        return AudienceFactory(name=name, kind=AudienceKind.BUILT, record_count=7)


@pytest.mark.parametrize("url", PAGES)
def test_builder_pages_render_for_the_orgs_marketer(url: str, login: Any, acme_marketer: Any) -> None:
    response = login(acme_marketer).get(url)
    assert response.status_code == 200
    assert b"Acme Corporation" in response.content


@pytest.mark.parametrize("url", PAGES)
def test_builder_pages_are_404_for_another_orgs_user(url: str, login: Any, globex_marketer: Any) -> None:
    assert login(globex_marketer).get(url).status_code == 404


@pytest.mark.parametrize("url", [*PAGES, "/o/acme/audiences/1/edit/"])
def test_anonymous_visitors_are_sent_to_login(url: str, client: Any) -> None:
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_builder_page_carries_its_config_and_vendored_scripts(login: Any, acme_marketer: Any) -> None:
    response = login(acme_marketer).get("/o/acme/audiences/build/?template=icp")
    html = response.content.decode()
    assert response.context["config"] == {
        "pagesUrl": "/o/acme/audiences/",
        "apiUrl": "/o/acme/api/v1/",
        "audienceId": None,
        "templateId": "icp",
    }
    for script in ("vendor/alpinejs/alpine.min.js", "vendor/sortablejs/Sortable.min.js", "builder/builder.js"):
        assert f"/static/{script}" in html
    assert 'aria-live="polite"' in html and "Start by adding a condition or pick a template" in html
    assert 'aria-current="page">Builder</a>' in html


def test_edit_page_opens_a_built_audience_of_the_org(login: Any, acme_marketer: Any, super_admin: Any) -> None:
    audience = _built("Tech buyers")
    for user in (acme_marketer, super_admin):
        response = login(user).get(f"/o/acme/audiences/{audience.pk}/edit/")
        assert response.status_code == 200
        assert response.context["config"]["audienceId"] == audience.pk
        assert "Edit “Tech buyers”" in response.content.decode()


def test_edit_page_is_404_for_an_imported_audience_and_for_another_orgs_id(
    login: Any, acme_marketer: Any, globex_marketer: Any
) -> None:
    with schema_context("org_acme"):
        imported = Audience.objects.get(name="acme-canary-audience-1")
    assert login(acme_marketer).get(f"/o/acme/audiences/{imported.pk}/edit/").status_code == 404
    # An id that exists only in acme's schema: globex's user asks for it under globex, then under acme.
    audience = _built("Only in acme")
    with schema_context("org_globex"):
        assert not Audience.objects.filter(pk=audience.pk).exists()
    assert login(globex_marketer).get(f"/o/globex/audiences/{audience.pk}/edit/").status_code == 404
    assert login(globex_marketer).get(f"/o/acme/audiences/{audience.pk}/edit/").status_code == 404
    assert login(globex_marketer).get(f"/o/acme/audiences/{audience.pk}/").status_code == 404


def test_overlap_page_keeps_only_the_orgs_own_ids_and_at_most_three(login: Any, acme_marketer: Any) -> None:
    a, b, c, d = (_built(f"Overlap {i}") for i in range(4))
    url = f"/o/acme/audiences/overlap/?ids={a.pk},{b.pk},x,{a.pk},999999,{c.pk},{d.pk}"
    response = login(acme_marketer).get(url)
    assert response.status_code == 200
    assert response.context["selected"] == [a.pk, b.pk, c.pk]
    assert response.context["config"]["selected"] == [a.pk, b.pk, c.pk]
    assert b"data-overlap" in response.content
    single = login(acme_marketer).get(f"/o/acme/audiences/overlap/?ids={a.pk}")
    assert b"data-overlap " not in single.content and b"Pick at least one more" in single.content


def test_overlap_page_never_lists_another_orgs_audiences(login: Any, acme_marketer: Any) -> None:
    _built("Globex secret", org="globex")
    html = login(acme_marketer).get("/o/acme/audiences/overlap/").content.decode()
    assert "acme-canary-audience-1" in html
    assert "globex" not in html.lower().replace("globex industries", "")


def test_detail_page_of_a_built_audience_offers_edit_refresh_and_download(login: Any, acme_marketer: Any) -> None:
    audience = _built("Detail me")
    html = login(acme_marketer).get(f"/o/acme/audiences/{audience.pk}/").content.decode()
    assert f'href="/o/acme/audiences/{audience.pk}/edit/"' in html
    assert f'action="/o/acme/audiences/{audience.pk}/refresh/"' in html
    assert f"/o/acme/audiences/{audience.pk}/members/download/?format=xlsx" in html
    assert "vendor/chartjs/chart.umd.min.js" in html and "Definition versions" in html


def test_audience_list_links_to_the_builder_and_overlap(login: Any, acme_marketer: Any) -> None:
    html = login(acme_marketer).get("/o/acme/audiences/").content.decode()
    assert 'href="/o/acme/audiences/build/"' in html and 'href="/o/acme/audiences/overlap/"' in html


def test_audience_list_shows_built_audiences_without_extra_queries_per_row(
    login: Any, acme_marketer: Any, django_assert_max_num_queries: Any
) -> None:
    client = login(acme_marketer)
    client.get("/o/acme/audiences/")  # warm the session and org lookups
    _built("Built one")
    with django_assert_max_num_queries(20) as few:
        client.get("/o/acme/audiences/")
    for index in range(5):
        _built(f"Built more {index}")
    with django_assert_max_num_queries(len(few.captured_queries)):
        html = client.get("/o/acme/audiences/").content.decode()
    assert html.count("in the builder") == 6 and "never" in html


def _saved(name: str, tree: dict[str, Any]) -> Audience:
    from audiences.saved import built_audience_create

    with schema_context("org_acme"):
        return built_audience_create(name=name, tree=tree, actor=None)


@pytest.mark.usefixtures("fresh_cache")
def test_refresh_button_rematerialises_and_reports_the_count(
    login: Any, acme_marketer: Any, globex_marketer: Any
) -> None:
    with schema_context("org_acme"):
        make_imported("CRM", [{"country": "US"}, {"country": "GB"}, {"country": "us"}])
    audience = _saved("US people", {"op": "and", "children": [{"field": "country", "operator": "eq", "value": "US"}]})
    client = login(acme_marketer)
    response = client.post(f"/o/acme/audiences/{audience.pk}/refresh/", follow=True)
    assert response.redirect_chain[-1][0] == f"/o/acme/audiences/{audience.pk}/"
    assert "Refreshed: 2 members." in response.content.decode()
    with schema_context("org_acme"):
        assert audience.count_history.count() == 2  # on save and on this refresh
    assert client.get(f"/o/acme/audiences/{audience.pk}/refresh/").status_code == 405
    assert login(globex_marketer).post(f"/o/acme/audiences/{audience.pk}/refresh/").status_code == 404
    with schema_context("org_acme"):
        imported = Audience.objects.get(name="CRM")
    assert client.post(f"/o/acme/audiences/{imported.pk}/refresh/").status_code == 404


@pytest.mark.usefixtures("fresh_cache")
def test_refresh_of_a_definition_that_no_longer_fits_says_why(login: Any, acme_marketer: Any) -> None:
    with schema_context("org_acme"):
        crm = make_imported("CRM", [{"country": "US"}])
        other = make_imported("Other", [{"country": "GB"}])
    audience = _saved(
        "In other", {"op": "and", "children": [{"field": "audience", "operator": "in", "value": [other.pk]}]}
    )
    with schema_context("org_acme"):
        Audience.objects.filter(pk=other.pk).delete()
    client = login(acme_marketer)
    html = client.post(f"/o/acme/audiences/{audience.pk}/refresh/", follow=True).content.decode()
    assert "Refresh failed:" in html and "The last refresh failed" in html
    assert crm.pk


def test_detail_page_renders_registered_panels_in_order_and_none_when_none_registered(
    login: Any, acme_marketer: Any, monkeypatch: Any
) -> None:
    from django.utils.html import format_html

    from p360.core import registry

    audience = _built("Panels")
    client = login(acme_marketer)
    url = f"/o/acme/audiences/{audience.pk}/"
    monkeypatch.setattr(registry, "_audience_panels", {})  # no app registered a panel: the page stands alone
    bare = client.get(url)
    assert bare.status_code == 200 and "Definition versions" in bare.content.decode()
    assert 'id="activation-panel"' not in bare.content.decode()

    def broken(request: Any, audience: Any) -> str:
        raise RuntimeError("a panel's bug")

    registry.register_audience_panel(key="second", order=20, render=lambda r, a: format_html("<p>second {}</p>", a.pk))
    registry.register_audience_panel(key="first", order=10, render=lambda r, a: "<b>plain text is escaped</b>")
    registry.register_audience_panel(key="broken", order=15, render=broken)
    html = client.get(url).content.decode()
    assert "&lt;b&gt;plain text is escaped&lt;/b&gt;" in html and f"<p>second {audience.pk}</p>" in html
    assert html.index("plain text is escaped") < html.index(f"<p>second {audience.pk}</p>")
