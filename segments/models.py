"""Event segments (issue 13, source document 003).

Events themselves live in `segments_event`, a table partitioned by day that Django's schema editor
cannot express (see migration 0002 and `events.py`); everything else is an ordinary model here.
"""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils import timezone

BUILTIN_EVENT_TYPES = ("clicks", "installs", "orders", "addToCart")


class EventType(models.Model):
    """A type of event an organisation defines beyond document 003's four."""

    name = models.CharField(max_length=64, unique=True)
    description = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.name


class Segment(models.Model):
    class Kind(models.TextChoices):
        INDEPENDENT = "independent", "Independent"
        DERIVED = "derived", "Derived"

    class Attribute(models.TextChoices):
        COUNT = "count", "count"
        SUM = "sum", "sum"
        AVG = "avg", "avg (extension)"
        MIN = "min", "min (extension)"
        MAX = "max", "max (extension)"
        DISTINCT = "distinct", "distinct values (extension)"

    class Operator(models.TextChoices):
        GT = "gt", ">"
        GTE = "gte", ">="
        LT = "lt", "<"
        LTE = "lte", "<="
        EQ = "eq", "="
        NEQ = "neq", "!="

    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=12, choices=Kind.choices)
    active = models.BooleanField(default=True)
    version = models.PositiveIntegerField(default=1)
    # Independent rule (document 003's SegmentRule, one per segment)
    event_type = models.CharField(max_length=64, blank=True)
    attribute = models.CharField(max_length=10, choices=Attribute.choices, blank=True)
    property = models.CharField(max_length=100, blank=True)
    operator = models.CharField(max_length=4, choices=Operator.choices, blank=True)
    value = models.DecimalField(max_digits=20, decimal_places=4, null=True, blank=True)
    window_minutes = models.PositiveIntegerField(null=True, blank=True)
    # Derived: {"op": "and"|"or"|"not", "children": [{"segment": id} | expression, ...]}
    expression = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["active", "kind", "event_type"], name="segments_seg_active_idx")]

    def __str__(self) -> str:
        return self.name


class SegmentVersion(models.Model):
    """Every definition a segment has had; memberships record the version that decided them."""

    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    definition = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now)
    created_by_email = models.CharField(max_length=254, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["segment", "version"], name="segments_version_unique")]
        ordering = ["segment", "-version"]

    def __str__(self) -> str:
        return f"{self.segment_id} v{self.version}"


class SegmentDependency(models.Model):
    """A derived segment refers to another segment (PROTECT: delete is refused while used)."""

    derived = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="dependencies")
    child = models.ForeignKey(Segment, on_delete=models.PROTECT, related_name="dependents")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["derived", "child"], name="segments_dependency_unique")]

    def __str__(self) -> str:
        return f"{self.derived_id} -> {self.child_id}"


class UserProfile(models.Model):
    """Document 003's User: the end user the events are about (not a portal login)."""

    user_id = models.CharField(max_length=200, unique=True)
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=32, blank=True)
    device_tokens = models.JSONField(default=list, blank=True)
    attributes = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # the user's latest event time, to a minute: the evaluator moves it only when a newer event is more than
    # segments.evaluator.LAST_ACTIVE_SLACK later (one write a minute at most for a user active all day)
    last_active_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.user_id


class Membership(models.Model):
    """Current membership: one row while the user is in the segment."""

    # no index of its own: the first column of the unique constraint / index below serves it (one index less to
    # maintain on every evaluator write)
    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="members", db_index=False)
    user_id = models.CharField(max_length=200)
    entered_at = models.DateTimeField()
    rule_version = models.PositiveIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["segment", "user_id"], name="segments_member_unique")]
        indexes = [models.Index(fields=["user_id"], name="segments_member_user_idx")]

    def __str__(self) -> str:
        return f"{self.user_id} in {self.segment_id}"


class Transition(models.Model):
    """The append-only membership ledger: one row per entry or exit, never updated.

    An exit row carries the entered_at of the stay it closes, so one row answers "in from .. to ..".
    """

    class Kind(models.TextChoices):
        ENTER = "enter", "enter"
        EXIT = "exit", "exit"

    # no index of its own: the first column of the unique constraint / index below serves it (one index less to
    # maintain on every evaluator write)
    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="transitions", db_index=False)
    user_id = models.CharField(max_length=200)
    kind = models.CharField(max_length=5, choices=Kind.choices)
    entered_at = models.DateTimeField()
    exited_at = models.DateTimeField(null=True, blank=True)
    rule_version = models.PositiveIntegerField()
    event_id = models.CharField(max_length=200, blank=True)  # the triggering event ("" for a timer)
    reason = models.CharField(max_length=300)
    recorded_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["segment", "id"], name="segments_tr_seg_idx"),
            models.Index(fields=["segment", "user_id", "id"], name="segments_tr_user_idx"),
            models.Index(fields=["recorded_at"], name="segments_tr_time_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} {self.kind} {self.segment_id}"


class WindowState(models.Model):
    """Per (user, event type, window, property) window state, shared by every rule that reads that window: the
    aggregates of the user's events in it and when they next change without a new event.

    One state per window rather than per (user, rule): rules on the same type, window and property (whatever their
    attribute or threshold) read the same events, so a batch writes one state for all of them (segments.evaluator).
    `due_at` is the timer: the index on it is how exits happen when the window slides past a user's
    events, without ever scanning all users (a due state is evaluated for every active rule that reads it).
    """

    user_id = models.CharField(max_length=200)
    event_type = models.CharField(max_length=64)
    window_minutes = models.PositiveIntegerField()
    property = models.CharField(max_length=100)  # the rule's property, 'value' when it names none
    events_in_window = models.PositiveIntegerField(default=0)
    due_at = models.DateTimeField(null=True, blank=True)
    evaluated_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user_id", "event_type", "window_minutes", "property"], name="segments_window_unique"
            )
        ]
        indexes = [
            models.Index(fields=["due_at"], name="segments_state_due_idx", condition=models.Q(due_at__isnull=False))
        ]

    def __str__(self) -> str:
        return f"{self.user_id} @ {self.event_type}/{self.window_minutes} min/{self.property}"


class PendingBatch(models.Model):
    """A committed batch of events the evaluator has not evaluated yet: the queue between ingestion and evaluation.

    Ingestion writes one row per batch in the transaction that stores its events (so a crash never loses the
    evaluation of a stored event), as four parallel arrays in request order: one row, not one per event, keeps
    the request path to a single small write. The evaluator loop (`segments_timers`) claims rows with
    FOR UPDATE SKIP LOCKED, evaluates the (user, type) pairs they touched and deletes them in one transaction.
    """

    created_at = models.DateTimeField(default=timezone.now)
    size = models.PositiveIntegerField()  # events in the arrays (sizes a claim without reading them)
    user_ids = ArrayField(models.TextField())
    event_types = ArrayField(models.TextField())
    event_ids = ArrayField(models.TextField())
    event_times = ArrayField(models.DateTimeField())

    def __str__(self) -> str:
        return f"pending batch {self.pk} ({self.size} events)"


class SegmentSettings(models.Model):
    """One row per organisation: retention and the time zone quiet hours are read in."""

    retention_days = models.PositiveIntegerField(default=365)
    time_zone = models.CharField(max_length=64, default="UTC")
    quiet_start = models.TimeField(null=True, blank=True)
    quiet_end = models.TimeField(null=True, blank=True)

    def __str__(self) -> str:
        return "Segment settings"


class TriggerCampaign(models.Model):
    """Document 003's Campaign: a message sent when users enter or exit a segment."""

    class Channel(models.TextChoices):
        EMAIL = "email", "email"
        SMS = "sms", "SMS"
        PUSH = "push", "push"

    class Status(models.TextChoices):
        ACTIVE = "ACTIVE", "active"
        PAUSED = "PAUSED", "paused"
        COMPLETED = "COMPLETED", "completed"

    class On(models.TextChoices):
        ENTER = "enter", "on entry"
        EXIT = "exit", "on exit"

    name = models.CharField(max_length=200)
    segment = models.ForeignKey(Segment, on_delete=models.PROTECT, related_name="campaigns")
    channel = models.CharField(max_length=5, choices=Channel.choices)
    on = models.CharField(max_length=5, choices=On.choices, default=On.ENTER)
    subject = models.CharField(max_length=200, blank=True)
    template = models.TextField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    scheduled_at = models.DateTimeField(null=True, blank=True)
    frequency_cap = models.PositiveIntegerField(default=1)  # sends per user ...
    frequency_hours = models.PositiveIntegerField(default=24)  # ... per this many hours
    respect_quiet_hours = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.name


class Send(models.Model):
    """The outbox and the send history: exactly one row per (campaign, membership transition)."""

    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        SENT = "sent", "sent"
        FAILED = "failed", "failed"
        SKIPPED = "skipped", "skipped"

    campaign = models.ForeignKey(TriggerCampaign, on_delete=models.CASCADE, related_name="sends")
    transition = models.ForeignKey(Transition, on_delete=models.CASCADE, related_name="sends")
    user_id = models.CharField(max_length=200)
    channel = models.CharField(max_length=5)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    not_before = models.DateTimeField(default=timezone.now)
    attempts = models.PositiveIntegerField(default=0)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    provider_id = models.CharField(max_length=200, blank=True)
    detail = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["campaign", "transition"], name="segments_send_once")]
        indexes = [models.Index(fields=["status", "not_before"], name="segments_send_due_idx")]

    def __str__(self) -> str:
        return f"{self.channel} to {self.user_id} ({self.status})"


class IdentityKey(models.Model):
    """A normalised identity key of a profile, so the audience builder's `segment` field can match records.

    Maintained by `segments.identity.sync_profile` whenever a profile is written (see that module for the rule).
    `kind` names the audience record column the value is compared with: `email_sha256` (UID2 hash of the
    normalised email), `phone_e164`, `maid`.
    """

    class Kind(models.TextChoices):
        EMAIL = "email_sha256", "email (UID2 hash)"
        PHONE = "phone_e164", "phone (E.164)"
        MAID = "maid", "device id / MAID"

    user_id = models.CharField(max_length=200)
    kind = models.CharField(max_length=12, choices=Kind.choices)
    value = models.CharField(max_length=200)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["kind", "value", "user_id"], name="segments_identity_unique"),
        ]
        indexes = [models.Index(fields=["user_id"], name="segments_identity_user_idx")]

    def __str__(self) -> str:
        return f"{self.user_id} {self.kind}"


class IdentityRevision(models.Model):
    """One row per organisation, bumped in the transaction that changes any identity key: with the ledger's last id
    it is the membership version the builder memoises its `segment` masks by (read under MVCC, so never ahead of
    the data it stands for)."""

    number = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"identity revision {self.number}"
