# INTERIM STUB (lead) — replaced by helper branch issue-4-normalise
from __future__ import annotations

import re

import polars as pl

MAPPABLE_FIELDS = [
    "email",
    "phone",
    "first_name",
    "last_name",
    "job_title",
    "company_name",
    "domain",
    "industry",
    "revenue",
    "employee_count",
    "country",
    "region",
    "city",
    "postal_code",
    "maid",
    "maid_type",
    "ip",
]
SYN = {
    "email": ["email", "e-mail", "emailaddress", "workemail"],
    "phone": ["phone", "mobile", "phonenumber"],
    "first_name": ["firstname", "first"],
    "last_name": ["lastname", "surname"],
    "company_name": ["company", "companyname"],
    "domain": ["domain", "website", "companydomain"],
    "revenue": ["revenue", "annualrevenue"],
    "employee_count": ["employees", "employeecount"],
    "country": ["country"],
    "job_title": ["title", "jobtitle"],
    "city": ["city"],
    "region": ["state", "region"],
    "postal_code": ["zip", "postcode", "postalcode"],
    "industry": ["industry"],
}


def field_label(name: str) -> str:
    return name.replace("_", " ").capitalize()


def _n(h: str) -> str:
    return re.sub(r"[^a-z0-9]", "", h.lower())


def propose_mapping(headers: list[str]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    used: set[str] = set()
    for h in headers:
        f = next((k for k, v in SYN.items() if _n(h) in [_n(x) for x in v] and k not in used), None)
        if f:
            used.add(f)
        out[h] = f
    return out


def unique_headers(headers: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for i, h in enumerate(headers, 1):
        h = h or f"column_{i}"
        if h in seen:
            seen[h] += 1
            h = f"{h} ({seen[h]})"
        else:
            seen[h] = 1
        out.append(h)
    return out


def custom_field_name(header: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", header.lower()).strip("_") or "column"


def infer_custom_types(df: pl.DataFrame, columns: list[str]) -> dict[str, str]:
    return {c: "text" for c in columns}
