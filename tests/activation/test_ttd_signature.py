"""TTD `TtdSignature` authentication (reference 2.1): with only an advertiser secret key stored, each request
carries `TtdSignature: base64(HMAC-SHA1(secret, exact body bytes))`. Checked against a published test vector and
end to end against the local Data API stand-in, which verifies the signature over the bytes it received."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django_tenants.utils import schema_context

from activation.delivery import start_delivery
from activation.models import DeliveryStatus, TtdMember
from activation.services import destination_create
from activation.ttd import TtdClient
from tests.activation.conftest import person
from tests.activation.test_ttd import map_everything
from tests.activation.ttd_server import SECRET_KEY, signature
from tests.audiences.builder_helpers import make_imported

pytestmark = pytest.mark.django_db


def test_signature_header_matches_a_published_vector() -> None:
    """RudderStack's TTD integration tests (rudder-transformer, test/integrations/destinations/the_trade_desk)
    pin this signature for this body and key: our client signs the same way."""
    body = json.dumps({
        "AdvertiserId": "test-advertiser-id", "DataProviderId": "rudderstack",
        "Items": [
            {"DAID": "test-daid-1", "Data": [{"Name": "test-segment", "TTLInMinutes": 43200}]},
            {"Data": [{"Name": "test-segment", "TTLInMinutes": 43200}], "UID2": "test-uid2-1"},
            {"DAID": "test-daid-2", "Data": [{"Name": "test-segment", "TTLInMinutes": 0}]},
            {"Data": [{"Name": "test-segment", "TTLInMinutes": 0}], "UID2": "test-uid2-2"},
        ],
    }, separators=(",", ":")).encode()  # fmt: skip
    client = TtdClient(base_url="http://127.0.0.1:9", advertiser_id="x", secret_key="test-advertiser-secret-key")
    headers = client._headers(body)
    assert headers["TtdSignature"] == "8LqGha6I7e3duvhngEvhXoTden0="
    assert "TTD-Auth" not in headers and headers["Content-Type"] == "application/json"


def _signed_destination(ttd: Any, audiences: list[Any], secret: str, name: str) -> Any:
    return destination_create(actor=None, name=name, kind="ttd",
                              data={"base_url": ttd.base_url, "advertiser_id": "acme01",
                                    "credentials": {"secret_key": secret}},
                              audience_ids=[a.pk for a in audiences])  # fmt: skip


def test_delivery_signed_with_the_advertiser_secret_is_accepted(acme: Any, ttd: Any) -> None:
    """Every batch (split by a 413 into several requests, each signed over its own body) is accepted on its
    signature alone; no TTD-Auth token is sent."""
    with schema_context(acme.schema_name):
        audience = make_imported(
            "Signed buyers", [{**person(i), "phone_e164": None, "phone_sha256": None} for i in range(30)]
        )
        map_everything()
        dest = _signed_destination(ttd, [audience], SECRET_KEY, "TTD signed")
        ttd.max_items = 10  # 413s: the halves are new bodies and must carry their own signatures
        d = start_delivery(destination=dest, actor=None, dry_run=False, inline=True)
        assert d.status == DeliveryStatus.SENT, d.error
        assert d.rows == 30 and d.receipt["splits"] >= 2
        assert len(ttd.auths) >= 4 and set(ttd.auths) == {"TtdSignature"}
        assert TtdMember.objects.filter(destination=dest, status="sent").count() == 30


def test_a_wrong_secret_is_refused_and_nothing_is_marked_sent(acme: Any, ttd: Any) -> None:
    with schema_context(acme.schema_name):
        audience = make_imported("Badly signed", [person(i) for i in range(26)])
        map_everything()
        dest = _signed_destination(ttd, [audience], "not-the-secret", "TTD bad secret")
        d = start_delivery(destination=dest, actor=None, dry_run=False, inline=True)
        assert d.status == DeliveryStatus.FAILED and "HTTP 401" in d.error
        assert "not-the-secret" not in d.error
        assert ttd.requests == [] and not TtdMember.objects.filter(destination=dest).exists()


def test_the_stand_in_checks_the_exact_bytes() -> None:
    """The stand-in's check is a real one: the same JSON with other spacing is another signature."""
    compact = b'{"AdvertiserId":"a","Items":[]}'
    spaced = b'{"AdvertiserId": "a", "Items": []}'
    assert signature(SECRET_KEY, compact) != signature(SECRET_KEY, spaced)
