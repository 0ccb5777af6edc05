"""The factories themselves: the session orgs are reused, a new org goes through its service, records land."""

from __future__ import annotations

import pytest
from django_tenants.utils import schema_context

from audiences import records
from p360.core.audit.models import AuditEvent
from tenants.models import Organization
from tests.factories import OrganizationFactory, audience_with_records

pytestmark = pytest.mark.django_db


def test_the_session_orgs_are_looked_up_not_made_again(acme, globex):
    before = Organization.objects.count()
    assert OrganizationFactory(slug="acme") == acme
    assert OrganizationFactory(slug="globex") == globex
    assert Organization.objects.count() == before


def test_a_new_org_is_made_by_the_service_with_its_schema_and_audit_row():
    org = OrganizationFactory(slug="factory-made")
    assert org.schema_name and org.domains.filter(domain="factory-made").exists()
    assert AuditEvent.objects.filter(action="org.created", org_slug="factory-made").exists()


def test_audience_with_records_makes_a_new_current_version_each_time(acme):
    with schema_context(acme.schema_name):
        first = audience_with_records("Factory list", [{"email": "a@x.test"}])
        again = audience_with_records("Factory list", [{"email": "b@x.test"}, {"email": "c@x.test"}])
        assert again.pk == first.pk and again.current_version.number == 2
        rows = records.read_version(again.current_version_id, ["email"])
        assert rows["email"].to_list() == ["b@x.test", "c@x.test"]
