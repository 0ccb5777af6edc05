"""Who an event-segment user is in the audience builder's universe (issue 13: the builder field `segment`).

**The rule.** An audience record belongs to event segment S when some user currently in S (a row of
`segments_membership`) has a profile with one of these keys equal to the record's:

| profile                                                     | normalised with (audiences/normalize.py) | record column  |
|-------------------------------------------------------------|------------------------------------------|----------------|
| `email`                                                     | `normalize_email`, then `uid2_hash`      | `email_sha256` |
| `phone`                                                     | `normalize_phone` (default country US)   | `phone_e164`   |
| `device_tokens[*]`, `attributes.maid/idfa/gaid/device_id`   | `normalize_maid` (tokens that are not a MAID are skipped) | `maid` |

The builder counts people, one representative record per person (audiences/logic/sql_engine.py): the person is in
S when their representative record matches. The same normalisation functions as the audience import are used, so
`Ann@Example.com ` on a profile matches `ann@example.com` in a file, and `(202) 555-0101` matches `+12025550101`.
The event's own `device_id` is not a profile key (a profile's device ids come from the profile API).

**Keeping it fast.** The keys live in `segments_identitykey` (unique on kind, value, user), written by
`sync_profile` in the transaction that writes the profile; `IdentityRevision` is bumped when a profile's keys
change. `version()` (the ledger's last id + that revision) is the membership version the builder memoises its
masks by; `keys_sql` gives the same keys as SQL for saved audiences.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.db import connection, transaction

from audiences.normalize import normalize_email, normalize_maid, normalize_phone, uid2_hash
from segments.models import IdentityKey, Membership, Segment, UserProfile

MAID_ATTRIBUTES = ("maid", "idfa", "gaid", "device_id", "deviceId")
COLUMNS = tuple(IdentityKey.Kind.values)  # ("email_sha256", "phone_e164", "maid"): audience record columns


def profile_keys(
    *,
    email: str | None,
    phone: str | None,
    device_tokens: Iterable[Any] = (),
    attributes: Mapping[str, Any] | None = None,
) -> set[tuple[str, str]]:
    """The normalised (kind, value) keys of one profile."""
    keys: set[tuple[str, str]] = set()
    normalized = normalize_email(email) if email else None
    if normalized is not None:
        keys.add((IdentityKey.Kind.EMAIL.value, uid2_hash(normalized)))
    e164 = normalize_phone(phone) if phone else None
    if e164 is not None:
        keys.add((IdentityKey.Kind.PHONE.value, e164))
    candidates = [t for t in device_tokens or () if isinstance(t, str)]
    candidates += [v for k in MAID_ATTRIBUTES if isinstance(v := (attributes or {}).get(k), str)]
    for candidate in candidates:
        maid = normalize_maid(candidate)
        if maid is not None:
            keys.add((IdentityKey.Kind.MAID.value, maid))
    return keys


def keys_of(profile: UserProfile) -> set[tuple[str, str]]:
    return profile_keys(
        email=profile.email,
        phone=profile.phone,
        device_tokens=profile.device_tokens if isinstance(profile.device_tokens, list) else (),
        attributes=profile.attributes if isinstance(profile.attributes, dict) else {},
    )


def bump_revision() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO segments_identityrevision (id, number) VALUES (1, 1) "
            "ON CONFLICT (id) DO UPDATE SET number = segments_identityrevision.number + 1"
        )


@transaction.atomic
def sync_profile(profile: UserProfile) -> bool:
    """Make the profile's stored keys equal its current ones; True when they changed. Call after saving it."""
    wanted = keys_of(profile)
    stored = set(IdentityKey.objects.filter(user_id=profile.user_id).values_list("kind", "value"))
    if wanted == stored:
        return False
    gone = stored - wanted
    for kind, value in gone:
        IdentityKey.objects.filter(user_id=profile.user_id, kind=kind, value=value).delete()
    IdentityKey.objects.bulk_create(
        [IdentityKey(user_id=profile.user_id, kind=k, value=v) for k, v in sorted(wanted - stored)],
        ignore_conflicts=True,
    )
    bump_revision()
    _mark_followed_segments(profile.user_id)
    return True


def _mark_followed_segments(user_id: str) -> None:
    """A member's keys changed: the built audiences following their segments match other records now."""
    from segments.audience_refresh import followed_segments, segments_changed

    followed = followed_segments()
    if followed:
        rows = Membership.objects.filter(user_id=user_id, segment_id__in=followed).values_list("segment_id", flat=True)
        segments_changed(set(rows))


@transaction.atomic
def sync_all() -> int:
    """Rebuild every profile's keys (a backfill, e.g. after the normalisation rules change); returns key rows."""
    IdentityKey.objects.all().delete()
    rows: list[IdentityKey] = []
    for profile in UserProfile.objects.exclude(email="", phone="", device_tokens=[], attributes={}).iterator():
        rows.extend(IdentityKey(user_id=profile.user_id, kind=k, value=v) for k, v in sorted(keys_of(profile)))
    IdentityKey.objects.bulk_create(rows, batch_size=5000, ignore_conflicts=True)
    bump_revision()
    return len(rows)


# --- what the audience builder asks (registered in segments/registrations.py) -------------------------------------


def segment_ids() -> list[int]:
    return list(Segment.objects.values_list("id", flat=True))


def segment_choices() -> list[dict[str, Any]]:
    """The org's segments for the builder's field picker: id, name, current members, active."""
    from django.db.models import Count

    rows = Segment.objects.annotate(members_count=Count("members")).order_by("name")
    return [{"id": s.pk, "name": s.name, "count": s.members_count, "active": s.active, "kind": s.kind} for s in rows]


def version() -> str:
    """Changes whenever a membership or an identity key changes (the ledger is append-only; MVCC-read, cheap)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT (SELECT coalesce(max(id), 0) FROM segments_transition), "
            "(SELECT coalesce(max(number), 0) FROM segments_identityrevision)"
        )
        ledger, revision = cursor.fetchone()
    return f"{ledger}:{revision}"


def member_keys(ids: tuple[int, ...]) -> dict[str, set[str]]:
    """{record column: keys} of the users currently in any of the segments."""
    keys: dict[str, set[str]] = {column: set() for column in COLUMNS}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT k.kind, k.value FROM segments_membership m "
            "JOIN segments_identitykey k ON k.user_id = m.user_id WHERE m.segment_id = ANY(%s)",
            [[int(i) for i in ids]],
        )
        for kind, value in cursor.fetchall():
            keys[kind].add(value)
    return keys


def member_keys_sql(ids: tuple[int, ...]) -> dict[str, str]:
    """The same keys as one-column SQL subqueries (ids are integers, interpolated as such)."""
    id_list = ", ".join(str(int(i)) for i in ids) or "NULL"
    return {
        column: (
            "SELECT k.value FROM segments_identitykey k JOIN segments_membership m ON m.user_id = k.user_id "
            f"WHERE k.kind = '{column}' AND m.segment_id IN ({id_list})"
        )
        for column in COLUMNS
    }
