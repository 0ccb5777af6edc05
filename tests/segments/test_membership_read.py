"""`GET users/<id>/segments` through the request stack: the org of the URL is resolved with the token in one
statement (tenants.access.token_and_org), read fresh on every request. So another org's memberships are never
served, to a token or a session, and revocation, deactivation and a removed assignment take effect at once."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from tests.segments.helpers import api, create_segment, event, independent, post_events, user_segments

pytestmark = pytest.mark.django_db


def _token_client(user: Any) -> tuple[Client, Any]:
    from tenants.services import api_token_create

    token, raw = api_token_create(user=user, name="membership read")
    return Client(HTTP_AUTHORIZATION=f"Token {raw}"), token


@pytest.fixture
def shared_user(acme_marketer: Any, globex_marketer: Any, login: Any) -> str:
    """The same end-user id is a member of one segment in each org, under a different name."""
    for slug, marketer in (("acme", acme_marketer), ("globex", globex_marketer)):
        client = login(marketer)
        assert create_segment(client, independent(f"{slug} buyers", value=0), org=slug).status_code == 201
        assert post_events(client, [event("shared-user")], org=slug).status_code == 202
    return "shared-user"


def _error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    return response.json()["error"]


def test_a_token_reads_its_org_and_never_anothers(shared_user: str, acme_marketer: Any, globex_marketer: Any) -> None:
    acme_token, _ = _token_client(acme_marketer)
    globex_token, _ = _token_client(globex_marketer)
    for _ in range(3):  # alternating on one connection: no answer of one org is reused for the other
        assert user_segments(acme_token, shared_user) == ["acme buyers"]
        assert user_segments(globex_token, shared_user, org="globex") == ["globex buyers"]
        _error(acme_token.get(f"{api('globex')}/users/{shared_user}/segments"), 404)
        _error(globex_token.get(f"{api('acme')}/users/{shared_user}/segments"), 404)


def test_a_session_reads_its_org_and_never_anothers(
    shared_user: str, acme_marketer: Any, globex_marketer: Any, login: Any
) -> None:
    acme_session, globex_session = login(acme_marketer), login(globex_marketer)
    for _ in range(3):
        assert user_segments(acme_session, shared_user) == ["acme buyers"]
        assert user_segments(globex_session, shared_user, org="globex") == ["globex buyers"]
        _error(acme_session.get(f"{api('globex')}/users/{shared_user}/segments"), 404)
        _error(globex_session.get(f"{api('acme')}/users/{shared_user}/segments"), 404)


def test_one_super_admin_token_alternating_orgs_gets_each_orgs_answer(shared_user: str, super_admin: Any) -> None:
    client, _ = _token_client(super_admin)
    for _ in range(3):
        assert user_segments(client, shared_user) == ["acme buyers"]
        assert user_segments(client, shared_user, org="globex") == ["globex buyers"]


def test_a_revoked_token_is_refused_on_the_next_request(shared_user: str, acme_marketer: Any) -> None:
    from tenants.services import api_token_revoke

    client, token = _token_client(acme_marketer)
    assert user_segments(client, shared_user) == ["acme buyers"]
    api_token_revoke(token=token, actor=acme_marketer)
    assert _error(client.get(f"{api()}/users/{shared_user}/segments"), 401)["code"] == "authentication_failed"


def test_a_deactivated_user_is_refused_on_the_next_request(shared_user: str, acme_marketer: Any, login: Any) -> None:
    from tenants.services import user_set_active

    token_client, _ = _token_client(acme_marketer)
    session = login(acme_marketer)
    assert user_segments(token_client, shared_user) == ["acme buyers"]
    assert user_segments(session, shared_user) == ["acme buyers"]
    user_set_active(user=acme_marketer, active=False, actor=None)
    _error(token_client.get(f"{api()}/users/{shared_user}/segments"), 401)
    _error(session.get(f"{api()}/users/{shared_user}/segments"), 401)


def test_a_deactivated_org_is_404_on_the_next_request(
    shared_user: str, acme: Any, acme_marketer: Any, super_admin: Any, login: Any
) -> None:
    from tenants.services import org_set_active

    clients = [_token_client(acme_marketer)[0], _token_client(super_admin)[0], login(acme_marketer)]
    for client in clients:
        assert user_segments(client, shared_user) == ["acme buyers"]
    org_set_active(org=acme, active=False, actor=super_admin)
    for client in clients:
        _error(client.get(f"{api()}/users/{shared_user}/segments"), 404)


def test_a_removed_assignment_is_404_on_the_next_request(shared_user: str, acme: Any, manager: Any, login: Any) -> None:
    from tenants.models import Membership
    from tenants.services import membership_remove

    token_client, session = _token_client(manager)[0], login(manager)
    for client in (token_client, session):
        assert user_segments(client, shared_user) == ["acme buyers"]
    membership_remove(membership=Membership.objects.get(user=manager, org=acme), actor=None)
    for client in (token_client, session):
        _error(client.get(f"{api()}/users/{shared_user}/segments"), 404)


def test_one_super_admin_session_alternating_orgs_gets_each_orgs_answer(
    shared_user: str, super_admin: Any, login: Any
) -> None:
    session = login(super_admin)
    for _ in range(3):
        assert user_segments(session, shared_user) == ["acme buyers"]
        assert user_segments(session, shared_user, org="globex") == ["globex buyers"]


def test_a_changed_password_or_an_ended_session_is_refused_on_the_next_request(
    shared_user: str, acme_marketer: Any, login: Any
) -> None:
    """The session's user is read with the org in one statement (RoleBackend); Django's session checks still
    run on it: a password change ends other sessions, an expired or deleted session row is no session."""
    from datetime import timedelta

    from django.contrib.sessions.models import Session
    from django.utils import timezone

    from tenants.services import user_set_password

    changed, expired, deleted = login(acme_marketer), login(acme_marketer), login(acme_marketer)
    for client in (changed, expired, deleted):
        assert user_segments(client, shared_user) == ["acme buyers"]
    Session.objects.filter(session_key=expired.session.session_key).update(
        expire_date=timezone.now() - timedelta(seconds=1)
    )
    Session.objects.filter(session_key=deleted.session.session_key).delete()
    for client in (expired, deleted):
        _error(client.get(f"{api()}/users/{shared_user}/segments"), 401)
    assert user_segments(changed, shared_user) == ["acme buyers"]
    user_set_password(user=acme_marketer, password="a-new-pass-360", actor=None)
    _error(changed.get(f"{api()}/users/{shared_user}/segments"), 401)
