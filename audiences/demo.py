"""Demo audiences of each demo organisation: a few saved ones and one real CRM import (registered demo loader)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django_tenants.utils import schema_context

from audiences.models import Audience, AudienceKind, AudienceStatus
from audiences.services import audience_save, import_configure, import_create, import_start

AUDIENCES = {
    "acme": [
        ("Cloud security intent (surging)", AudienceKind.BUILT, AudienceStatus.READY, 12_904),
    ],
    "globex": [
        ("Logistics buyers EMEA", AudienceKind.BUILT, AudienceStatus.DRAFT, 7_412),
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
    audience_name, file_name, rows, offset = DEMO_IMPORTS[slug]
    path = demo_crm_file(rows, file_name, offset)
    imp = import_create(audience_name=audience_name, source_name=path.name, actor=None, path=path)
    imp = import_configure(imp=imp, actor=None, mapping=imp.mapping, custom_types=imp.custom_types)
    import_start(imp=imp, actor=None, inline=True)


def load_demo_audiences(orgs: list[Any], created: dict[str, int]) -> None:
    """The saved demo audiences and each org's imported CRM export (skipped when they exist)."""
    for org in orgs:
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
