"""The audit log is append-only in the database and records who did what where (trust 32)."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.db.utils import DatabaseError

from p360.core.audit.models import AuditEvent
from tenants.services import org_set_active, user_set_role

pytestmark = pytest.mark.django_db


def test_database_refuses_update_and_delete_of_audit_rows(super_admin, acme):
    event = AuditEvent.objects.create(action="test.event", org_id=acme.pk, org_slug=acme.slug)
    for statement in (
        "UPDATE audit_auditevent SET action = 'x' WHERE id = %s",
        "DELETE FROM audit_auditevent WHERE id = %s",
    ):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement, [event.pk])
    assert AuditEvent.objects.get(pk=event.pk).action == "test.event"


def test_orm_refuses_to_resave_an_audit_row():
    event = AuditEvent.objects.create(action="test.event")
    with pytest.raises(RuntimeError):
        event.save()


def test_services_write_audit_rows_with_actor_org_and_before_after(super_admin, acme, acme_marketer):
    org_set_active(org=acme, active=False, actor=super_admin)
    event = AuditEvent.objects.filter(action="org.deactivated").latest("id")
    assert (event.actor_email, event.org_slug, event.org_id) == (super_admin.email, "acme", acme.pk)
    assert event.before["is_active"] is True and event.after["is_active"] is False
    assert event.created_at.utcoffset().total_seconds() == 0

    user_set_role(user=acme_marketer, role="campaign_manager", actor=super_admin)
    event = AuditEvent.objects.filter(action="user.role_changed").latest("id")
    assert event.before["role"] == "marketer" and event.after["role"] == "campaign_manager"


def test_login_and_failed_login_are_audited(client, acme_marketer):
    from tests.conftest import PASSWORD

    client.post("/accounts/login/", {"login": acme_marketer.email, "password": "wrong"})
    failed = AuditEvent.objects.filter(action="auth.login_failed").latest("id")
    assert failed.actor_email == acme_marketer.email and failed.ip == "127.0.0.1"
    response = client.post("/accounts/login/", {"login": acme_marketer.email, "password": PASSWORD})
    assert response.status_code == 302
    ok = AuditEvent.objects.filter(action="auth.login").latest("id")
    assert ok.actor_id == acme_marketer.pk and ok.request_id


def test_audit_log_in_admin_is_scoped_for_campaign_managers(login, super_admin, manager, acme, globex):
    org_set_active(org=globex, active=False, actor=super_admin)
    org_set_active(org=acme, active=False, actor=super_admin)
    page = login(manager).get("/admin/audit/auditevent/?action=org.deactivated").content.decode()
    assert ">acme<" in page and ">globex<" not in page
    assert login(super_admin).get("/admin/audit/auditevent/").status_code == 200
