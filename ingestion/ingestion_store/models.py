"""Per-organisation ingestion tables: staged rows and REDS events (each org's schema).

`StagedMetric` is UNLOGGED (set in its migration): it only holds rows between parsing and the
load transaction, and a crash simply means the run is repeated.
`RedsEvent` is a table partitioned by day (created in SQL by its migration; partitions are added
on demand by the loader), so attribution and pacing read one day without scanning the rest.
"""

from __future__ import annotations

from django.db import models


class StagedMetric(models.Model):
    run_id = models.BigIntegerField(db_index=True)
    line_no = models.BigIntegerField()
    date = models.DateField()
    campaign = models.CharField(max_length=255)
    strategy = models.CharField(max_length=255)
    placement = models.CharField(max_length=255)
    creative = models.CharField(max_length=255)
    impressions = models.BigIntegerField()
    clicks = models.BigIntegerField()
    conversions = models.BigIntegerField()
    conversion_revenue = models.DecimalField(max_digits=18, decimal_places=4)
    rows = models.IntegerField(default=1, help_text="File rows merged into this key.")
    media_cost = models.DecimalField(max_digits=18, decimal_places=6, null=True)
    cpm = models.DecimalField(max_digits=10, decimal_places=4, null=True, help_text="The CPM in force that day.")
    campaign_ref = models.BigIntegerField(null=True, help_text="Campaign id when known before loading (REDS).")

    def __str__(self) -> str:
        return f"run {self.run_id} line {self.line_no}"


class RedsFile(models.Model):
    """A REDS file whose rows were loaded into this organisation (re-loading it replaces its events)."""

    name = models.CharField(max_length=500, db_index=True)
    content_hash = models.CharField(max_length=64, db_index=True)
    run_id = models.BigIntegerField()
    events = models.BigIntegerField(default=0)
    days = models.JSONField(default=list, help_text="Days (partitions) holding this file's events.")
    loaded_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.name


class RedsEvent(models.Model):
    """One TTD event. Primary key (event_date, id) in the database; partitioned by event_date."""

    id = models.BigIntegerField(primary_key=True)
    event_date = models.DateField()
    event_timestamp = models.DateTimeField()
    advertiser_id = models.CharField(max_length=64)
    campaign_id = models.CharField(max_length=100)
    line_item_id = models.CharField(max_length=100)
    event_type = models.CharField(max_length=16)
    cost_usd = models.DecimalField(max_digits=18, decimal_places=6)
    audience_id = models.CharField(max_length=100)
    user_id = models.CharField(max_length=200)
    user_id_type = models.CharField(max_length=8)
    conversion_value = models.DecimalField(max_digits=18, decimal_places=4, null=True)
    file_id = models.BigIntegerField()
    line_no = models.BigIntegerField()

    class Meta:
        managed = False
        db_table = "ingestion_store_redsevent"

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_timestamp}"
