"""The demo's activation data: acme's built audiences on a switched-off TTD destination; globex has none."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management import call_command
from django_tenants.utils import schema_context

from activation.demo import DEMO_DESTINATION
from activation.models import Destination

pytestmark = pytest.mark.django_db


def test_demo_destination_is_off_carries_built_audiences_and_only_in_acme(acme_marketer: Any, login: Any) -> None:
    call_command("demo", "--json")
    call_command("demo", "--json")  # idempotent
    with schema_context("org_acme"):
        (destination,) = Destination.objects.all()
        assert destination.name == DEMO_DESTINATION and not destination.enabled
        assert destination.audiences.count() >= 2 and destination.advertiser_id == "acme01"
    with schema_context("org_globex"):
        assert not Destination.objects.exists()
    page = login(acme_marketer).get("/o/acme/activation/")
    assert page.status_code == 200 and DEMO_DESTINATION in page.content.decode()
