"""Activation declares where an audience is used (destinations, deliveries, TTD segments, ICP seed) through the
audience insights' usage registry: the lineage API and the audience page show them, for the org only."""

from __future__ import annotations

from typing import Any

import pytest
from django_tenants.utils import schema_context

from activation.exports import segment_id
from activation.models import Delivery, DeliveryStatus, Destination, IcpSeed, TtdMember, TtdMemberStatus
from activation.services import destination_create
from tests.activation.conftest import person
from tests.audiences.builder_helpers import make_imported

pytestmark = pytest.mark.django_db


def _delivered_audience() -> tuple[Any, Delivery, Delivery]:
    audience = make_imported("Lineage people", [person(i) for i in range(5)])
    s3 = destination_create(actor=None, name="Lineage S3", kind="s3", data={"bucket": "b"}, audience_ids=[audience.pk])
    delivery = Delivery.objects.create(destination=s3, status=DeliveryStatus.SENT, rows=5, added=5)
    delivery.audiences.add(audience)  # what the delivery carried (run_delivery records it)
    # The same destination's later delivery without this audience is not its usage; an old delivery of a
    # destination that no longer carries it still is.
    Delivery.objects.create(destination=s3, status=DeliveryStatus.SENT, rows=9)
    old_dest = destination_create(actor=None, name="Former S3", kind="s3", data={"bucket": "c"})
    old = Delivery.objects.create(destination=old_dest, status=DeliveryStatus.SENT, rows=5)
    old.audiences.add(audience)
    Delivery.objects.create(destination=s3, status=DeliveryStatus.DRY_RUN, dry_run=True, rows=5)  # not a usage
    ttd = Destination.objects.create(name="Lineage TTD", kind="ttd", advertiser_id="adv")
    ttd.audiences.add(audience)
    for n, status in enumerate((TtdMemberStatus.SENT, TtdMemberStatus.SENT, TtdMemberStatus.REMOVED)):
        TtdMember.objects.create(destination=ttd, segment=segment_id(audience), uid2=f"uid{n}", status=status)
    IcpSeed.objects.create(audience=audience, destination=ttd, name="ICP_Seed_Lineage_people", ids=2)
    return audience, delivery, old


def test_an_audience_delivered_by_activation_shows_it_in_its_lineage(
    acme: Any, acme_marketer: Any, globex_marketer: Any, login: Any
) -> None:
    with schema_context(acme.schema_name):
        audience, delivery, old = _delivered_audience()
    client = login(acme_marketer)
    usage = client.get(f"/o/acme/api/v1/audiences/{audience.pk}/usage")
    assert usage.status_code == 200
    mine = {(u["kind"], u["name"]): u for u in usage.json()["used_by"] if u["provider"] == "activation"}
    assert set(mine) == {
        ("destination", "Lineage S3"),
        ("destination", "Lineage TTD"),
        ("delivery", f"Delivery #{delivery.pk} to Lineage S3"),  # the dry run is not a usage
        ("delivery", f"Delivery #{old.pk} to Former S3"),
        ("ttd_segment", segment_id(audience)),
        ("icp_seed", "ICP_Seed_Lineage_people"),
    }
    assert mine[("delivery", f"Delivery #{delivery.pk} to Lineage S3")]["detail"].startswith("Sent, 5 rows")
    assert mine[("ttd_segment", segment_id(audience))]["detail"] == "2 UID2s in the segment at Lineage TTD"

    page = client.get(f"/o/acme/audiences/{audience.pk}/").content.decode()
    assert f"Delivery #{delivery.pk} to Lineage S3" in page and "TTD segment: " in page and "ICP seed: " in page

    # another org's marketer sees neither the audience nor its usages
    assert login(globex_marketer).get(f"/o/acme/api/v1/audiences/{audience.pk}/usage").status_code == 404
