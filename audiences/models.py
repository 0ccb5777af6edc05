"""Audiences of one organisation (its schema). Import and builder issues extend these."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class AudienceKind(models.TextChoices):
    IMPORTED = "imported", "Imported file"
    BUILT = "built", "Built with the builder"
    SEED = "seed", "ICP seed"


class AudienceStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    READY = "ready", "Ready"
    ARCHIVED = "archived", "Archived"


class Audience(models.Model):
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=16, choices=AudienceKind.choices, default=AudienceKind.IMPORTED)
    status = models.CharField(max_length=16, choices=AudienceStatus.choices, default=AudienceStatus.DRAFT)
    record_count = models.BigIntegerField(default=0)
    # The user table is in the public schema; a plain FK works through the search path.
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["name"], name="audience_name_unique")]

    def __str__(self) -> str:
        return self.name
