"""Bombora Company Surge intent data: topics, loaded weeks and per-topic week counts (public schema).

The tables keep their names from when Bombora lived in the ingestion app (``db_table``); the app moved
with ``SeparateDatabaseAndState`` migrations, so no data moved.
"""

from __future__ import annotations

from django.db import models

# The scores themselves live in `ingestion_bombora_score`, a table partitioned by week and created by raw SQL in the
# migration (see bombora/store.py): one partition per loaded week, swapped whole on a re-ingest.


class BomboraTopic(models.Model):
    """A Bombora topic (for example "Cloud Security"). Names are matched case-insensitively."""

    name = models.CharField(max_length=300)
    category = models.CharField(max_length=300, blank=True)
    first_seen_week = models.DateField(null=True, blank=True)
    last_seen_week = models.DateField(null=True, blank=True)

    class Meta:
        db_table = "ingestion_bomboratopic"  # created by ingestion's migrations; the app moved, the table did not
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(models.functions.Lower("name"), name="bombora_topic_name_ci_unique"),
        ]

    def __str__(self) -> str:
        return self.name


class BomboraWeekStatus(models.TextChoices):
    LOADING = "loading", "Loading"
    READY = "ready", "Ready"
    PRUNED = "pruned", "Pruned (history limit)"


class BomboraWeek(models.Model):
    """One loaded week of Bombora data (week = the Monday of the file's date). Its scores are one partition."""

    week = models.DateField(unique=True)
    status = models.CharField(max_length=16, choices=BomboraWeekStatus.choices, default=BomboraWeekStatus.LOADING)
    run = models.ForeignKey(
        "ingestion.IngestionRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    rows = models.BigIntegerField(default=0)
    domains = models.BigIntegerField(default=0)
    topics = models.IntegerField(default=0)
    surging_rows = models.BigIntegerField(default=0, help_text="Rows with composite score >= 60.")
    file_name = models.CharField(max_length=500, blank=True)
    loaded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "ingestion_bomboraweek"
        ordering = ["-week"]

    def __str__(self) -> str:
        return f"Bombora week of {self.week:%Y-%m-%d}"


class BomboraTopicWeek(models.Model):
    """Per topic and loaded week: how many domains have a score, and how many surge (score >= 60).

    Counted while the week loads (a few thousand rows a week), so the topic catalogue never scans the scores."""

    week = models.DateField()
    topic = models.ForeignKey(BomboraTopic, on_delete=models.CASCADE, related_name="weeks")
    domains = models.BigIntegerField(default=0)
    surging = models.BigIntegerField(default=0)

    class Meta:
        db_table = "ingestion_bomboratopicweek"
        ordering = ["-week", "topic"]
        constraints = [models.UniqueConstraint(fields=["week", "topic"], name="bombora_topic_week_unique")]

    def __str__(self) -> str:
        return f"{self.topic} in the week of {self.week:%Y-%m-%d}"
