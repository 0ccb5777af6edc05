"""Concurrent requests and tasks alternating across 20 organisations never read a foreign canary
(trust checklist 7). Each thread has its own database connection, like a threaded server."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.db import connection, connections
from django.test import Client
from django_tenants.utils import schema_context

from audiences.models import Audience
from p360.core.jobs.dispatch import enqueue_for_org, org_task
from tenants.models import Organization, User
from tenants.services import api_token_create, org_create

pytestmark = [pytest.mark.slow, pytest.mark.django_db]
EXTRA_ORGS = 18  # plus acme and globex


@org_task
def read_canary() -> str:
    return Audience.objects.get(pk=1).name


@pytest.fixture(scope="module")
def twenty_orgs(django_db_setup: Any, django_db_blocker: Any) -> Iterator[tuple[list[str], str]]:
    """18 committed extra orgs whose audience #1 is named after the org, and a committed super-admin
    token (threads cannot see rows inside a test's transaction); all removed afterwards."""
    with django_db_blocker.unblock():
        created = []
        token, raw = api_token_create(user=User.objects.get(email="admin@test.local"), name="concurrency")
        try:
            for index in range(EXTRA_ORGS):
                org = org_create(slug=f"canary-{index:02d}", name=f"Canary {index:02d}")
                created.append(org)
                with schema_context(org.schema_name):
                    Audience.objects.create(name=f"{org.slug}-canary-audience-1")
            yield ["acme", "globex", *(org.slug for org in created)], raw
        finally:
            connection.set_schema_to_public()
            token.delete()
            for org in created:
                org.domains.all().delete()
                org.delete(force_drop=True)


def _read_page(client: Client, slug: str, token: str) -> tuple[str, str]:
    response = client.get(f"/o/{slug}/api/v1/audiences/1", HTTP_AUTHORIZATION=f"Token {token}")
    return slug, response.json()["name"]


def _read_task(slug: str) -> tuple[str, str]:
    from django_q.tasks import result

    try:
        org = Organization.objects.get(slug=slug)
        return slug, result(enqueue_for_org(org, "tests.tenants.test_concurrent_isolation.read_canary"))
    finally:
        connections.close_all()


def test_no_foreign_canary_under_concurrent_requests_and_tasks(twenty_orgs, django_db_blocker):
    slugs, token = twenty_orgs
    with django_db_blocker.unblock():
        clients = [Client() for _ in range(4)]

        def work(item: tuple[int, str]) -> tuple[str, str]:
            index, slug = item
            try:
                if index % 5 == 4:
                    return _read_task(slug)
                return _read_page(clients[index % len(clients)], slug, token)
            finally:
                connections.close_all()

        plan = list(enumerate(itertools.islice(itertools.cycle(slugs), 400)))
        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(work, plan))

    foreign = [(slug, name) for slug, name in results if name != f"{slug}-canary-audience-1"]
    assert len(results) == 400
    assert foreign == []
