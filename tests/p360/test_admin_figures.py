"""Both admins show counts and amounts as the portal's pages do (session 12 UX review, "what remains"):
the imports list showed `1234567` rows, the line items `50000.00`. Each column still sorts by its field."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest
from django_tenants.utils import schema_context

from tests.factories import AudienceImportFactory, LineItemFactory

pytestmark = pytest.mark.django_db


def _cells(page: str, text: str) -> bool:
    return re.search(rf">\s*{re.escape(text)}\s*<", page) is not None


def test_import_list_shows_row_counts_with_separators_and_sorts_by_them(
    login: Any, super_admin: Any, acme: Any
) -> None:
    with schema_context(acme.schema_name):
        AudienceImportFactory(
            source_name="big.csv", rows_read=1234567, rows_loaded=1230000, rows_quarantined=4567, duplicates=2500
        )
        AudienceImportFactory(source_name="small.csv", rows_read=12, rows_loaded=12)
    client = login(super_admin)
    page = client.get("/o/acme/admin/audiences/audienceimport/").content.decode()
    for shown in ("1,234,567", "1,230,000", "4,567", "2,500"):
        assert _cells(page, shown), shown
    assert not _cells(page, "1234567") and not _cells(page, "4567")
    # "Rows read" is column 5 of list_display (1-based, as the admin's ?o= counts): ascending puts small first
    ascending = client.get("/o/acme/admin/audiences/audienceimport/?o=5").content.decode()
    descending = client.get("/o/acme/admin/audiences/audienceimport/?o=-5").content.decode()
    assert ascending.index("small.csv") < ascending.index("big.csv")
    assert descending.index("big.csv") < descending.index("small.csv")


def test_delivery_list_shows_rows_added_removed_with_separators(login: Any, super_admin: Any, acme: Any) -> None:
    from activation.models import Delivery, DeliveryStatus
    from activation.services import destination_create

    with schema_context(acme.schema_name):
        dest = destination_create(actor=None, name="bucket", kind="s3", data={"bucket": "b"}, audience_ids=[])
        Delivery.objects.create(
            destination=dest, status=DeliveryStatus.SENT, rows=2345678, added=12345, removed=6789, failed_lines=1001
        )
    page = login(super_admin).get("/o/acme/admin/activation/delivery/").content.decode()
    for shown in ("2,345,678", "12,345", "6,789", "1,001"):
        assert _cells(page, shown), shown
    assert not _cells(page, "2345678")


def test_line_items_and_cpm_rates_show_money(login: Any, super_admin: Any, acme: Any) -> None:
    from campaigns.models import CpmRate

    with schema_context(acme.schema_name):
        LineItemFactory(name="Wide", budget=Decimal("50000.00"), bid=Decimal("2.5"), currency="USD")
        LineItemFactory(name="Fine bid", budget=Decimal("1200.00"), bid=Decimal("1.2345"), currency="EUR")
        CpmRate.objects.create(cpm=Decimal("1250.5"), currency="USD", effective_date="2026-11-01")
    client = login(super_admin)
    items = client.get("/o/acme/admin/campaigns/lineitem/").content.decode()
    assert _cells(items, "$50,000.00") and _cells(items, "$2.50") and _cells(items, "€1,200.00")
    assert _cells(items, "€1.2345"), "a 4-place bid keeps its places"
    assert not _cells(items, "50000.00")
    rates = client.get("/o/acme/admin/campaigns/cpmrate/").content.decode()
    assert _cells(rates, "$1,250.50") and not _cells(rates, "1250.5000")


def test_org_list_shows_user_counts_with_separators(login: Any, super_admin: Any, acme: Any) -> None:
    from tenants.models import Membership, User

    users = User.objects.bulk_create([User(email=f"crowd{i}@test.local") for i in range(1000)])
    Membership.objects.bulk_create([Membership(user=u, org=acme) for u in users])
    total = Membership.objects.filter(org=acme).count()
    page = login(super_admin).get("/admin/tenants/organization/?q=acme").content.decode()
    assert total >= 1000 and _cells(page, f"{total:,}") and not _cells(page, str(total))


def test_destination_list_shows_audience_counts_with_separators(login: Any, super_admin: Any, acme: Any) -> None:
    from activation.services import destination_create
    from audiences.models import Audience

    with schema_context(acme.schema_name):
        dest = destination_create(actor=None, name="many", kind="s3", data={"bucket": "b"}, audience_ids=[])
        dest.audiences.set(Audience.objects.bulk_create([Audience(name=f"A{i}") for i in range(1001)]))
    page = login(super_admin).get("/o/acme/admin/activation/destination/").content.decode()
    assert _cells(page, "1,001") and not _cells(page, "1001")


def test_destination_list_counts_audiences_in_the_lists_query_not_one_per_row(
    login: Any, super_admin: Any, acme: Any
) -> None:
    """The audiences column was one COUNT per destination: the list's queries must not grow with its rows."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from activation.services import destination_create
    from audiences.models import Audience

    client = login(super_admin)
    url = "/o/acme/admin/activation/destination/"

    def queries_for_list() -> tuple[int, str]:
        client.get(url)  # warm: sessions, the org, content types
        with CaptureQueriesContext(connection) as captured:
            page = client.get(url)
        assert page.status_code == 200
        return len(captured.captured_queries), page.content.decode()

    with schema_context(acme.schema_name):
        audiences = Audience.objects.bulk_create([Audience(name=f"Q{i}") for i in range(5)])
        first = destination_create(actor=None, name="q-first", kind="s3", data={"bucket": "b"}, audience_ids=[])
        first.audiences.set(audiences[:2])
    one, _ = queries_for_list()
    with schema_context(acme.schema_name):
        for i in range(6):
            more = destination_create(actor=None, name=f"q-more-{i}", kind="s3", data={"bucket": "b"}, audience_ids=[])
            more.audiences.set(audiences[: i % 5 + 1])
    seven, page = queries_for_list()
    assert seven == one, (one, seven)
    # the counts themselves are still right, row by row
    for name, count in (("q-first", 2), ("q-more-0", 1), ("q-more-4", 5), ("q-more-5", 1)):
        row = re.search(rf"<tr[^>]*>(?:(?!</tr>).)*>{name}<(?:(?!</tr>).)*</tr>", page, re.S)
        assert row and _cells(row.group(0), str(count)), (name, row and row.group(0)[:500])


def test_segment_list_shows_thresholds_and_windows_as_people_read_them(login: Any, manager: Any, acme: Any) -> None:
    """Session 13 walk: the org admin's segment list read `200.0000` and `1440`."""
    from segments.services import segment_create

    rule = {"event_type": "orders", "attribute": "sum", "operator": "gte", "value": 200, "window_minutes": 1440}
    with schema_context(acme.schema_name):
        segment_create(data={"name": "Admin big carts", "type": "independent", "rule": rule}, actor=None)
        rule = {**rule, "value": 2.5, "window_minutes": 60}
        segment_create(data={"name": "Admin halves", "type": "independent", "rule": rule}, actor=None)
    page = login(manager).get("/o/acme/admin/segments/segment/?q=Admin").content.decode()
    assert _cells(page, "200") and _cells(page, "1,440 min") and _cells(page, "2.5") and _cells(page, "60 min")
    assert "200.0000" not in page and "2.5000" not in page
