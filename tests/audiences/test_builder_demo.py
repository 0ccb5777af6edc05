"""The demo's builder data: templates and saved audiences with real trees, materialised, idempotent."""

from __future__ import annotations

import json
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django_tenants.utils import schema_context

from audiences.builder_demo import ICP_NAME
from audiences.models import Audience, AudienceTemplate
from tests.audiences.builder_helpers import fresh_cache  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_cache")]


def test_demo_saves_materialised_audiences_and_templates_once(acme_marketer: Any, login: Any) -> None:
    first, second = StringIO(), StringIO()
    call_command("demo", "--json", stdout=first)
    call_command("demo", "--json", stdout=second)
    assert json.loads(first.getvalue())["builder"]["built"] >= 2
    assert json.loads(second.getvalue())["builder"] == {"templates": 0, "built": 0}
    with schema_context("org_acme"):
        icp = Audience.objects.get(name=ICP_NAME)
        assert icp.kind == "built" and icp.record_count > 0 and icp.definition_number == 1
        assert not Audience.objects.filter(kind="built", tree__isnull=True).exists()
        assert AudienceTemplate.objects.filter(builtin=True).count() >= 5
    preview = login(acme_marketer).post(
        "/o/acme/api/v1/audiences/preview", {"tree": icp.tree}, content_type="application/json"
    )
    assert preview.json()["count"] == icp.record_count
