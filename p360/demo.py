"""Demo organisations, users and data. Idempotent: running it again changes nothing.

Later features add their demo data here (audience records, metrics, ...).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.conf import settings
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
        ("Cloud security intent (surging)", AudienceKind.BUILT, AudienceStatus.READY, 12_904),
    ],
    "globex": [
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


DEMO_IMPORT_AUDIENCE = "Enterprise IT decision makers"
DEMO_IMPORT_ROWS = 2_500


# Each org's real imported audience (name, file, rows, person offset): the builder counts what was loaded, so the
# demo has no audience whose count is not backed by records.
DEMO_IMPORTS = {
    "acme": (DEMO_IMPORT_AUDIENCE, "acme-crm-export.csv", DEMO_IMPORT_ROWS, 0),
    "globex": ("Globex CRM export Q3", "globex-crm-export.csv", 1_500, 50_000),
}


def demo_crm_file(rows: int = DEMO_IMPORT_ROWS, name: str = "acme-crm-export.csv", offset: int = 0) -> Path:
    """A deterministic CRM export with the usual dirt: mixed case, gmail dots and tags, bad emails,
    phones in several formats, websites with schemes, revenue with separators, duplicates.
    `offset` shifts the people (not the companies, so Bombora's demo domains cover every org)."""
    path = Path(settings.DATA_DIR) / "demo" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    titles = ["CIO", "VP, Infrastructure", "IT Director", "Head of Security", "CTO"]
    industries = ["Software", "Manufacturing", "Finance", "Healthcare", "Retail"]
    countries = ["United States", "USA", "Germany", "United Kingdom", "Canada"]
    lines = [
        "E-mail,Phone Number,First Name,Last Name,Title,Company,Website,Industry,Annual Revenue,Employees,Country,Lead Score"
    ]
    for i in range(offset, offset + rows):
        person = i // 2 if i % 41 == 5 else i  # about 2 % repeat an earlier person
        email = f"Jane.Doe{person}+crm@GMail.com" if person % 9 == 0 else f"Person{person}@Company{person % 600}.com"
        if i % 97 == 13:
            email = f"person{person}-at-company.com"  # invalid: quarantined
        phone = ["(415) 555-{:04d}", "+1 415 555 {:04d}", "415.555.{:04d}", ""][i % 4].format(person % 10_000)
        revenue = f"{(person % 400 + 1) * 1_250_000:,}"
        lines.append(
            f'{email},{phone},First{person % 300},Last{person % 700},"{titles[person % 5]}",Company {person % 600},'
            f'https://www.company{person % 600}.com/,{industries[person % 5]},"{revenue}",{(person % 90 + 1) * 50},'
            f"{countries[person % 5]},{person % 100}"
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _import_demo_file(slug: str) -> None:
    from audiences.services import import_configure, import_create, import_start

    audience_name, file_name, rows, offset = DEMO_IMPORTS[slug]
    path = demo_crm_file(rows, file_name, offset)
    imp = import_create(audience_name=audience_name, source_name=path.name, actor=None, path=path)
    imp = import_configure(imp=imp, actor=None, mapping=imp.mapping, custom_types=imp.custom_types)
    import_start(imp=imp, actor=None, inline=True)


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
    created: dict[str, int] = {"orgs": 0, "users": 0, "audiences": 0, "campaigns": 0, "imports": 0}
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
            demo_import = DEMO_IMPORTS.get(org.slug)
            if demo_import and not Audience.objects.filter(name=demo_import[0]).exists():
                _import_demo_file(org.slug)
                created["imports"] += 1
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
    # --- Bombora (issue 5): one week of intent data, global, through the real loader ---
    from ingestion.bombora_demo import load_demo_bombora

    bombora = load_demo_bombora()
    # --- issue 5: builder templates and saved audiences (after Bombora demo data, when there is any) ---
    from audiences.builder_demo import load_builder_demo

    builder = load_builder_demo(list(Organization.objects.filter(slug__in=[spec["slug"] for spec in ORGS])))
    # --- reporting (issue 7): stored weekly/monthly summaries of the demo metrics ---
    from reporting.demo import load_demo_summaries

    load_demo_summaries(list(Organization.objects.filter(slug__in=[spec["slug"] for spec in ORGS])))
    return {
        "created": created,
        "metrics": metrics,
        "bombora": bombora,
        "builder": builder,
        "orgs": [spec["slug"] for spec in ORGS],
        "logins": [{"email": spec["email"], "role": spec["role"], "password": DEMO_PASSWORD} for spec in USERS],
    }
