"""Salesforce deep links (orchestration, issue 14): Lightning record pages under `P360_SALESFORCE_URL`.

In the common core because both the org (tenants: the account) and programs (campaigns: the opportunity)
link to Salesforce, and tenants sits below campaigns in the layers.
"""

from __future__ import annotations

from urllib.parse import quote

from django.conf import settings

DEFAULT_URL = "https://login.salesforce.com"


def base_url() -> str:
    return str(getattr(settings, "P360_SALESFORCE_URL", "") or DEFAULT_URL).rstrip("/")


def _record_url(kind: str, record_id: str) -> str | None:
    # safe="": an id is one path segment, whatever it holds ("/", "?", "#" are escaped)
    return f"{base_url()}/lightning/r/{kind}/{quote(record_id.strip(), safe='')}/view" if record_id.strip() else None


def opportunity_url(opportunity_id: str) -> str | None:
    """Lightning record page of the opportunity (None without an id)."""
    return _record_url("Opportunity", opportunity_id or "")


def account_url(account_id: str) -> str | None:
    """Lightning record page of the account (None without an id)."""
    return _record_url("Account", account_id or "")
