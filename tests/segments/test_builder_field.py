"""Issue 13: event segments as the audience builder's `segment` field.

The identity rule (segments/identity.py), the keys kept in step with profile writes, the field catalogue listing
the org's segments, counts that follow entries and exits (polars preview = SQL materialisation), and another
org's segment id refused with a clear error.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from django_tenants.utils import schema_context

from audiences.normalize import uid2_hash
from tests.audiences.builder_helpers import fresh_cache, make_imported  # noqa: F401
from tests.segments.helpers import api, create_segment, event, independent, iso, post_events

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_cache")]

MAID = "6d92078a-8246-4ba4-ae5b-76104861e7dc"
RECORDS = [
    {"email": "ann@example.com", "email_normalized": "ann@example.com", "email_sha256": uid2_hash("ann@example.com"),
     "industry": "Technology", "country": "US"},
    {"phone": "202-555-0101", "phone_e164": "+12025550101", "industry": "Retail", "country": "US"},
    {"maid": MAID, "industry": "Technology", "country": "GB"},
    {"email": "zed@example.com", "email_normalized": "zed@example.com", "email_sha256": uid2_hash("zed@example.com"),
     "industry": "Technology", "country": "US"},
]  # fmt: skip


@pytest.fixture
def client(acme: Any, acme_marketer: Any, login: Any) -> Client:
    with schema_context("org_acme"):
        make_imported("CRM", RECORDS)
    return login(acme_marketer)  # type: ignore[no-any-return]


def _preview(client: Client, tree: Any, slug: str = "acme") -> Any:
    return client.post(f"/o/{slug}/api/v1/audiences/preview", {"tree": tree}, content_type="application/json")


def _count(client: Client, tree: Any) -> int:
    response = _preview(client, tree)
    assert response.status_code == 200, response.content
    return int(response.json()["count"])


def _in(*ids: int, operator: str = "in") -> dict[str, Any]:
    return {"field": "segment", "operator": operator, "value": list(ids)}


def _put_profile(client: Client, user: str, **data: Any) -> None:
    response = client.put(f"{api()}/users/{user}/profile", data, content_type="application/json")
    assert response.status_code == 200, response.content


def test_profile_keys_are_normalised_as_the_import_normalises() -> None:
    from segments.identity import profile_keys

    keys = profile_keys(
        email="  Ann@Example.com ",
        phone="(202) 555-0101",
        device_tokens=["fcm-token-that-is-not-a-maid", MAID.upper()],
        attributes={"idfa": "not a maid", "gaid": "00000000-0000-0000-0000-000000000000"},
    )
    assert keys == {
        ("email_sha256", uid2_hash("ann@example.com")),
        ("phone_e164", "+12025550101"),
        ("maid", MAID),
    }
    gmail = profile_keys(email="A.nn+promo@gmail.com", phone="not a phone")
    assert gmail == {("email_sha256", uid2_hash("ann@gmail.com"))}


def test_profile_writes_keep_the_identity_keys_and_the_version_in_step(client: Client) -> None:
    from segments import identity
    from segments.models import IdentityKey

    with schema_context("org_acme"):
        before = identity.version()
    _put_profile(client, "u1", email="Ann@Example.com", phone="+12025550101")
    with schema_context("org_acme"):
        assert set(IdentityKey.objects.filter(user_id="u1").values_list("kind", "value")) == {
            ("email_sha256", uid2_hash("ann@example.com")),
            ("phone_e164", "+12025550101"),
        }
        after_put = identity.version()
        assert after_put != before
    _put_profile(client, "u1", email="ann@example.com")  # the same keys: nothing changes
    with schema_context("org_acme"):
        assert identity.version() == after_put
    _put_profile(client, "u1", phone="")  # a key removed (nothing added) still moves the version
    with schema_context("org_acme"):
        assert set(IdentityKey.objects.filter(user_id="u1").values_list("kind")) == {("email_sha256",)}
        assert identity.version() != after_put
        assert identity.sync_all() == 1  # the backfill rebuilds the same rows


def test_the_catalogue_lists_the_orgs_segments_as_choices(
    client: Client, globex: Any, globex_marketer: Any, login: Any
) -> None:
    mine = create_segment(client, independent("acme buyers", value=0)).json()
    theirs = create_segment(login(globex_marketer), independent("globex buyers", value=0), org="globex").json()
    fields = client.get(f"{api()}/fields").json()["fields"]
    (segment,) = [f for f in fields if f["name"] == "segment"]
    assert segment["type"] == "membership" and segment["operators"] == ["in", "not_in"]
    assert segment["group"] == "Event segments"
    assert [(c["id"], c["name"], c["count"]) for c in segment["values"]] == [(mine["id"], "acme buyers", 0)]
    assert all(c["name"] != "globex buyers" for c in segment["values"]), theirs
    page = client.get("/o/acme/audiences/build/")
    assert page.status_code == 200


def test_count_follows_entries_and_exits_and_sql_agrees(client: Client) -> None:
    seg = create_segment(client, independent("recent buyers", value=0, window=60)).json()
    _put_profile(client, "u-ann", email=" ANN@example.com")
    _put_profile(client, "u-phone", phone="+12025550101")
    _put_profile(client, "u-device", device_tokens=[MAID.upper()])
    _put_profile(client, "u-nobody", email="nobody@example.com")
    tree = _in(seg["id"])
    assert _count(client, tree) == 0
    post_events(client, [event("u-ann"), event("u-nobody")])
    assert _count(client, tree) == 1  # the memoised mask follows the membership version
    post_events(client, [event("u-phone"), event("u-device")])
    assert _count(client, tree) == 3
    assert _count(client, _in(seg["id"], operator="not_in")) == 1
    combined = {
        "op": "and",
        "children": [tree, {"field": "industry", "operator": "eq", "value": "technology"}],
    }
    assert _count(client, combined) == 2
    negated = {"op": "not", "children": [combined]}
    assert _count(client, negated) == 2
    saved = client.post(
        f"{api()}/audiences", {"name": "Segment x tech", "tree": combined}, content_type="application/json"
    )
    assert saved.status_code == 201, saved.content
    assert saved.json()["count"] == 2  # the SQL materialisation agrees with the preview
    # The window slides past every event: they all exit, and the count follows.
    call_command("segments_timers", "--once", "--org", "acme", "--at", iso(timezone.now() + timedelta(minutes=62)))
    assert _count(client, tree) == 0
    refreshed = client.post(f"{api()}/audiences/{saved.json()['id']}/refresh")
    assert refreshed.status_code == 200, refreshed.content
    assert refreshed.json()["count"] == 0


def test_another_orgs_segment_id_is_refused_with_a_clear_error(
    client: Client, globex: Any, globex_marketer: Any, login: Any
) -> None:
    from segments.models import Segment

    other = login(globex_marketer)
    with schema_context("org_acme"):
        acme_ids = set(Segment.objects.values_list("id", flat=True))
    theirs = create_segment(other, independent("globex only", value=0), org="globex").json()
    while theirs["id"] in acme_ids:  # same primary keys in both orgs: use an id acme does not have
        theirs = create_segment(other, independent(f"globex {theirs['id']}", value=0), org="globex").json()
    tree = {"op": "or", "children": [{"field": "country", "operator": "eq", "value": "US"}, _in(theirs["id"])]}
    response = _preview(client, tree)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid_tree"
    assert error["details"]["path"] == "children[1].value"
    assert f"no segment with id {theirs['id']} in this organisation" in error["message"]
    assert "count" not in response.json()
    saved = client.post(f"{api()}/audiences", {"name": "Cross org", "tree": tree}, content_type="application/json")
    assert saved.status_code == 400
    with schema_context("org_acme"):
        from audiences.models import Audience

        assert not Audience.objects.filter(name="Cross org").exists()
    # and a wrong value type names the node too
    bad = _preview(client, {"field": "segment", "operator": "in", "value": ["1"]})
    assert bad.status_code == 400 and bad.json()["error"]["details"]["path"] == "value"
