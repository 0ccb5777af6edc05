"""Shared fixtures: two organisations (acme, globex) with identical primary keys in their schemas,
and one user per role. Created once per test session in the test database; each test runs in a
transaction that is rolled back. acme is migrated the product's way; every later org replays acme's
freshly migrated schema (tests/schema_clone.py, proven equal by tests/tenants/test_schema_clone.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from django.test import Client

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's event loop + live_server

PASSWORD = "test-pass-360"


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: Any, django_db_blocker: Any) -> None:
    from django_tenants.utils import schema_context

    from audiences.models import Audience
    from campaigns.models import Campaign
    from tenants.models import Role
    from tenants.services import org_create, user_create
    from tests import schema_clone

    with django_db_blocker.unblock():
        name = connection.settings_dict["NAME"]
        if not name.startswith("test_"):  # pytest-django skipped test-DB setup: never write to a real DB
            pytest.exit(f"refusing to create test fixtures in database {name!r}; mark the tests django_db")
        acme = org_create(slug="acme", name="Acme Corporation", ttd_advertiser_id="acme01")  # migrated: the real path
        # Every later org of this session replays acme's freshly migrated schema (tests/schema_clone.py).
        schema_clone.install(acme.schema_name)
        globex = org_create(slug="globex", name="Globex Industries", ttd_advertiser_id="globex01")
        user_create(email="admin@test.local", role=Role.SUPER_ADMIN, password=PASSWORD)
        user_create(email="manager@test.local", role=Role.CAMPAIGN_MANAGER, orgs=[acme], password=PASSWORD)
        user_create(email="marketer@acme.test", role=Role.MARKETER, orgs=[acme], password=PASSWORD)
        user_create(email="marketer@globex.test", role=Role.MARKETER, orgs=[globex], password=PASSWORD)
        # The same primary keys exist in both schemas, with different (canary) contents.
        for org in (acme, globex):
            with schema_context(org.schema_name):
                for index in (1, 2):
                    Audience.objects.create(name=f"{org.slug}-canary-audience-{index}", record_count=index)
                    Campaign.objects.create(name=f"{org.slug}-canary-campaign-{index}")
        connection.set_schema_to_public()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Modules with a test marked `slow` run first, each module's tests together and in their order.

    With `--dist loadfile --no-loadscope-reorder` (pyproject.toml) the two xdist workers take whole modules
    from this queue as they free up: the long modules are shared out at the start and the short ones fill
    in at the end, instead of one worker finishing alone on a two-minute test (tenants/ sorts last).
    """
    first_index: dict[str, int] = {}
    slow: set[str] = set()
    for index, item in enumerate(items):
        module = item.nodeid.split("::", 1)[0]
        first_index.setdefault(module, index)
        if item.get_closest_marker("slow") is not None:
            slow.add(module)
    items.sort(key=lambda item: (item.nodeid.split("::", 1)[0] not in slow, first_index[item.nodeid.split("::", 1)[0]]))


@pytest.fixture(autouse=True)
def _public_schema_after_test() -> Iterator[None]:
    yield
    connection.set_schema_to_public()


@pytest.fixture
def acme(db: Any) -> Any:
    from tenants.models import Organization

    return Organization.objects.get(slug="acme")


@pytest.fixture
def globex(db: Any) -> Any:
    from tenants.models import Organization

    return Organization.objects.get(slug="globex")


def _user(email: str) -> Any:
    from tenants.models import User

    return User.objects.get(email=email)


@pytest.fixture
def super_admin(db: Any) -> Any:
    return _user("admin@test.local")


@pytest.fixture
def manager(db: Any) -> Any:
    """A campaign manager assigned to acme only."""
    return _user("manager@test.local")


@pytest.fixture
def acme_marketer(db: Any) -> Any:
    return _user("marketer@acme.test")


@pytest.fixture
def globex_marketer(db: Any) -> Any:
    return _user("marketer@globex.test")


@pytest.fixture
def login() -> Any:
    """login(user) -> a test client with that user's session."""

    def make(user: Any) -> Client:
        client = Client()
        client.force_login(user, backend="tenants.auth.RoleBackend")
        return client

    return make
