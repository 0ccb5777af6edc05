"""Shared helpers of the segments management commands."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError


def orgs_from(slugs: list[str] | None) -> list[Any]:
    from tenants.models import Organization

    orgs = Organization.objects.exclude(schema_name="public").filter(is_active=True).order_by("slug")
    if slugs:
        found = list(orgs.filter(slug__in=slugs))
        missing = sorted(set(slugs) - {o.slug for o in found})
        if missing:
            raise CommandError(f"unknown organisation: {', '.join(missing)}")
        return found
    return list(orgs)
