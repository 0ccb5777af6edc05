"""Campaigns of one organisation (its schema), the paid-media hierarchy and its daily metrics.

The organisation is the "client" of source document 004: its CPM rates (by effective date) and
source settings live here. The hierarchy is campaign -> strategy -> placement -> creative, with the
document's unique constraints; a campaign is unique per (name, source). The orchestration issue
adds programs and line items on top (REDS line items are kept as strategies until then).
"""

from __future__ import annotations

from decimal import Decimal

from django.core.validators import MinValueValidator
from django.db import models


class CampaignStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    ACTIVE = "active", "Active"
    PAUSED = "paused", "Paused"
    ENDED = "ended", "Ended"


class MediaSource(models.TextChoices):
    MANUAL = "manual", "Manual"
    SURFSIDE = "surfside", "Surfside"
    VIBE = "vibe", "Vibe"
    FACEBOOK = "facebook", "Facebook"
    REDS = "reds", "TTD REDS"


class Campaign(models.Model):
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
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-start_date", "name"]
        constraints = [
            models.UniqueConstraint(fields=["name", "source"], name="campaign_name_source_unique"),
            models.CheckConstraint(
                condition=models.Q(end_date__isnull=True)
                | models.Q(start_date__isnull=True)
                | models.Q(end_date__gte=models.F("start_date")),
                name="campaign_dates_ordered",
            ),
        ]

    def __str__(self) -> str:
        return self.name if self.source == MediaSource.MANUAL else f"{self.name} ({self.get_source_display()})"


class Strategy(models.Model):
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="strategies")
    name = models.CharField(max_length=255)
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
