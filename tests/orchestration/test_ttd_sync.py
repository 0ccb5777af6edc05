"""TTD sync against a local stand-in speaking the v3 REST shapes: create, idempotence, retries with
backoff, drift shown and never overwritten, a sync log per object, the command and the admin action."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.management import call_command
from django_tenants.utils import schema_context

from campaigns.models import Campaign, LineItem, SyncLog
from campaigns.services import line_item_save
from tests.orchestration.helpers import tree
from tests.ttd_server import TtdStandIn

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def ttd_server() -> Iterator[TtdStandIn]:
    server = TtdStandIn().start()
    yield server
    server.stop()


@pytest.fixture
def ttd(ttd_server: TtdStandIn, settings: Any) -> TtdStandIn:
    ttd_server.reset()
    settings.P360_TTD_API_URL = ttd_server.base_url
    settings.P360_TTD_API_TOKEN = ttd_server.token
    settings.P360_TTD_BACKOFF_SECONDS = 0.01
    settings.P360_TTD_RETRIES = 3
    return ttd_server


def sync(*args: str) -> list[dict[str, Any]]:
    out = io.StringIO()
    call_command("ttd_sync", "--org", "acme", *args, "--json", stdout=out)
    return json.loads(out.getvalue())["results"]


def test_create_then_same_state_sends_nothing_then_changes_update(acme, ttd):
    ids = tree(acme)
    results = sync("--campaign", str(ids["campaign"]))
    assert [r["action"] for r in results] == ["create", "create", "create"]
    assert ttd.writes() == [("POST", "/v3/campaign"), ("POST", "/v3/adgroup"), ("POST", "/v3/adgroup")]
    [campaign] = ttd.objects["campaign"].values()
    assert campaign["AdvertiserId"] == "acme01" and campaign["Budget"] == {"Amount": 600.0, "CurrencyCode": "USD"}
    ad_group = ttd.objects["adgroup"][next(iter(ttd.objects["adgroup"]))]
    assert ad_group["CampaignId"] == campaign["CampaignId"]
    assert ad_group["RTBAttributes"]["BudgetSettings"]["Budget"]["Amount"] == 200.0
    ttd.calls.clear()
    assert [r["action"] for r in sync("--campaign", str(ids["campaign"]))] == ["unchanged"] * 3
    assert ttd.calls == []  # the same state twice sends nothing
    with schema_context(acme.schema_name):
        li = LineItem.objects.get(pk=ids["line_items"][0])
        li.budget = "250.00"
        line_item_save(line_item=li, actor=None)
    assert [r["action"] for r in sync("--campaign", str(ids["campaign"]))] == ["unchanged", "update", "unchanged"]
    assert ttd.writes() == [("PUT", "/v3/adgroup")]
    with schema_context(acme.schema_name):
        assert SyncLog.objects.filter(object_type="line_item", object_id=li.pk).count() == 3


def test_retries_with_backoff_then_succeeds_or_logs_the_error(acme, ttd):
    ids = tree(acme, items=())
    ttd.fail_next(2, 503)
    [result] = sync("--campaign", str(ids["campaign"]))
    assert result["action"] == "create"
    with schema_context(acme.schema_name):
        assert SyncLog.objects.get(object_type="campaign", object_id=ids["campaign"]).attempts == 3
    ids2 = tree(acme, items=())
    ttd.fail_next(10, 500)
    [result] = sync("--campaign", str(ids2["campaign"]))
    assert result["action"] == "error" and "gave up after 4 attempts" in result["message"]
    with schema_context(acme.schema_name):
        assert Campaign.objects.get(pk=ids2["campaign"]).ttd_campaign_id == ""  # nothing half-recorded


def test_drift_at_ttd_is_shown_and_not_overwritten(acme, ttd):
    ids = tree(acme, items=())
    sync("--campaign", str(ids["campaign"]))
    [remote] = ttd.objects["campaign"].values()
    remote["Budget"]["Amount"] = 999.0  # a trader changed it in TTD's UI
    with schema_context(acme.schema_name):
        Campaign.objects.filter(pk=ids["campaign"]).update(name="Renamed")  # a local change to push
    [result] = sync("--campaign", str(ids["campaign"]))
    assert result["action"] == "drift" and "999.00 there" in result["message"]
    assert remote["Budget"]["Amount"] == 999.0 and ("PUT", "/v3/campaign") not in ttd.calls
    [result] = sync("--campaign", str(ids["campaign"]), "--force")
    assert result["action"] == "update" and remote is not ttd.objects["campaign"][result["message"].split()[-1]]
    assert next(iter(ttd.objects["campaign"].values()))["Budget"]["Amount"] == 600.0


def test_admin_sync_action(acme, ttd, manager, login):
    ids = tree(acme, items=())
    response = login(manager).post(
        f"/o/{acme.slug}/admin/campaigns/campaign/",
        {"action": "sync_to_ttd", "_selected_action": [ids["campaign"]]},
        follow=True,
    )
    assert response.status_code == 200 and "campaign" in response.content.decode()
    assert ttd.writes() == [("POST", "/v3/campaign")]
