"""The demo's event segments: `make up` shows live members, a derived segment and sent triggers, per org."""

from __future__ import annotations

import json
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django_tenants.utils import schema_context

from segments.models import Membership, Send, UserProfile

pytestmark = pytest.mark.django_db


def _demo() -> dict[str, Any]:
    out = StringIO()
    call_command("demo", "--json", stdout=out)
    return json.loads(out.getvalue())


def test_demo_segments_have_members_sends_and_stay_in_their_org(acme_marketer: Any, login: Any) -> None:
    first = _demo()
    assert first["segments"]["segments"] == 8 and first["segments"]["profiles"] == 240
    assert _demo()["segments"] == {"segments": 0, "events": 0, "profiles": 0}  # idempotent

    listed = login(acme_marketer).get("/o/acme/api/v1/segments").json()
    members = {row["name"]: row["members"] for row in listed["results"]}
    assert set(members) == {
        "Frequent buyers (3+ orders today)",
        "Big carts ($200+ in 24 h)",
        "Hot right now (2+ orders in 60 min)",
        "Frequent buyers with big carts",
    }
    assert all(count > 0 for count in members.values()), members
    # the derived AND is never larger than either side
    both = members["Frequent buyers with big carts"]
    assert both <= members["Frequent buyers (3+ orders today)"] and both <= members["Big carts ($200+ in 24 h)"]

    for slug in ("acme", "globex"):
        with schema_context(f"org_{slug}"):
            users = set(Membership.objects.values_list("user_id", flat=True))
            assert users and all(user.startswith(f"{slug}-shopper-") for user in users)
            assert (
                Send.objects.filter(campaign__name="Thank frequent buyers").count()
                == Membership.objects.filter(segment__name="Frequent buyers (3+ orders today)").count()
            )
            # the shoppers are people of the org's CRM import: the builder's `segment` field can find them
            assert UserProfile.objects.filter(email__startswith="person").count() == 120
