"""Activation tables of one organisation (its schema): UID2 identities, delivery configuration,
destinations, the delivery ledger, TTD segment state and ICP seeds.

UID2 identities are keyed by the hashed identifier the audience import already derives
(`email_sha256` / `phone_sha256`, standard Base64 of SHA-256), so the audience tables stay untouched
and one person present in several audiences is mapped once.
"""

from __future__ import annotations

from decimal import Decimal

from django.db import models


class IdentityKind(models.TextChoices):
    EMAIL = "email", "Email"
    PHONE = "phone", "Phone"


class IdentityStatus(models.TextChoices):
    PENDING = "pending", "Not mapped yet"
    MAPPED = "mapped", "Mapped"
    OPTOUT = "optout", "Opted out"
    INVALID = "invalid", "Invalid identifier"


class Uid2Identity(models.Model):
    kind = models.CharField(max_length=8, choices=IdentityKind.choices)
    hashed = models.CharField(max_length=64, help_text="Base64 SHA-256 of the normalised email or phone.")
    status = models.CharField(max_length=8, choices=IdentityStatus.choices, default=IdentityStatus.PENDING)
    uid2 = models.CharField("raw UID2", max_length=64, blank=True)
    previous_uid2 = models.CharField("previous raw UID2", max_length=64, blank=True)
    refresh_from = models.DateTimeField(null=True, blank=True, help_text="Re-map on or after this time.")
    mapped_at = models.DateTimeField(null=True, blank=True)
    opted_out_at = models.DateTimeField(null=True, blank=True)
    raw_reason = models.CharField(max_length=64, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["kind", "hashed"], name="uid2_identity_unique")]
        indexes = [
            models.Index(fields=["status", "refresh_from"], name="uid2_identity_due"),
            models.Index(fields=["uid2"], name="uid2_identity_uid2"),
        ]
        verbose_name = "UID2 identity"
        verbose_name_plural = "UID2 identities"

    def __str__(self) -> str:
        return f"{self.kind} {self.hashed[:10]}… ({self.status})"


class IdentityRevision(models.Model):
    """One row: bumped in the transaction of every write to the UID2 identities, so a stored match rate knows
    whether the identities changed since it was computed (MVCC-read: never ahead of the data it stands for)."""

    value = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"identity revision {self.value}"


class MatchStats(models.Model):
    """An audience's UID2 match figures, computed once per (records version, identity revision) instead of on every
    view of its page: at 10M records the count joins every record to the identities (seconds)."""

    audience = models.OneToOneField("audiences.Audience", on_delete=models.CASCADE, related_name="+")
    version_id = models.BigIntegerField(null=True)
    revision = models.BigIntegerField()
    stats = models.JSONField()
    computed_at = models.DateTimeField()
    # A built audience's members have no version: the `materialized_at` they were counted for (read before the
    # count) tells whether a refresh replaced them since (session 12; they used to look current for up to an hour).
    members_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "UID2 match statistics"
        verbose_name_plural = "UID2 match statistics"

    def __str__(self) -> str:
        return f"match statistics of audience {self.audience_id}"


class Cadence(models.TextChoices):
    DAILY = "daily", "Daily"
    WEEKLY = "weekly", "Weekly"
    MONTHLY = "monthly", "Monthly"


class PushMode(models.TextChoices):
    MERGED = "merged", "Merged (one file for all segments)"
    SPLIT = "split", "Split (one file per segment)"


class DeliveryConfig(models.Model):
    """The org's delivery settings (one row; document 002's REF_ADVERTISER_CONFIG columns)."""

    enabled = models.BooleanField(default=False)
    cadence = models.CharField(max_length=8, choices=Cadence.choices, default=Cadence.WEEKLY)
    lookback_days = models.PositiveSmallIntegerField(
        null=True, blank=True, default=90, help_text="30, 60 or 90 days of REDS events; empty = never expire."
    )
    push_mode = models.CharField(max_length=8, choices=PushMode.choices, default=PushMode.MERGED)
    shrink_alert_share = models.DecimalField(
        max_digits=4, decimal_places=3, default=Decimal("0.200"), help_text="Alert when a delivery shrinks by more."
    )
    alert_emails = models.CharField(max_length=500, blank=True, help_text="Comma-separated.")
    ttd_ttl_days = models.PositiveSmallIntegerField(default=90, help_text="TTD segment TTL (1-180 days).")
    ttd_base_bid_cpm = models.DecimalField(max_digits=8, decimal_places=2, default=Decimal("1.15"))
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "delivery configuration"

    def __str__(self) -> str:
        return f"Delivery configuration ({'on' if self.enabled else 'off'}, {self.cadence})"


class DestinationKind(models.TextChoices):
    LIVERAMP = "liveramp", "LiveRamp (SFTP)"
    TTD = "ttd", "The Trade Desk (API)"
    S3 = "s3", "Generic S3"
    SFTP = "sftp", "Generic SFTP"


class LiveRampRegion(models.TextChoices):
    """LiveRamp's SFTP endpoints (reference 3.1): one host, the region picks the port and the login."""

    US = "us", "US / North America (port 22, password or SSH key)"
    EU = "eu", "EU (port 4222, SSH key required)"
    AU = "au", "Australia (port 2222, SSH key required)"


class Destination(models.Model):
    """Where deliveries go. Secrets live only in `credentials_encrypted` (Fernet); never shown."""

    name = models.CharField(max_length=80)
    kind = models.CharField(max_length=16, choices=DestinationKind.choices)
    enabled = models.BooleanField(default=True)
    audiences = models.ManyToManyField("audiences.Audience", blank=True, related_name="+")
    host = models.CharField(max_length=255, blank=True)
    port = models.PositiveIntegerField(default=22)
    username = models.CharField(max_length=120, blank=True)
    remote_dir = models.CharField(max_length=255, blank=True, default="/uploads")
    host_key = models.TextField(blank=True, help_text="Pinned SSH host public key (OpenSSH format).")
    bucket = models.CharField(max_length=255, blank=True)
    prefix = models.CharField(max_length=255, blank=True)
    endpoint_url = models.CharField(max_length=255, blank=True)
    advertiser_id = models.CharField(max_length=64, blank=True, help_text="TTD advertiser id.")
    base_url = models.CharField(max_length=255, blank=True, help_text="TTD Data API base URL (empty: default).")
    compression = models.CharField(
        max_length=8, blank=True, default="", choices=[("", "None"), ("gzip", "gzip")],
        help_text="File destinations: gzip each part (`.psv.gz`).",
    )  # fmt: skip
    region = models.CharField(
        max_length=2, choices=LiveRampRegion.choices, default=LiveRampRegion.US,
        help_text="LiveRamp: the SFTP endpoint (US port 22; EU 4222 and AU 2222 need an SSH key).",
    )  # fmt: skip
    pgp_public_key = models.TextField(
        blank=True, help_text="LiveRamp: their ASCII-armoured PGP public key; files are encrypted when set."
    )
    pgp_subkey_id = models.CharField(
        max_length=40, blank=True, help_text="LiveRamp: the encryption subkey id to use (empty: the key's own)."
    )
    pgp_fingerprint = models.CharField(max_length=40, blank=True, editable=False)
    credentials_encrypted = models.TextField(blank=True)
    credential_fingerprint = models.CharField(max_length=16, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["name"], name="destination_name_unique")]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"

    @property
    def has_credentials(self) -> bool:
        return bool(self.credentials_encrypted)


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    SENT = "sent", "Sent"
    PARTIAL = "partial", "Partly sent (failed lines)"
    FAILED = "failed", "Failed"
    DRY_RUN = "dry_run", "Dry run"


class Delivery(models.Model):
    """One delivery to one destination: the ledger row."""

    destination = models.ForeignKey(Destination, on_delete=models.PROTECT, related_name="deliveries")
    audiences = models.ManyToManyField(
        "audiences.Audience", blank=True, related_name="+", help_text="The audiences this delivery carried."
    )
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    dry_run = models.BooleanField(default=False)
    job_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    rows = models.BigIntegerField(default=0)
    added = models.BigIntegerField(
        default=0, null=True, blank=True, help_text="Rows not in the last successful delivery; empty when unknown."
    )
    removed = models.BigIntegerField(default=0, null=True, blank=True)
    diff_note = models.CharField(
        max_length=300, blank=True, help_text="Why adds/removes are unknown (the baseline kept no member set)."
    )
    checksum = models.CharField(max_length=64, blank=True, help_text="SHA-256 over the files' SHA-256s.")
    files = models.JSONField(default=list, blank=True, help_text='[{"name", "rows", "sha256", "bytes"}]')
    skipped = models.JSONField(default=dict, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    receipt = models.JSONField(default=list, blank=True, help_text="The remote listing after the push.")
    staged = models.JSONField(default=list, blank=True, help_text="Staging object keys.")
    members_file = models.CharField(
        max_length=300, blank=True, help_text="Storage key of the sorted member keys (the next delivery's diff)."
    )
    failed_lines = models.BigIntegerField(default=0)
    alerts = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)
    created_by_email = models.CharField(max_length=254, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "deliveries"
        indexes = [models.Index(fields=["destination", "status", "-id"], name="delivery_dest_status")]

    def __str__(self) -> str:
        return f"Delivery #{self.pk} to {self.destination.name} ({self.status})"


class TtdMemberStatus(models.TextChoices):
    SENT = "sent", "In the segment"
    FAILED = "failed", "Refused by TTD"
    REMOVED = "removed", "Removed (TTL 0)"


class TtdMember(models.Model):
    """One UID2 in one TTD segment: when it was sent, when its TTL runs out, and TTD's FailedLine if any."""

    destination = models.ForeignKey(Destination, on_delete=models.CASCADE, related_name="+")
    segment = models.CharField(max_length=200)
    uid2 = models.CharField(max_length=64)
    status = models.CharField(max_length=8, choices=TtdMemberStatus.choices)
    sent_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.CharField(max_length=500, blank=True)
    delivery_id = models.BigIntegerField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["destination", "segment", "uid2"], name="ttd_member_unique"),
        ]
        verbose_name = "TTD segment member"

    def __str__(self) -> str:
        return f"{self.segment}: {self.uid2[:10]}… ({self.status})"


class IcpSeed(models.Model):
    """An audience designated as an ICP seed: exported to TTD as `ICP_Seed_<name>`, refreshed monthly."""

    audience = models.OneToOneField("audiences.Audience", on_delete=models.CASCADE, related_name="+")
    destination = models.ForeignKey(Destination, on_delete=models.PROTECT, related_name="+")
    name = models.CharField(max_length=200)
    ids = models.BigIntegerField(default=0)
    last_exported_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "ICP seed"

    def __str__(self) -> str:
        return self.name
