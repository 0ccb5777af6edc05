"""Demo data (issue 5): one week of realistic Bombora Company Surge scores, loaded through the real ingest path.

Domains: most of the demo CRM's company domains (`companyN.com`, the acme audience) plus a few hundred others, so
coverage is high but not total. About 30 B2B topics; each domain has 4-12 of them, scores 0-100 with roughly a
quarter surging (>= 60). Deterministic, and idempotent: nothing happens once a week is loaded.
"""

from __future__ import annotations

import datetime as dt
import gzip
import random
from pathlib import Path
from typing import Any

from django.conf import settings
from django.utils import timezone

from bombora.store import current_week, week_of
from ingestion.models import Source, Trigger

TOPICS = [
    ("Cloud Security", "Security"),
    ("Data Warehousing", "Data & Analytics"),
    ("Marketing Automation", "Marketing"),
    ("Customer Data Platform", "Marketing"),
    ("Account-Based Marketing", "Marketing"),
    ("Endpoint Security", "Security"),
    ("Zero Trust", "Security"),
    ("Identity and Access Management", "Security"),
    ("Data Lake", "Data & Analytics"),
    ("Business Intelligence", "Data & Analytics"),
    ("Machine Learning", "Data & Analytics"),
    ("Generative AI", "Data & Analytics"),
    ("Kubernetes", "Cloud"),
    ("Multi-Cloud", "Cloud"),
    ("Cloud Migration", "Cloud"),
    ("Serverless", "Cloud"),
    ("CRM Software", "Sales"),
    ("Sales Enablement", "Sales"),
    ("Revenue Operations", "Sales"),
    ("ERP Software", "Operations"),
    ("Supply Chain Management", "Operations"),
    ("Procurement Software", "Operations"),
    ("HR Software", "Human Resources"),
    ("Employee Experience", "Human Resources"),
    ("Payroll", "Human Resources"),
    ("Network Security", "Security"),
    ("SD-WAN", "Networking"),
    ("5G", "Networking"),
    ("Unified Communications", "Networking"),
    ("Digital Transformation", "Strategy"),
]
CRM_COMPANIES = 600  # the demo CRM export's companyN.com domains (p360/demo.py)
OTHER_DOMAINS = 300


def demo_file(week: dt.date) -> Path:
    rng = random.Random(5)
    domains = [f"company{i}.com" for i in range(CRM_COMPANIES) if i % 6 != 5]  # about 5 in 6 covered
    domains += [f"prospect{i}.io" for i in range(OTHER_DOMAINS)]
    lines = []
    for domain in sorted(domains):
        company = domain.split(".")[0].replace("company", "Company ").replace("prospect", "Prospect ")
        hot = rng.random() < 0.3  # a third of the companies are actively researching
        for topic, category in rng.sample(TOPICS, rng.randint(4, 12)):
            score = min(100, max(0, int(rng.gauss(68 if hot else 45, 14))))
            metro = f"greater boston area[{score}]|new york[{max(0, score - 5)}]"
            lines.append(
                f"{company},{domain},51-200 employees,software,{category},{topic},{score},{metro},United States"
            )
    path = Path(settings.DATA_DIR) / "demo" / f"Output_MasterSurgeFile_{week:%Y%m%d}.csv.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode(), mtime=0))
    return path


def load_demo_bombora() -> dict[str, Any]:
    """Load last week's demo Bombora file unless a week is already loaded."""
    from ingestion.services import ingest_file

    existing = current_week()
    if existing is not None:
        return {"week": existing.isoformat(), "created": False}
    week = week_of(timezone.now().date()) - dt.timedelta(days=7)
    run = ingest_file(source=Source.BOMBORA, org=None, path=demo_file(week), trigger=Trigger.DEMO)
    return {"week": week.isoformat(), "created": True, "run_id": run.pk, "status": run.status, "rows": run.rows_loaded}
