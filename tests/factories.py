"""factory-boy factories for the shared models (tenant-schema factories live with their tests)."""

from __future__ import annotations

import factory

from tenants.models import Role, User


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


# --- orchestration (issue 14): programs > campaigns > line items (build inside an org's schema) -------


class ProgramFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "campaigns.Program"

    name = factory.Sequence(lambda n: f"Program {n}")
    budget = "100000.00"
    currency = "USD"


class OrchestratedCampaignFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "campaigns.Campaign"

    program = factory.SubFactory(ProgramFactory)
    name = factory.Sequence(lambda n: f"Campaign {n}")
    budget = "10000.00"
    currency = "USD"


class LineItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "campaigns.LineItem"

    campaign = factory.SubFactory(OrchestratedCampaignFactory)
    name = factory.Sequence(lambda n: f"Line item {n}")
    budget = "1000.00"
    currency = "USD"
    bid = "2.50"
