"""Reporting data of one organisation (its schema): a daily rollup the dashboard reads, and the
stored weekly/monthly summaries.

`DailyRollup` is `campaigns_dailymetric` summed per (date, campaign, strategy, source): about 1 row
per 100 daily rows at the document's volume, so a 30-day dashboard reads thousands of rows instead
of millions. It is rewritten for the days an ingestion run loads (inside the run's transaction, see
`reporting.rollup`) and for the days `aggregate` covers, so it can always be rebuilt from the facts.
"""

from __future__ import annotations

from decimal import Decimal

from django.db import models


class DailyRollup(models.Model):
    date = models.DateField()
    # Plain ids, like DailyMetric's (no FK constraints on derived fact tables).
    campaign_id = models.BigIntegerField()
    strategy_id = models.BigIntegerField()
    source = models.CharField(max_length=16)
    impressions = models.BigIntegerField(default=0)
    clicks = models.BigIntegerField(default=0)
    conversions = models.BigIntegerField(default=0)
    conversion_revenue = models.DecimalField(max_digits=22, decimal_places=4, default=Decimal("0"))
    spend = models.DecimalField(max_digits=26, decimal_places=7, default=Decimal("0"), help_text="exact")
    rows = models.IntegerField(default=0, help_text="daily metric rows summed")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["date", "campaign_id", "strategy_id", "source"], name="rollup_key")
        ]
        indexes = [models.Index(fields=["campaign_id", "date"], name="rollup_campaign_date")]

    def __str__(self) -> str:
        return f"{self.date} campaign {self.campaign_id} strategy {self.strategy_id} {self.source}"


class Period(models.TextChoices):
    WEEK = "week", "Week"
    MONTH = "month", "Month"


class Summary(models.Model):
    """One stored weekly (Monday-based) or monthly summary; regenerated in one transaction."""

    period = models.CharField(max_length=8, choices=Period.choices)
    start = models.DateField()
    end = models.DateField()
    totals = models.JSONField(default=dict)
    previous = models.JSONField(default=dict, help_text="totals of the previous period")
    deltas = models.JSONField(default=dict)
    top_campaigns = models.JSONField(default=dict)
    top_creatives = models.JSONField(default=dict)
    underperformers = models.JSONField(default=list)
    thresholds = models.JSONField(default=dict)
    daily_rows = models.BigIntegerField(default=0, help_text="daily metric rows in the period")
    generated_at = models.DateTimeField()
    generated_by = models.CharField(max_length=64, blank=True, help_text="command, schedule, late data, api")

    class Meta:
        ordering = ["-start", "period"]
        verbose_name_plural = "summaries"
        constraints = [models.UniqueConstraint(fields=["period", "start"], name="summary_period_start")]

    def __str__(self) -> str:
        return f"{self.get_period_display()} from {self.start}"
