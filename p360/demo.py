"""Demo organisations, users and data. Idempotent: running it again changes nothing.

Later features add their demo data here (audience records, metrics, ...).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.db import transaction
from django_tenants.utils import schema_context

from audiences.models import Audience, AudienceKind, AudienceStatus
from audiences.services import audience_save
from campaigns.models import Campaign, CampaignStatus
from campaigns.services import campaign_save
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

AUDIENCES = {
    "acme": [
        ("Enterprise IT decision makers", AudienceKind.IMPORTED, AudienceStatus.READY, 48_210),
        ("Cloud security intent (surging)", AudienceKind.BUILT, AudienceStatus.READY, 12_904),
        ("ICP seed: manufacturing", AudienceKind.SEED, AudienceStatus.DRAFT, 25_000),
    ],
    "globex": [
        ("Globex CRM export Q3", AudienceKind.IMPORTED, AudienceStatus.READY, 91_377),
        ("Logistics buyers EMEA", AudienceKind.BUILT, AudienceStatus.DRAFT, 7_412),
    ],
}

CAMPAIGNS = {
    "acme": [
        ("Acme Q4 awareness", CampaignStatus.ACTIVE, dt.date(2026, 10, 1), dt.date(2026, 12, 31), Decimal("125000.00")),
        ("Acme retargeting always-on", CampaignStatus.ACTIVE, dt.date(2026, 1, 1), None, Decimal("40000.00")),
        ("Acme spring launch", CampaignStatus.ENDED, dt.date(2026, 3, 1), dt.date(2026, 5, 31), Decimal("80000.00")),
    ],
    "globex": [
        ("Globex holiday push", CampaignStatus.DRAFT, dt.date(2026, 12, 1), dt.date(2026, 12, 24), Decimal("60000.00")),
    ],
}


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
    """Create what is missing of the demo data; returns what exists and what was created."""
    created: dict[str, int] = {"orgs": 0, "users": 0, "audiences": 0, "campaigns": 0}
    for spec in ORGS:
        _, was_created = _ensure_org(spec)
        created["orgs"] += was_created
    for user_spec in USERS:
        _, was_created = _ensure_user(user_spec)
        created["users"] += was_created
    for org in Organization.objects.filter(slug__in=[spec["slug"] for spec in ORGS]):
        with schema_context(org.schema_name):
            for name, kind, status, count in AUDIENCES.get(org.slug, []):
                if not Audience.objects.filter(name=name).exists():
                    audience_save(
                        audience=Audience(name=name, kind=kind, status=status, record_count=count), actor=None
                    )
                    created["audiences"] += 1
            for name, status, start, end, budget in CAMPAIGNS.get(org.slug, []):  # type: ignore[attr-defined]
                if not Campaign.objects.filter(name=name).exists():
                    campaign_save(
                        campaign=Campaign(name=name, status=status, start_date=start, end_date=end, budget=budget),
                        actor=None,
                    )
                    created["campaigns"] += 1
    # --- ingestion (issue 6): four weeks of metrics from every source, through the real ETL ---
    from ingestion.demo import load_demo_metrics

    metrics = load_demo_metrics(list(Organization.objects.filter(slug__in=[spec["slug"] for spec in ORGS])))
    return {
        "created": created,
        "metrics": metrics,
        "orgs": [spec["slug"] for spec in ORGS],
        "logins": [{"email": spec["email"], "role": spec["role"], "password": DEMO_PASSWORD} for spec in USERS],
    }
