"""Campaign services and the campaign admin: audit rows, deletes that take derived data with them, isolation."""

from __future__ import annotations

import pytest
from django_tenants.utils import schema_context

from campaigns.models import Campaign, DailyMetric, Strategy
from campaigns.services import campaign_delete, campaign_save
from p360.core.audit.models import AuditEvent
from reporting.models import DailyRollup
from tests.factories import CampaignFactory, DailyMetricFactory, DailyRollupFactory

pytestmark = pytest.mark.django_db


def test_campaign_save_writes_created_then_updated_audit_rows(acme, super_admin):
    with schema_context(acme.schema_name):
        campaign = CampaignFactory.create_via_service(actor=super_admin, name="Q1 launch")
        campaign.name = "Q1 launch (EMEA)"
        campaign_save(campaign=campaign, actor=super_admin)
    events = list(
        AuditEvent.objects.filter(
            entity_type="campaigns.campaign", entity_id=str(campaign.pk), org_id=acme.pk
        ).order_by("pk")
    )
    assert [e.action for e in events] == ["campaign.created", "campaign.updated"]
    updated = next(e for e in events if e.action == "campaign.updated")
    assert updated.before["name"] == "Q1 launch" and updated.after["name"] == "Q1 launch (EMEA)"


def test_deleting_a_campaign_drops_its_metrics_and_rollup_rows_and_nothing_else(acme, super_admin):
    with schema_context(acme.schema_name):
        kept = DailyMetricFactory()
        gone = DailyMetricFactory()
        DailyRollupFactory(campaign_id=kept.campaign_id, strategy_id=kept.strategy_id)
        DailyRollupFactory(campaign_id=gone.campaign_id, strategy_id=gone.strategy_id)
        before = {
            "campaigns": set(Campaign.objects.values_list("pk", flat=True)),
            "strategies": set(Strategy.objects.values_list("pk", flat=True)),
            "metrics": set(DailyMetric.objects.values_list("pk", flat=True)),
            "rollup": set(DailyRollup.objects.values_list("pk", flat=True)),
        }
        gone_rollup = set(DailyRollup.objects.filter(campaign_id=gone.campaign_id).values_list("pk", flat=True))
        campaign_delete(campaign=gone.campaign, actor=super_admin)
        assert set(Campaign.objects.values_list("pk", flat=True)) == before["campaigns"] - {gone.campaign_id}
        assert set(Strategy.objects.values_list("pk", flat=True)) == before["strategies"] - {gone.strategy_id}
        assert set(DailyMetric.objects.values_list("pk", flat=True)) == before["metrics"] - {gone.pk}
        assert set(DailyRollup.objects.values_list("pk", flat=True)) == before["rollup"] - gone_rollup
        assert len(gone_rollup) == 1 and DailyRollup.objects.filter(campaign_id=kept.campaign_id).count() == 1
    assert (
        AuditEvent.objects.filter(action="campaign.deleted", entity_id=str(gone.campaign_id), org_id=acme.pk).count()
        == 1
    )


def test_admin_delete_goes_through_the_service(acme, super_admin, login):
    # (a campaign with daily metrics cannot be deleted in the admin: metrics are never deleted by hand)
    with schema_context(acme.schema_name):
        campaign = CampaignFactory()
        DailyRollupFactory(campaign_id=campaign.pk, strategy_id=0)
    page = login(super_admin).post(f"/o/acme/admin/campaigns/campaign/{campaign.pk}/delete/", {"post": "yes"})
    assert page.status_code == 302
    with schema_context(acme.schema_name):
        assert not Campaign.objects.filter(pk=campaign.pk).exists()
        assert not DailyRollup.objects.filter(campaign_id=campaign.pk).exists()
    assert AuditEvent.objects.filter(action="campaign.deleted", entity_id=str(campaign.pk), org_id=acme.pk).exists()


def test_deleting_in_one_org_leaves_the_same_ids_in_the_other_org_alone(acme, globex, super_admin):
    with schema_context(globex.schema_name):
        theirs = DailyMetricFactory()
        DailyRollupFactory(campaign_id=theirs.campaign_id, strategy_id=theirs.strategy_id)
    with schema_context(acme.schema_name):
        ours = DailyMetricFactory()
        DailyRollupFactory(campaign_id=ours.campaign_id, strategy_id=ours.strategy_id)
        campaign_delete(campaign=ours.campaign, actor=super_admin)
    with schema_context(globex.schema_name):
        assert Campaign.objects.filter(pk=theirs.campaign_id).exists()
        assert DailyRollup.objects.filter(campaign_id=theirs.campaign_id).count() == 1


def test_marketer_cannot_open_the_campaign_admin(acme, acme_marketer, login):
    with schema_context(acme.schema_name):
        campaign = CampaignFactory()
    page = login(acme_marketer).get(f"/o/acme/admin/campaigns/campaign/{campaign.pk}/change/")
    assert page.status_code in (302, 403)
