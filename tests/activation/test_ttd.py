"""TTD first-party export against a local Data API stand-in: payload shape (TTL 90 days, BaseBidCPM 1.15),
FailedLines kept per record, 413 splits, 429 honours Retry-After, removals with TTL 0, refresh before expiry,
nothing half-sent marked sent; ICP seeds (10K-50K ids, `ICP_Seed_<name>`)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context

from activation.delivery import start_delivery
from activation.models import DeliveryStatus, TtdMember
from activation.services import config_update, destination_create, icp_seed_designate
from audiences.models import Audience
from tenants.services import ServiceError
from tests.activation.conftest import person
from tests.activation.ttd_server import TOKEN
from tests.audiences.builder_helpers import make_imported

pytestmark = pytest.mark.django_db


def map_everything() -> None:
    """Mark every hash the records carry as mapped (UID2 = 'U' + hash): the operator is tested elsewhere."""
    from activation.identities import register

    register(None)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE activation_uid2identity SET status = 'mapped', uid2 = 'U' || hashed "
                       "WHERE status = 'pending'")  # fmt: skip
        cursor.execute("ANALYZE activation_uid2identity")


def ttd_destination(ttd: Any, audiences: list[Audience], name: str = "TTD") -> Any:
    return destination_create(actor=None, name=name, kind="ttd",
                              data={"base_url": ttd.base_url, "advertiser_id": "acme01",
                                    "credentials": {"auth_token": TOKEN}},
                              audience_ids=[a.pk for a in audiences])  # fmt: skip


def uid(i: int) -> str:
    from tests.activation.conftest import h

    return "U" + h(f"person{i}@example.com")


def test_ttd_delivery_payload_failed_lines_413_429_then_removals(acme: Any, ttd: Any, settings: Any,
                                                                 monkeypatch: Any) -> None:  # fmt: skip
    slept: list[float] = []
    monkeypatch.setattr("activation.ttd.time.sleep", slept.append)
    with schema_context(acme.schema_name):
        audience = make_imported(
            "TTD buyers", [{**person(i), "phone_e164": None, "phone_sha256": None} for i in range(30)]
        )
        map_everything()
        dest = ttd_destination(ttd, [audience])
        ttd.max_items = 10
        ttd.retry_after = 3
        ttd.fail_next([429])
        ttd.refuse = {uid(4), uid(7)}
        d = start_delivery(destination=dest, actor=None, dry_run=False, inline=True)
        assert d.status == DeliveryStatus.PARTIAL and d.failed_lines == 2, d.error
        assert d.added == 30 and d.rows == 28 and d.receipt["splits"] >= 2
        assert slept[:1] == [3.0]  # Retry-After honoured
        item = ttd.requests[0]["Items"][0]
        assert ttd.requests[0]["AdvertiserId"] == "acme01"
        assert item["Data"][0]["TtlInMinutes"] == 90 * 1440 and item["Data"][0]["BaseBidCPM"] == 1.15
        segment = f"P360_{audience.pk}_TTDBuyers"
        assert len(ttd.segments[segment]) == 28
        refused = TtdMember.objects.get(uid2=uid(4))
        assert refused.status == "failed" and refused.error_code == "Uid2Error" and "item #" in refused.error_message
        assert TtdMember.objects.filter(status="sent").count() == 28
        # Three members leave, the refused ones are fixed, one member's TTL is about to end.
        make_imported("TTD buyers", [{**person(i), "phone_e164": None, "phone_sha256": None} for i in range(3, 30)])
        ttd.refuse = set()
        TtdMember.objects.filter(uid2=uid(10)).update(expires_at=timezone.now() + dt.timedelta(days=1))
        before = len(ttd.requests)
        again = start_delivery(destination=dest, actor=None, dry_run=False, inline=True)
        assert again.status == DeliveryStatus.SENT and (again.added, again.removed) == (2, 3)
        sent_items = [i for body in ttd.requests[before:] for i in body["Items"]]
        by_uid = {i["UID2"]: i["Data"][0]["TtlInMinutes"] for i in sent_items}
        assert by_uid == {uid(0): 0, uid(1): 0, uid(2): 0, uid(4): 129600, uid(7): 129600, uid(10): 129600}
        assert len(ttd.segments[segment]) == 27
        assert TtdMember.objects.filter(status="removed").count() == 3


def test_a_failing_api_marks_nothing_sent(acme: Any, ttd: Any, monkeypatch: Any, settings: Any) -> None:
    monkeypatch.setattr("activation.ttd.time.sleep", lambda s: None)
    settings.P360_TTD_MAX_RETRIES = 2
    with schema_context(acme.schema_name):
        audience = make_imported("TTD down", [person(i) for i in range(30)])
        map_everything()
        dest = ttd_destination(ttd, [audience], name="TTD down")
        ttd.fail_next([503] * 10)
        d = start_delivery(destination=dest, actor=None, dry_run=False, inline=True)
        assert d.status == DeliveryStatus.FAILED and "HTTP 503" in d.error
        assert not TtdMember.objects.filter(destination=dest).exists()
        dry = start_delivery(destination=dest, actor=None, dry_run=True)
        assert dry.status == DeliveryStatus.DRY_RUN and dry.added == 60  # emails and phones each map


def test_a_failed_line_that_is_not_an_object_leaves_the_batch_unconfirmed(acme: Any, ttd: Any) -> None:
    """A FailedLine entry that is a bare string or number cannot be placed: every line of that batch is kept as
    refused with the reason (never marked sent), and the delivery is partial, not a crash."""
    with schema_context(acme.schema_name):
        audience = make_imported("TTD odd", [person(i) for i in range(26)])
        map_everything()
        dest = ttd_destination(ttd, [audience], name="TTD odd")
        ttd.odd_failed_lines = ["unexpected text", 7]
        d = start_delivery(destination=dest, actor=None, dry_run=False, inline=True)
        assert d.status == DeliveryStatus.PARTIAL, d.error
        assert d.failed_lines == 52 and d.rows == 0
        members = TtdMember.objects.filter(destination=dest)
        assert members.count() == 52 and set(members.values_list("status", flat=True)) == {"failed"}
        refused = members.first()
        assert refused.error_code == "UnreadableFailedLine" and "'unexpected text'" in refused.error_message


def test_ttl_is_configurable_up_to_180_days(acme: Any) -> None:
    with schema_context(acme.schema_name):
        assert config_update(actor=None, ttd_ttl_days=180).ttd_ttl_days == 180
        with pytest.raises(ServiceError, match="between 1 and 180"):
            config_update(actor=None, ttd_ttl_days=181)


def _seed_audience(name: str, n: int) -> Audience:
    audience = make_imported(name, [])
    version = audience.current_version_id
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO audiences_record_v{version} (version_id, row, line, email_normalized) "
            "SELECT %s, g, g + 2, 'seed-' || %s || '-' || g FROM generate_series(0, %s - 1) g",
            [version, name, n],
        )
        cursor.execute(f"ANALYZE audiences_record_v{version}")  # as an import leaves it: planned with statistics
    return audience


def test_icp_seed_range_name_and_export(acme: Any, ttd: Any) -> None:
    with schema_context(acme.schema_name):
        small = _seed_audience("Too small", 9_999)
        good = _seed_audience("Tech ICP", 10_000)
        map_everything()
        dest = ttd_destination(ttd, [], name="TTD seeds")
        with pytest.raises(ServiceError, match="10,000 to 50,000 UID2s; audience 'Too small' has 9,999"):
            icp_seed_designate(actor=None, audience=small, destination=dest)
        seed, result = icp_seed_designate(actor=None, audience=good, destination=dest)
        assert seed.name == "ICP_Seed_TechICP" and seed.ids == 10_000 and result["accepted"] == 10_000
        assert len(ttd.segments["ICP_Seed_TechICP"]) == 10_000


def test_opted_out_people_are_never_sent_to_ttd(acme: Any, ttd: Any) -> None:
    from activation.models import Uid2Identity
    from tests.activation.conftest import h

    with schema_context(acme.schema_name):
        audience = make_imported("TTD optouts", [person(i) for i in range(30)])
        map_everything()
        Uid2Identity.objects.filter(kind="email", hashed=h("person0@example.com")).update(status="optout", uid2="")
        dest = ttd_destination(ttd, [audience], name="TTD optouts")
        d = start_delivery(destination=dest, actor=None, dry_run=False, inline=True)
        assert d.status == DeliveryStatus.SENT and d.rows == 58  # 29 people x (email + phone UID2)
        sent = {i["UID2"] for body in ttd.requests for i in body["Items"]}
        assert uid(0) not in sent and "U" + h("+15550000000") not in sent  # the phone of the opted-out person too
