"""Campaigns of one organisation (its schema), the paid-media hierarchy and its daily metrics.

The organisation is the "client" of source document 004: its CPM rates (by effective date) and
source settings live here. The hierarchy is campaign -> strategy -> placement -> creative, with the
document's unique constraints; a campaign is unique per (name, source). The orchestration issue
adds programs above campaigns and line items below them; REDS line items stay strategies (the
roll-up keeps them) and link to line items, so spend rolls up program > campaign > line item.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.core.validators import MinValueValidator
from django.db import models


class CampaignStatus(models.TextChoices):
    """The workflow (orchestration): draft -> pending approval -> active <-> paused -> completed.
    `ended` is the status campaigns had before the workflow; it is read like `completed`."""

    DRAFT = "draft", "Draft"
    PENDING_APPROVAL = "pending_approval", "Pending approval"
    ACTIVE = "active", "Active"
    PAUSED = "paused", "Paused"
    COMPLETED = "completed", "Completed"
    ENDED = "ended", "Ended"


class PricingModel(models.TextChoices):
    CPM = "cpm", "CPM"
    CPCV = "cpcv", "CPCV"


class Pacing(models.TextChoices):
    EVEN = "even", "Even"
    ASAP = "asap", "ASAP"


def dates_ordered(start: dt.date | None, end: dt.date | None) -> bool:
    """The one date-order rule of a flight (program, campaign, line item): an open end or start is fine,
    else the end is on or after the start. The services check it (a clear message); the database holds
    the same rule as a check constraint (`dates_ordered_constraint`) for every other path."""
    return start is None or end is None or end >= start


def dates_ordered_constraint(name: str) -> models.CheckConstraint:
    """`dates_ordered` as the table's check constraint."""
    return models.CheckConstraint(
        condition=models.Q(end_date__isnull=True)
        | models.Q(start_date__isnull=True)
        | models.Q(end_date__gte=models.F("start_date")),
        name=name,
    )


MONEY = {"max_digits": 14, "decimal_places": 2, "validators": [MinValueValidator(Decimal("0"))]}


class Program(models.Model):
    """An insertion order (document 000, "Programs: top-level containers tied to Salesforce
    opportunities"). Its campaigns' budgets never sum above its budget (services lock this row)."""

    name = models.CharField(max_length=255, unique=True)
    budget = models.DecimalField(default=Decimal("0.00"), **MONEY)  # type: ignore[arg-type]
    currency = models.CharField(max_length=3, default="USD")
    start_date = models.DateField(null=True, blank=True)
    end_date = models.DateField(null=True, blank=True)
    salesforce_opportunity_id = models.CharField("Salesforce opportunity id", max_length=64, blank=True)
    is_default = models.BooleanField(
        default=False, editable=False, help_text="Created by the migration to hold the campaigns that existed before."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-start_date", "name"]
        constraints = [
            dates_ordered_constraint("program_dates_ordered"),
        ]

    def __str__(self) -> str:
        return self.name


class MediaSource(models.TextChoices):
    MANUAL = "manual", "Manual"
    SURFSIDE = "surfside", "Surfside"
    VIBE = "vibe", "Vibe"
    FACEBOOK = "facebook", "Facebook"
    REDS = "reds", "TTD REDS"


class Campaign(models.Model):
    program = models.ForeignKey(
        Program,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="campaigns",
        help_text="The program (IO) whose budget this campaign draws on. Campaigns created by ingestion have none "
        "until assigned.",
    )
    name = models.CharField(max_length=255)
    source = models.CharField(
        max_length=16,
        choices=MediaSource.choices,
        default=MediaSource.MANUAL,
        db_index=True,
        help_text="Where the campaign comes from; ingestion finds campaigns by (name, source).",
    )
    external_id = models.CharField(
        max_length=100, blank=True, db_index=True, help_text="The platform's campaign id (TTD campaign id for REDS)."
    )
    status = models.CharField(max_length=16, choices=CampaignStatus.choices, default=CampaignStatus.DRAFT)
    start_date = models.DateField(null=True, blank=True)
    end_date = models.DateField(null=True, blank=True)
    budget = models.DecimalField(
        max_digits=14, decimal_places=2, default=Decimal("0.00"), validators=[MinValueValidator(Decimal("0"))]
    )
    currency = models.CharField(max_length=3, default="USD")
    audiences = models.ManyToManyField("audiences.Audience", blank=True, related_name="campaigns")
    # Database defaults: ingestion inserts campaigns in SQL without naming these columns.
    ttd_campaign_id = models.CharField("TTD campaign id", max_length=100, blank=True, editable=False, db_default="")
    ttd_synced_hash = models.CharField(max_length=64, blank=True, editable=False, db_default="")
    ttd_synced_budget = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-start_date", "name"]
        constraints = [
            models.UniqueConstraint(fields=["name", "source"], name="campaign_name_source_unique"),
            dates_ordered_constraint("campaign_dates_ordered"),
        ]

    def __str__(self) -> str:
        return self.name if self.source == MediaSource.MANUAL else f"{self.name} ({self.get_source_display()})"


class LineItem(models.Model):
    """The execution level under a campaign (document 000): bid, pricing model, creatives, pacing,
    budget and flight. Spend reaches it through the strategies linked to it (a REDS line item is a
    strategy named by its TTD line item id, matched by `external_id`)."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="line_items")
    name = models.CharField(max_length=255)
    external_id = models.CharField(
        max_length=100, blank=True, db_index=True, help_text="TTD line item / ad group id (REDS `line_item_id`)."
    )
    status = models.CharField(max_length=16, choices=CampaignStatus.choices, default=CampaignStatus.DRAFT)
    budget = models.DecimalField(default=Decimal("0.00"), **MONEY)  # type: ignore[arg-type]
    currency = models.CharField(max_length=3, default="USD")
    bid = models.DecimalField(max_digits=12, decimal_places=4, default=Decimal("0"), validators=[MinValueValidator(0)])
    pricing_model = models.CharField(max_length=4, choices=PricingModel.choices, default=PricingModel.CPM)
    pacing = models.CharField(max_length=4, choices=Pacing.choices, default=Pacing.EVEN)
    creatives = models.CharField(max_length=500, blank=True, help_text="Creative sets, comma-separated.")
    start_date = models.DateField(null=True, blank=True)
    end_date = models.DateField(null=True, blank=True)
    auto_pause_at_budget = models.BooleanField(
        default=False, help_text="Pause automatically (audited, reversible) once spend passes the budget."
    )
    ttd_ad_group_id = models.CharField("TTD ad group id", max_length=100, blank=True, editable=False)
    ttd_synced_hash = models.CharField(max_length=64, blank=True, editable=False)
    ttd_synced_budget = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["campaign", "name"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "name"], name="lineitem_campaign_name_unique"),
            dates_ordered_constraint("lineitem_dates_ordered"),
        ]

    def __str__(self) -> str:
        return self.name


class Strategy(models.Model):
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="strategies")
    name = models.CharField(max_length=255)
    line_item = models.ForeignKey(
        LineItem,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="strategies",
        help_text="Explicit link; unlinked strategies roll up to the campaign's line item whose external id or name "
        "equals the strategy's name.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["campaign", "name"]
        verbose_name_plural = "strategies"
        constraints = [models.UniqueConstraint(fields=["campaign", "name"], name="strategy_campaign_name_unique")]

    def __str__(self) -> str:
        return self.name


class Placement(models.Model):
    strategy = models.ForeignKey(Strategy, on_delete=models.CASCADE, related_name="placements")
    name = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["strategy", "name"]
        constraints = [models.UniqueConstraint(fields=["strategy", "name"], name="placement_strategy_name_unique")]

    def __str__(self) -> str:
        return self.name


class Creative(models.Model):
    placement = models.ForeignKey(Placement, on_delete=models.CASCADE, related_name="creatives")
    name = models.CharField(max_length=255)
    preview_url = models.URLField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["placement", "name"]
        constraints = [models.UniqueConstraint(fields=["placement", "name"], name="creative_placement_name_unique")]

    def __str__(self) -> str:
        return self.name


class CpmRate(models.Model):
    """The organisation's contracted CPM from `effective_date` on (history kept; never edited in place)."""

    cpm = models.DecimalField("CPM", max_digits=10, decimal_places=4, validators=[MinValueValidator(Decimal("0.0001"))])
    currency = models.CharField(max_length=3, default="USD")
    effective_date = models.DateField(unique=True)
    note = models.CharField(max_length=200, blank=True)
    created_by_email = models.CharField(max_length=254, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-effective_date"]
        verbose_name = "CPM rate"

    def __str__(self) -> str:
        return f"{self.cpm} {self.currency} from {self.effective_date}"


class ClientSettings(models.Model):
    """One row per organisation: currency, alert recipients and per-source settings."""

    currency = models.CharField(max_length=3, default="USD")
    alert_emails = models.TextField(
        blank=True, help_text="Comma-separated addresses told when an ingestion run fails or a file is missing."
    )
    surfside_enabled = models.BooleanField(default=False, help_text="Pull the daily Surfside file from S3.")
    surfside_prefix = models.CharField(
        max_length=300, blank=True, help_text="Key prefix in the Surfside bucket, for example 'acme/'."
    )
    surfside_pattern = models.CharField(
        max_length=200, blank=True, help_text="File name pattern; empty = the installation's default."
    )
    vibe_enabled = models.BooleanField(default=False)
    vibe_advertiser_id = models.CharField(max_length=100, blank=True)
    vibe_api_key_encrypted = models.TextField(blank=True, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "client settings"
        verbose_name_plural = "client settings"

    def __str__(self) -> str:
        return "Client settings"

    @property
    def has_vibe_key(self) -> bool:
        return bool(self.vibe_api_key_encrypted)


class DailyMetric(models.Model):
    """One day of one creative from one source. Replaced, never added to, when its source+date is re-run.

    `spend` is kept exact (impressions x CPM / 1000 has at most 7 decimals); derived metrics are
    stored at document 004 appendix A.1 precision. Readers round spend to 2 places when presenting.
    """

    # A derived fact table, rebuilt by every load: only the indexes the loader and readers use (each
    # extra index slows a 150K-row load): the unique key (leading `date`) serves date ranges,
    # (source, date) the replace, (campaign, date) drill-downs. No database FK constraints: checking
    # 4 x 150K deferred FKs doubled the commit; the loader inserts only ids it has just resolved by
    # join in the same transaction, and deletes of the hierarchy cascade through the ORM.
    date = models.DateField()
    campaign = models.ForeignKey(
        Campaign, on_delete=models.CASCADE, related_name="daily_metrics", db_index=False, db_constraint=False
    )
    strategy = models.ForeignKey(
        Strategy, on_delete=models.CASCADE, related_name="daily_metrics", db_index=False, db_constraint=False
    )
    placement = models.ForeignKey(
        Placement, on_delete=models.CASCADE, related_name="daily_metrics", db_index=False, db_constraint=False
    )
    creative = models.ForeignKey(
        Creative, on_delete=models.CASCADE, related_name="daily_metrics", db_index=False, db_constraint=False
    )
    source = models.CharField(max_length=16, choices=MediaSource.choices)
    impressions = models.BigIntegerField(default=0)
    clicks = models.BigIntegerField(default=0)
    conversions = models.BigIntegerField(default=0)
    conversion_revenue = models.DecimalField(max_digits=18, decimal_places=4, default=Decimal("0"))
    cpm = models.DecimalField("CPM", max_digits=10, decimal_places=4)
    spend = models.DecimalField(max_digits=22, decimal_places=7)
    media_cost = models.DecimalField(
        max_digits=18, decimal_places=6, null=True, blank=True, help_text="Platform cost (REDS cost_usd), if reported."
    )
    ctr = models.DecimalField("CTR", max_digits=12, decimal_places=6, null=True, blank=True)
    cpc = models.DecimalField("CPC", max_digits=18, decimal_places=4, null=True, blank=True)
    cpa = models.DecimalField("CPA", max_digits=18, decimal_places=4, null=True, blank=True)
    roas = models.DecimalField("ROAS", max_digits=18, decimal_places=4, null=True, blank=True)
    run_id = models.BigIntegerField(help_text="The ingestion run that loaded this row.")
    loaded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-date", "campaign_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["date", "campaign", "strategy", "placement", "creative", "source"], name="daily_metric_key"
            )
        ]
        indexes = [
            models.Index(fields=["source", "date"], name="daily_metric_source_date"),
            models.Index(fields=["campaign", "-date"], name="daily_metric_campaign_date"),
        ]

    def __str__(self) -> str:
        return f"{self.date} {self.source} creative {self.creative_id}"


# --- Orchestration: performance rules, automatic actions, pacing alerts, TTD sync log -------------


class RuleMetric(models.TextChoices):
    CPA = "cpa", "CPA above target"
    CTR = "ctr", "CTR below target"


class PerformanceRule(models.Model):
    """Pause a line item of `campaign` whose CPA (or CTR) misses `target` once it has spent `min_spend`."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="rules")
    metric = models.CharField(max_length=4, choices=RuleMetric.choices)
    target = models.DecimalField(max_digits=14, decimal_places=6, validators=[MinValueValidator(Decimal("0"))])
    min_spend = models.DecimalField(default=Decimal("0.00"), **MONEY)  # type: ignore[arg-type]
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["campaign", "metric"]

    def __str__(self) -> str:
        word = "CPA >" if self.metric == RuleMetric.CPA else "CTR <"
        return f"pause when {word} {self.target} after {self.min_spend} spent"


class AutomationKind(models.TextChoices):
    RULE_PAUSE = "rule_pause", "Paused by a performance rule"
    BUDGET_PAUSE = "budget_pause", "Paused at budget"
    REALLOCATION = "reallocation", "Budget reallocated"


class AutomationAction(models.Model):
    """One automatic (or one-step) change: what it touched, exactly as it was before and after, so it
    can be reversed. `changes` is [{"model", "id", "before": {...}, "after": {...}}, ...]."""

    kind = models.CharField(max_length=16, choices=AutomationKind.choices)
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="automation_actions")
    rule = models.ForeignKey(PerformanceRule, on_delete=models.SET_NULL, null=True, blank=True)
    reason = models.CharField(max_length=500)
    changes = models.JSONField(default=list)
    actor_email = models.CharField(max_length=254, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    reverted_at = models.DateTimeField(null=True, blank=True)
    reverted_by_email = models.CharField(max_length=254, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.reason}"


class PacingAlert(models.Model):
    """A campaign or line item off pace (or over budget) on a day; one row per object, day and status."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="pacing_alerts")
    line_item = models.ForeignKey(LineItem, on_delete=models.CASCADE, null=True, blank=True)
    day = models.DateField()
    status = models.CharField(max_length=16)
    message = models.CharField(max_length=500)
    emailed = models.BooleanField(default=False)
    acknowledged = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-day", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "line_item", "day", "status"], name="pacing_alert_once", nulls_distinct=False
            ),
        ]

    def __str__(self) -> str:
        return self.message


class SyncLog(models.Model):
    """One TTD sync attempt of one object (campaign or line item)."""

    object_type = models.CharField(max_length=16)  # campaign | line_item
    object_id = models.BigIntegerField()
    action = models.CharField(max_length=16)  # create | update | unchanged | drift | error
    remote_id = models.CharField(max_length=100, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    request = models.JSONField(null=True, blank=True)
    remote = models.JSONField(null=True, blank=True, help_text="What TTD held when drift was found.")
    message = models.CharField(max_length=1000, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["object_type", "object_id", "-created_at"], name="synclog_object")]

    def __str__(self) -> str:
        return f"{self.object_type} {self.object_id}: {self.action}"


class SpendTotal(models.Model):
    """Running totals of one strategy's delivery: everything it delivered up to and including `date` (one row
    per strategy and day it has daily metrics). Pacing reads two rows per strategy and flight (at the
    flight's end and the day before its start) instead of every daily row: spend over [lo, hi] is
    total(hi) - total(lo - 1). Rewritten from the first changed day on, in the loader's transaction, by the
    ingestion ETL's "metrics_loaded" hook (campaigns/spend_totals.py); rebuilt whole after retention deletes
    old days. Derived data: no FK constraints (like DailyMetric); a deleted campaign's rows are deleted."""

    strategy_id = models.BigIntegerField()
    campaign_id = models.BigIntegerField()
    date = models.DateField()
    spend = models.DecimalField(max_digits=28, decimal_places=7)
    media_cost = models.DecimalField(max_digits=26, decimal_places=6)
    impressions = models.BigIntegerField()
    clicks = models.BigIntegerField()
    conversions = models.BigIntegerField()
    conversion_revenue = models.DecimalField(max_digits=26, decimal_places=4)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["strategy_id", "date"], name="spend_total_strategy_date")]

    def __str__(self) -> str:
        return f"strategy {self.strategy_id} to {self.date}: {self.spend}"
