"""factory-boy factories: what tests use to make data.

Shared (public schema): organisations, users, memberships, ingestion runs. Tenant (org schema): audiences
(with versions, records and imports), uploads, campaigns, strategies, daily metrics, rollup rows — create them
inside `schema_context(org.schema_name)`.
Organisations: `OrganizationFactory(slug="acme")` returns the session's org (tests/conftest.py) and only an
unknown slug creates one (through `tenants.services.org_create`, whose schema step replays acme's migrated schema
in tests: tests/schema_clone.py).
Objects with a service (campaigns, users) are created through it where the audit row matters: use
`CampaignFactory.create_via_service(actor=..., **fields)`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import factory
import polars as pl
from django.utils import timezone

from audiences import records
from audiences.models import Audience, AudienceImport, AudienceKind, AudienceStatus, AudienceVersion, ImportStatus
from audiences.normalize import uid2_hash
from campaigns.models import Campaign, CampaignStatus, Creative, DailyMetric, Placement, Strategy
from campaigns.services import campaign_save
from ingestion.models import IngestionRun, RunStatus, Source, Trigger
from p360.core.uploads.models import Upload, UploadStatus
from reporting.models import DailyRollup
from tenants.models import Membership, Organization, Role, User
from tenants.services import org_create


class OrganizationFactory(factory.django.DjangoModelFactory):
    """An organisation looked up by slug (the session's acme/globex cost nothing), else made by `org_create`.

    A created org is committed only if the caller commits (module fixtures under `django_db_blocker.unblock()`);
    such callers delete it themselves (`org.delete(force_drop=True)`).
    """

    class Meta:
        model = Organization

    slug = factory.Sequence(lambda n: f"org-{n:03d}")
    name = factory.LazyAttribute(lambda o: o.slug.replace("-", " ").title())
    ttd_advertiser_id = ""

    @classmethod
    def _create(cls, model_class: type[Organization], *args: Any, **kwargs: Any) -> Organization:
        found = model_class.objects.filter(slug=kwargs["slug"]).first()
        if found is not None:
            return found
        return org_create(**kwargs)


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


class AudienceVersionFactory(factory.django.DjangoModelFactory):
    """A version row only; `AudienceFactory.with_records` also makes its partition and rows."""

    class Meta:
        model = AudienceVersion

    audience = factory.SubFactory(AudienceFactory)
    number = factory.LazyAttribute(
        lambda o: (o.audience.versions.order_by("-number").values_list("number", flat=True).first() or 0) + 1
    )
    record_count = 0


class AudienceImportFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AudienceImport

    audience = factory.SubFactory(AudienceFactory)
    audience_name = factory.LazyAttribute(lambda o: o.audience.name)
    source_name = factory.LazyAttribute(lambda o: f"{o.audience_name}.csv")
    status = ImportStatus.SUCCEEDED


def audience_with_records(
    name: str, rows: Sequence[dict[str, Any]], *, custom_types: dict[str, str] | None = None
) -> Audience:
    """An imported audience (reused by name) whose new current version holds `rows`, as an import leaves it.

    `rows` are dicts of canonical/derived fields (`custom` as a dict); `custom_types` adds the succeeded
    import that declared them (the builder reads custom field types from it).
    """
    audience = Audience.objects.filter(name=name).first() or AudienceFactory(name=name)
    version = AudienceVersionFactory(audience=audience, record_count=len(rows))
    records.create_partition(version.pk)
    for row in rows:  # the hashes are not stored (readers derive them): a row can only name the derived value
        for hashed, base in records.DERIVED.items():
            given, value = row.get(hashed), row.get(base)
            if given is not None and given != (None if value is None else uid2_hash(value)):
                raise ValueError(f"{hashed} {given!r} is not the UID2 hash of {base} {value!r}")
    data: dict[str, list[Any]] = {"line": list(range(2, len(rows) + 2))}
    for column, _, _dtype in records.RECORD_COLUMNS:
        values = [row.get(column) for row in rows]
        data[column] = [json.dumps(v) if v else None for v in values] if column == "custom" else values
    frame = pl.DataFrame(data, schema={"line": pl.Int64, **{c: t for c, _, t in records.RECORD_COLUMNS}})
    records.copy_frame(version.pk, records.conform(frame), first_row=0)
    audience.current_version = version
    audience.record_count = len(rows)
    audience.save(update_fields=["current_version", "record_count", "updated_at"])
    if custom_types:
        AudienceImportFactory(audience=audience, custom_types=dict(custom_types), version=version)
    return audience


class UploadFactory(factory.django.DjangoModelFactory):
    """An unfinished upload that expires in an hour (tenant schema)."""

    class Meta:
        model = Upload

    filename = factory.Sequence(lambda n: f"file-{n:03}.csv")
    size = factory.Sequence(lambda n: 1000 + n)
    offset = 0
    status = UploadStatus.UPLOADING
    created_by_email = "someone@acme.test"
    expires_at = factory.LazyFunction(lambda: timezone.now() + dt.timedelta(hours=1))


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
