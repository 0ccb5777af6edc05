"""Report figures in the admins: org dashboard cards, the Summaries list, the global cross-org overview."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from tests.reporting.helpers import aggregate, expected, generate_rows, load

pytestmark = pytest.mark.django_db


@pytest.fixture
def recent(acme, tmp_path):
    yesterday = timezone.now().date() - dt.timedelta(days=1)
    rows = generate_rows([yesterday - dt.timedelta(days=n) for n in range(14)], campaigns=2, creatives=2)
    load(acme, tmp_path, rows)
    return rows, yesterday


def test_org_admin_dashboard_shows_last_7_days(recent, acme, manager, login):
    rows, yesterday = recent
    html = login(manager).get(f"/o/{acme.slug}/admin/").content.decode()
    want = expected(rows, yesterday - dt.timedelta(days=6), yesterday)
    assert "Spend, last 7 days" in html and f"{Decimal(want['spend']):,}" in html  # Unfold card: intcomma
    assert "Conversions, last 7 days" in html


def test_summaries_in_the_org_admin_are_the_orgs_own(recent, acme, globex, manager, super_admin, login):
    _rows, yesterday = recent
    start = yesterday - dt.timedelta(days=yesterday.weekday())  # the Monday of yesterday's week
    aggregate("--org", "acme", "--period", "week", "--start", start.isoformat())
    listing = login(manager).get(f"/o/{acme.slug}/admin/reporting/summary/")
    assert listing.status_code == 200 and start.strftime("%Y") in listing.content.decode()
    assert "Week from" in listing.content.decode()
    other = login(super_admin).get(f"/o/{globex.slug}/admin/reporting/summary/").content.decode()
    assert "Week from" not in other  # globex has no summary; acme's is not visible there


def test_global_dashboard_cross_org_overview_follows_access(recent, acme, manager, super_admin, login):
    rows, yesterday = recent
    want = expected(rows, yesterday - dt.timedelta(days=6), yesterday)
    want["spend"] = f"{Decimal(want['spend']):,}"  # shown with thousands separators
    everything = login(super_admin).get("/admin/").content.decode()
    assert "Organisations at a glance" in everything
    assert "Acme Corporation" in everything and "Globex Industries" in everything and want["spend"] in everything
    scoped = login(manager).get("/admin/").content.decode()
    assert "Acme Corporation" in scoped and want["spend"] in scoped
    overview = scoped.split("Organisations at a glance", 1)[1].split("</table>", 1)[0]
    assert "Globex" not in overview
