"""Demo organisations, users and data. Idempotent: running it again changes nothing.

Each app adds its demo data through a registered demo loader (p360.core.registry.register_demo_loader).
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from p360.core import registry
from tenants.models import Organization, Role, User
from tenants.services import org_create, user_create

DEMO_PASSWORD = "p360-demo-pass"

ORGS = [
    {"slug": "acme", "name": "Acme Corporation", "ttd_advertiser_id": "acme01", "salesforce_account_id": "001ACME"},
    {
        "slug": "globex",
        "name": "Globex Industries",
        "ttd_advertiser_id": "globex01",
        "salesforce_account_id": "001GLOBEX",
    },
]

USERS = [
    {"email": "admin@p360.local", "role": Role.SUPER_ADMIN, "orgs": [], "full_name": "Sam Super"},
    {"email": "manager@p360.local", "role": Role.CAMPAIGN_MANAGER, "orgs": ["acme"], "full_name": "Casey Manager"},
    {"email": "marketer@acme.example", "role": Role.MARKETER, "orgs": ["acme"], "full_name": "Alex Acme"},
    {"email": "marketer@globex.example", "role": Role.MARKETER, "orgs": ["globex"], "full_name": "Gina Globex"},
]


def _ensure_org(spec: dict[str, str]) -> tuple[Organization, bool]:
    org = Organization.objects.filter(slug=spec["slug"]).first()
    if org is not None:
        return org, False
    return org_create(**spec), True  # type: ignore[arg-type]


def _ensure_user(spec: dict[str, Any]) -> tuple[User, bool]:
    user = User.objects.filter(email__iexact=spec["email"]).first()
    if user is not None:
        return user, False
    orgs = [Organization.objects.get(slug=slug) for slug in spec["orgs"]]
    return user_create(
        email=spec["email"], role=spec["role"], orgs=orgs, password=DEMO_PASSWORD, full_name=spec["full_name"]
    ), True


@transaction.atomic
def load_demo() -> dict[str, Any]:
    """Create what is missing of the demo data; returns what exists and what was created.

    Organisations and users first; then each app's registered demo loader in order (p360.core.registry)."""
    created: dict[str, int] = {"orgs": 0, "users": 0, "audiences": 0, "campaigns": 0, "imports": 0}
    for spec in ORGS:
        _, was_created = _ensure_org(spec)
        created["orgs"] += was_created
    for user_spec in USERS:
        _, was_created = _ensure_user(user_spec)
        created["users"] += was_created
    orgs = list(Organization.objects.filter(slug__in=[spec["slug"] for spec in ORGS]))
    reported: dict[str, Any] = {}
    for loader in registry.demo_loaders():
        result = loader.load(orgs, created)
        if result is not None:
            reported[loader.key] = result
    return {
        "created": created,
        **reported,
        "orgs": [spec["slug"] for spec in ORGS],
        "logins": [{"email": spec["email"], "role": spec["role"], "password": DEMO_PASSWORD} for spec in USERS],
    }
