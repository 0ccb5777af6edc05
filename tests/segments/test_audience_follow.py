"""Issue 13: saved (built) audiences follow the event segments their tree names (segments/audience_refresh.py).

Through the real surfaces: segments and audiences made with the API, events posted to the ingest API (evaluated
inline), exits by the `segments_timers` command, the debounced refresh run as its task would run it (synchronously,
at a chosen time), the sweep starting its job, the audience page and the audit trail.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tenants.utils import schema_context

from audiences.normalize import uid2_hash
from tests.audiences.builder_helpers import fresh_cache, make_imported  # noqa: F401
from tests.segments.helpers import api, create_segment, event, independent, iso, post_events

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_cache")]

WINDOW = 300  # SEGMENT_AUDIENCE_REFRESH_SECONDS's default
RECORDS = [
    {"email": "ann@example.com", "email_normalized": "ann@example.com", "email_sha256": uid2_hash("ann@example.com"),
     "industry": "Technology", "country": "US"},
    {"email": "bob@example.com", "email_normalized": "bob@example.com", "email_sha256": uid2_hash("bob@example.com"),
     "industry": "Technology", "country": "US"},
    {"email": "cat@example.com", "email_normalized": "cat@example.com", "email_sha256": uid2_hash("cat@example.com"),
     "industry": "Retail", "country": "US"},
]  # fmt: skip


@pytest.fixture(autouse=True)
def _fresh_lookup(settings: Any) -> Any:
    from segments import audience_refresh

    settings.SEGMENT_AUDIENCE_REFRESH_SECONDS = WINDOW
    audience_refresh.forget()  # another test's org of the same schema name must not leak its followed segments
    yield
    audience_refresh.forget()


@pytest.fixture
def client(acme: Any, acme_marketer: Any, login: Any) -> Client:
    with schema_context("org_acme"):
        make_imported("CRM", RECORDS)
    return login(acme_marketer)  # type: ignore[no-any-return]


def _profile(client: Client, user: str, email: str, org: str = "acme") -> None:
    response = client.put(f"{api(org)}/users/{user}/profile", {"email": email}, content_type="application/json")
    assert response.status_code == 200, response.content


def _save(client: Client, name: str, segment_id: int, org: str = "acme") -> dict[str, Any]:
    tree = {
        "op": "and",
        "children": [
            {"field": "segment", "operator": "in", "value": [segment_id]},
            {"field": "industry", "operator": "eq", "value": "technology"},
        ],
    }
    response = client.post(f"{api(org)}/audiences", {"name": name, "tree": tree}, content_type="application/json")
    assert response.status_code == 201, response.content
    return response.json()  # type: ignore[no-any-return]


def _members(client: Client, audience_id: int) -> str:
    response = client.get(f"{api()}/audiences/{audience_id}/members?format=csv")
    assert response.status_code == 200
    return b"".join(response.streaming_content).decode()  # type: ignore[attr-defined]


def _refresh(schema: str = "org_acme", at: datetime | None = None) -> dict[str, Any]:
    from segments.audience_refresh import refresh_due

    with schema_context(schema):
        return refresh_due(now=at or timezone.now() + timedelta(seconds=WINDOW + 1))


def _counts(audience_id: int, schema: str = "org_acme") -> list[tuple[int, str]]:
    from audiences.models import AudienceCount

    with schema_context(schema):
        rows = AudienceCount.objects.filter(audience_id=audience_id).order_by("id")
        return [(row.count, row.reason) for row in rows]


def _marks(schema: str = "org_acme") -> list[int]:
    from audiences.models import SegmentChange

    with schema_context(schema):
        return list(SegmentChange.objects.order_by("segment_id").values_list("segment_id", flat=True))


def _setup(client: Client) -> tuple[dict[str, Any], dict[str, Any]]:
    seg = create_segment(client, independent("buyers", value=0, window=60)).json()
    for user, email in (("u-ann", "ann@example.com"), ("u-bob", "bob@example.com"), ("u-cat", "cat@example.com")):
        _profile(client, user, email)
    audience = _save(client, "Buyers in tech", seg["id"])
    assert audience["count"] == 0
    with schema_context("org_acme"):
        from audiences.models import SegmentChange

        SegmentChange.objects.all().delete()  # the save's own delayed mark (tested on its own below)
    return seg, audience


def test_the_tree_records_the_segments_it_follows(client: Client) -> None:
    from audiences.lineage import segment_ids
    from audiences.models import Audience

    tree = {
        "op": "or",
        "children": [
            {"field": "segment", "operator": "in", "value": [7, 3]},
            {"op": "not", "children": [{"field": "segment", "operator": "not_in", "value": [3, 11]}]},
            {"field": "audience", "operator": "in", "value": [5]},
        ],
    }
    assert segment_ids(tree) == [3, 7, 11]
    seg, audience = _setup(client)
    with schema_context("org_acme"):
        row = Audience.objects.get(pk=audience["id"])
        assert row.segment_ids == [seg["id"]] and row.parent_ids == []
        # "which built audiences follow S" is one indexed containment query
        assert list(Audience.objects.filter(segment_ids__contains=[seg["id"]]).values_list("pk", flat=True)) == [
            audience["id"]
        ]


def test_an_entry_then_an_exit_reach_the_saved_audience_after_the_debounced_refresh(client: Client) -> None:
    from p360.core.audit.models import AuditEvent

    seg, audience = _setup(client)
    assert post_events(client, [event("u-ann")]).status_code in (200, 202)
    assert _marks() == [seg["id"]]  # stale: marked in the evaluator's transaction
    assert "ann@example.com" not in _members(client, audience["id"])  # not refreshed inside the ingest request
    assert _refresh(at=timezone.now())["refreshed"] == []  # not due before the window closes
    result = _refresh()
    assert result["refreshed"] == [audience["id"]] and result["segments"] == [seg["id"]]
    assert "ann@example.com" in _members(client, audience["id"])
    assert _counts(audience["id"])[-1] == (1, "segment membership changed")
    with schema_context("org_acme"):
        from audiences.models import Audience

        assert Audience.objects.get(pk=audience["id"]).refresh_error == ""
    audit = AuditEvent.objects.filter(action="audience.refreshed", entity_id=str(audience["id"])).latest("id")
    assert audit.after["reason"] == "segment membership changed" and audit.after["segments"] == [seg["id"]]
    assert _marks() == []

    # The window slides past the event: u-ann exits (the timer pass), and the refresh removes the record.
    later = timezone.now() + timedelta(minutes=62)
    call_command("segments_timers", "--once", "--org", "acme", "--at", iso(later))
    assert _marks() == [seg["id"]]
    _refresh(at=later + timedelta(seconds=WINDOW + 1))
    assert "ann@example.com" not in _members(client, audience["id"])
    assert _counts(audience["id"])[-1] == (0, "segment membership changed")


def test_many_transitions_inside_the_window_give_one_refresh(client: Client) -> None:
    from p360.core.audit.models import AuditEvent

    seg, audience = _setup(client)
    for user in ("u-ann", "u-bob", "u-cat"):  # three requests, three evaluation passes, three entries
        post_events(client, [event(user)])
    assert _marks() == [seg["id"]]  # one row, whatever the number of transitions
    before = AuditEvent.objects.filter(action="audience.refreshed", entity_id=str(audience["id"])).count()
    result = _refresh()
    assert result["refreshed"] == [audience["id"]]
    assert _refresh()["refreshed"] == []  # nothing left: no second refresh
    refreshes = [c for c in _counts(audience["id"]) if c[1] == "segment membership changed"]
    assert refreshes == [(2, "segment membership changed")]  # ann and bob (cat is in retail)
    after = AuditEvent.objects.filter(action="audience.refreshed", entity_id=str(audience["id"])).count()
    assert after == before + 1
    members = _members(client, audience["id"])
    assert "ann@example.com" in members and "bob@example.com" in members and "cat@example.com" not in members


def test_another_orgs_transitions_never_refresh_this_orgs_audiences(
    client: Client, globex: Any, globex_marketer: Any, login: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from p360.core.jobs.models import Job
    from segments.audience_refresh import start_due_all_orgs

    _seg, audience = _setup(client)
    other = login(globex_marketer)
    with schema_context("org_globex"):
        make_imported("CRM", RECORDS)
    their_seg = create_segment(other, independent("buyers", value=0, window=60), org="globex").json()
    _profile(other, "u-ann", "ann@example.com", org="globex")
    their = _save(other, "Globex buyers", their_seg["id"], org="globex")
    post_events(other, [event("u-ann")], org="globex")
    assert _marks() == []  # acme: nothing stale
    assert their_seg["id"] in _marks("org_globex")
    with django_capture_on_commit_callbacks(execute=True):  # the sweep's job runs synchronously (Q sync in tests)
        started = start_due_all_orgs(timezone.now() + timedelta(seconds=WINDOW + 31))
    assert started == 1
    (job,) = Job.objects.filter(kind="segments.refresh_audiences")
    assert job.org.slug == "globex" and job.status == "succeeded", job.error
    assert their["id"] in job.result["refreshed"]
    assert [c for c in _counts(audience["id"]) if c[1] == "segment membership changed"] == []
    assert _marks("org_globex") == []
    assert "ann@example.com" not in _members(client, audience["id"])


def test_a_deleted_segment_records_the_error_and_keeps_the_members(client: Client) -> None:
    from audiences.models import Audience

    seg, audience = _setup(client)
    post_events(client, [event("u-ann")])
    _refresh()
    assert "ann@example.com" in _members(client, audience["id"])
    response = client.delete(f"{api()}/segments/{seg['id']}")
    assert response.status_code in (200, 204), response.content
    assert _marks() == [seg["id"]]  # due at once: the audience must say it no longer refreshes
    result = _refresh(at=timezone.now() + timedelta(seconds=1))
    assert result["failed"] == [audience["id"]] and result["refreshed"] == []
    with schema_context("org_acme"):
        row = Audience.objects.get(pk=audience["id"])
        assert row.refresh_error and row.record_count == 1
    assert "ann@example.com" in _members(client, audience["id"])  # members kept
    page = client.get(f"/o/acme/audiences/{audience['id']}/")
    assert page.status_code == 200
    assert b"(deleted)" in page.content and b"The last refresh failed" in page.content


def test_the_audience_page_and_admin_say_which_segments_it_follows(
    client: Client, super_admin: Any, login: Any
) -> None:
    seg, audience = _setup(client)
    page = client.get(f"/o/acme/audiences/{audience['id']}/").content.decode()
    assert "Follows event segment" in page and "buyers" in page and "Last refreshed" in page
    assert "refresh due" not in page
    post_events(client, [event("u-ann")])
    page = client.get(f"/o/acme/audiences/{audience['id']}/").content.decode()
    assert "membership changed, refresh due" in page
    admin = login(super_admin).get(f"/o/acme/admin/audiences/builtaudience/{audience['id']}/change/").content.decode()
    assert "Follows event segments" in admin and f"#{seg['id']}: refreshed when their membership changes" in admin
    assert "refresh due" in admin


def test_no_statement_when_no_built_audience_follows_the_segment(client: Client) -> None:
    from segments import audience_refresh
    from segments.models import Transition

    seg = create_segment(client, independent("buyers", value=0, window=60)).json()
    with schema_context("org_acme"):
        audience_refresh.followed_segments()  # warm (a pass reads it once per lookup interval)
        with CaptureQueriesContext(connection) as queries:
            assert audience_refresh.memberships_changed([Transition(segment_id=seg["id"], user_id="u")]) == 0
        assert len(queries) == 0
    _profile(client, "u-ann", "ann@example.com")
    post_events(client, [event("u-ann")])
    assert _marks() == []


def test_saving_an_audience_forgets_the_cached_lookup_and_marks_its_segments_after_the_lookup_interval(
    client: Client, settings: Any
) -> None:
    from audiences.models import SegmentChange
    from segments import audience_refresh

    settings.SEGMENT_AUDIENCE_LOOKUP_SECONDS = 600  # longer than the refresh window: the later wins
    seg = create_segment(client, independent("buyers", value=0, window=60)).json()
    with schema_context("org_acme"):
        assert audience_refresh.followed_segments() == frozenset()
    saved_at = timezone.now()
    audience = _save(client, "Buyers in tech", seg["id"])
    with schema_context("org_acme"):
        assert audience_refresh.followed_segments() == frozenset({seg["id"]})  # this process knows at once
        (mark,) = SegmentChange.objects.all()
        assert mark.segment_id == seg["id"] and mark.due_at >= saved_at + timedelta(seconds=600)
    # one refresh once other processes surely know it (a change they missed meanwhile is picked up)
    assert _refresh(at=saved_at + timedelta(seconds=WINDOW + 1))["refreshed"] == []
    assert _refresh(at=saved_at + timedelta(seconds=601))["refreshed"] == [audience["id"]]


def test_audiences_derived_from_a_follower_are_refreshed_after_it(client: Client) -> None:
    _seg, audience = _setup(client)
    derived = client.post(
        f"{api()}/audiences",
        {"name": "Followers in the US", "tree": {"op": "and", "children": [
            {"field": "audience", "operator": "in", "value": [audience["id"]]},
            {"field": "country", "operator": "eq", "value": "US"},
        ]}},
        content_type="application/json",
    )  # fmt: skip
    assert derived.status_code == 201, derived.content
    assert derived.json()["count"] == 0
    post_events(client, [event("u-ann")])
    result = _refresh()
    assert result["refreshed"] == [audience["id"], derived.json()["id"]]  # the parent first, then what reads it
    assert _counts(derived.json()["id"])[-1] == (1, "segment membership changed")


def test_a_members_new_email_is_followed_too(client: Client) -> None:
    seg, audience = _setup(client)
    post_events(client, [event("u-ann")])
    _refresh()
    assert "ann@example.com" in _members(client, audience["id"])
    _profile(client, "u-ann", "bob@example.com")  # the member's keys change: other records match now
    assert _marks() == [seg["id"]]
    _refresh()
    members = _members(client, audience["id"])
    assert "bob@example.com" in members and "ann@example.com" not in members
    _profile(client, "u-cat", "cat+new@example.com")  # not a member: nothing to refresh
    assert _marks() == []


def test_the_migration_back_fills_existing_built_audiences(client: Client) -> None:
    import importlib

    from django.apps import apps

    from audiences.models import Audience

    seg, audience = _setup(client)
    migration = importlib.import_module("audiences.migrations.0008_audience_segment_ids")
    with schema_context("org_acme"):
        Audience.objects.filter(pk=audience["id"]).update(segment_ids=[])  # as before the migration
        migration.backfill(apps, None)
        assert Audience.objects.get(pk=audience["id"]).segment_ids == [seg["id"]]
