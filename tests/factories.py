"""factory-boy factories: what tests use to make data.

Shared (public schema): users, memberships, ingestion runs. Tenant (org schema): audiences, campaigns,
strategies, daily metrics, rollup rows — create them inside `schema_context(org.schema_name)`.
Objects with a service (campaigns, users) are created through it where the audit row matters: use
`CampaignFactory.create_via_service(actor=..., **fields)`.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import factory

from audiences.models import Audience, AudienceKind, AudienceStatus
from campaigns.models import Campaign, CampaignStatus, Creative, DailyMetric, Placement, Strategy
from campaigns.services import campaign_save
from ingestion.models import IngestionRun, RunStatus, Source, Trigger
from reporting.models import DailyRollup
from tenants.models import Membership, Organization, Role, User


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User

    email = factory.Sequence(lambda n: f"user{n}@example.test")
    full_name = factory.Faker("name")
    role = Role.MARKETER
    password = factory.django.Password("test-pass-360")

    @factory.post_generation
    def sync_role(obj: User, create: bool, extracted: object, **kwargs: object) -> None:  # type: ignore[misc]
        obj.sync_flags_from_role()
        if create:
            obj.save()

    @factory.post_generation
    def orgs(obj: User, create: bool, extracted: list[Organization] | None, **kwargs: object) -> None:  # type: ignore[misc]
        """`UserFactory(orgs=[acme])`: assign the user to those organisations."""
        for org in extracted or []:
            Membership.objects.get_or_create(user=obj, org=org)


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    org = factory.LazyFunction(lambda: Organization.objects.get(slug="acme"))


class IngestionRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = IngestionRun

    source = Source.SURFSIDE
    org = factory.LazyFunction(lambda: Organization.objects.get(slug="acme"))
    trigger = Trigger.COMMAND
    status = RunStatus.SUCCEEDED
    run_date = factory.LazyFunction(lambda: dt.date(2026, 11, 2))
    file_name = factory.Sequence(lambda n: f"surfside-{n}.csv")


# --- tenant schema (use inside schema_context) ----------------------------------------------------------


class AudienceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Audience

    name = factory.Sequence(lambda n: f"Audience {n}")
    kind = AudienceKind.IMPORTED
    status = AudienceStatus.READY
    record_count = 0


class CampaignFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Campaign

    name = factory.Sequence(lambda n: f"Campaign {n}")
    status = CampaignStatus.ACTIVE
    start_date = dt.date(2026, 10, 1)
    end_date = dt.date(2026, 12, 31)
    budget = Decimal("10000.00")

    @classmethod
    def create_via_service(cls, *, actor: User | None = None, **fields: Any) -> Campaign:
        """Built with the factory's defaults, saved through campaigns.services.campaign_save (audit row)."""
        return campaign_save(campaign=cls.build(**fields), actor=actor)


class StrategyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Strategy

    campaign = factory.SubFactory(CampaignFactory)
    name = factory.Sequence(lambda n: f"Strategy {n}")


class PlacementFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Placement

    strategy = factory.SubFactory(StrategyFactory)
    name = factory.Sequence(lambda n: f"Placement {n}")


class CreativeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Creative

    placement = factory.SubFactory(PlacementFactory)
    name = factory.Sequence(lambda n: f"Creative {n}")


class DailyMetricFactory(factory.django.DjangoModelFactory):
    """One day of one creative from a source; spend = impressions x CPM / 1000 (exact)."""

    class Meta:
        model = DailyMetric

    date = dt.date(2026, 11, 2)
    creative = factory.SubFactory(CreativeFactory)
    placement = factory.LazyAttribute(lambda o: o.creative.placement)
    strategy = factory.LazyAttribute(lambda o: o.creative.placement.strategy)
    campaign = factory.LazyAttribute(lambda o: o.creative.placement.strategy.campaign)
    run_id = 1
    source = Source.SURFSIDE
    impressions = 1000
    clicks = 10
    conversions = 1
    cpm = Decimal("5.0000")
    spend = factory.LazyAttribute(lambda o: Decimal(o.impressions) * o.cpm / 1000)


class DailyRollupFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DailyRollup

    date = dt.date(2026, 11, 2)
    campaign_id = 1
    strategy_id = 1
    source = Source.SURFSIDE
    impressions = 1000
    spend = Decimal("5")
    rows = 1
