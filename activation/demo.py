"""Demo data of activation (issue 12): acme's built audiences attached to a Trade Desk destination, switched
off, so the Activation page shows where audiences would go and offers a dry run (nothing leaves the machine).

Idempotent: an org that has any destination is left alone.
"""

from __future__ import annotations

from typing import Any

from django_tenants.utils import schema_context

from activation.models import Destination, DestinationKind
from activation.services import destination_create
from audiences.models import Audience, AudienceKind

DEMO_DESTINATION = "The Trade Desk - demo"


def load_activation_demo(orgs: list[Any]) -> dict[str, int]:
    created = {"destinations": 0}
    for org in orgs:
        if org.slug != "acme":
            continue
        with schema_context(org.schema_name):
            if Destination.objects.exists():
                continue
            built = list(Audience.objects.filter(kind=AudienceKind.BUILT).values_list("pk", flat=True))
            # disabled: the schedule skips it (a real TTD account and UID2 identities are needed to send)
            destination_create(
                actor=None, name=DEMO_DESTINATION, kind=DestinationKind.TTD, data={"enabled": False}, audience_ids=built
            )
            created["destinations"] += 1
    return created
