"""Property test: random records and random trees (every operator, nulls, NOT, nesting, custom fields, Bombora,
audience membership across imported audiences, event segments by the identity rule) give the same count in polars (the preview cache), SQL (the
materialisation compiler, on real PostgreSQL) and the plain-Python reference evaluator."""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

import pytest
from django.db import connection, transaction
from django_tenants.utils import schema_context
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audiences import cache
from audiences.catalogue import audience_refs, custom_fields, make_resolver
from audiences.logic import polars_engine, reference
from audiences.logic.sql_engine import RID_SHIFT, SqlContext, count_sql
from audiences.logic.tree import TreeError, parse
from audiences.normalize import normalize_email, normalize_maid, normalize_phone, uid2_hash
from audiences.preview import evaluate_tree
from tests.audiences.builder_helpers import WEEK, load_bombora, make_imported

pytestmark = pytest.mark.django_db

EMAILS = [None, None, "ann@x.com", "bob@x.com", "cy@y.org", "dee@y.org"]
DOMAINS = [None, "acme.com", "beta.io", "gamma.org"]
INDUSTRIES = [None, "Technology", "TECHNOLOGY", "technology ", "Retail", "Ärzte", "ÄRZTE", "Straße"]
COUNTRIES = [None, "US", "us", "GB", "DE"]
TITLES = [None, "CTO", "Chief Technology Officer", "Head of IT", "it manager"]
TOPICS = ["Cloud Security", "Payroll"]
CUSTOM_TYPES = {"Score": "integer", "Tier": "text", "VIP": "boolean", "Since": "date", "Ratio": "decimal"}
# Issue 13, the `segment` field: record identity keys, and profiles whose raw values normalise onto them (or not).
PHONES = [None, None, "+12025550101", "+12025550102", "+12025550103"]
MAIDS = [None, None, "6d92078a-8246-4ba4-ae5b-76104861e7dc", "0f2c2b1e-5a4b-4c3d-9e8f-112233445566"]
PROFILE_EMAILS = ["", "ANN@x.com", " bob@x.com", "cy@y.org", "zz@q.com", "not-an-email"]
PROFILE_PHONES = ["", "+12025550101", "(202) 555-0102", "+442071838750", "555"]
PROFILE_TOKENS = [[], ["fcm-token"], ["6D92078A-8246-4BA4-AE5B-76104861E7DC"], ["0f2c2b1e5a4b4c3d9e8f112233445566"]]
SEGMENTS = 3
TEXT_VALUES = ["technology", "TECH", "ärzte", "straße", "us", "gb", "cto", "it", "officer", "retail", "", "zz"]

record_strategy = st.fixed_dictionaries(
    {
        "email_normalized": st.sampled_from(EMAILS),
        "domain": st.sampled_from(DOMAINS),
        "industry": st.sampled_from(INDUSTRIES),
        "country": st.sampled_from(COUNTRIES),
        "job_title": st.sampled_from(TITLES),
        "phone_e164": st.sampled_from(PHONES),
        "maid": st.sampled_from(MAIDS),
        "revenue": st.one_of(st.none(), st.integers(0, 100)),
        "employee_count": st.one_of(st.none(), st.integers(-5, 50)),
        "custom": st.fixed_dictionaries(
            {},
            optional={
                "score": st.integers(-3, 10),
                "tier": st.sampled_from(["Gold", "gold", "Silver"]),
                "vip": st.booleans(),
                "since": st.dates(dt.date(2024, 1, 1), dt.date(2024, 1, 10)).map(dt.date.isoformat),
                "ratio": st.sampled_from([0.1, 0.5, 1.25, -2.0]),
            },
        ),
    }
)

STRING_FIELDS = ["industry", "country", "job_title", "domain", "email_normalized", "custom.tier"]
NUMBER_FIELDS = [
    "revenue",
    "employee_count",
    "custom.score",
    "custom.ratio",
    "bombora:Cloud Security",
    "bombora:payroll",
    # issue 18: Bombora over the last 4 and 12 weeks
    "bombora_max_4w:Cloud Security",
    "bombora_max_4w:payroll",
    "bombora_rise_12w:Cloud Security",
    "bombora_rise_12w:Payroll",
    # story 6.1: research volume this week (when the file carried it)
    "bombora_volume:Cloud Security",
    "bombora_volume:payroll",
]
BOOLEAN_FIELDS = ["custom.vip", "bombora_surge:Cloud Security", "bombora_surge:Payroll"]  # + Bombora's surge flag
# Older weeks (days before WEEK): two inside the 4-week window, one only inside 12 weeks, one outside both.
HISTORY_DAYS = [7, 21, 49, 84]
STRING_OPS = ["eq", "neq", "in", "not_in", "contains", "starts_with", "ends_with", "is_null", "is_not_null"]
NUMBER_OPS = ["eq", "neq", "in", "not_in", "gt", "gte", "lt", "lte", "between", "is_null", "is_not_null"]
numbers = st.one_of(st.integers(-5, 105), st.sampled_from([0.5, 1.25, 60.0, -2.0]))


profile_strategy = st.fixed_dictionaries(
    {
        "email": st.sampled_from(PROFILE_EMAILS),
        "phone": st.sampled_from(PROFILE_PHONES),
        "device_tokens": st.sampled_from(PROFILE_TOKENS),
        "segments": st.sets(st.integers(0, SEGMENTS - 1), max_size=SEGMENTS),
    }
)


@st.composite
def conditions(draw: Any, audience_ids: list[int], segment_ids: list[int] | None = None) -> dict[str, Any]:
    kind = draw(
        st.sampled_from(["string", "number", "date", "boolean", "audience", *(["segment"] if segment_ids else [])])
    )
    if kind == "segment":
        return {
            "field": "segment",
            "operator": draw(st.sampled_from(["in", "not_in"])),
            "value": draw(st.lists(st.sampled_from(segment_ids or []), min_size=1, max_size=3)),
        }
    if kind == "audience":
        op = draw(st.sampled_from(["in", "not_in"]))
        return {
            "field": "audience",
            "operator": op,
            "value": draw(st.lists(st.sampled_from(audience_ids), min_size=1, max_size=3)),
        }
    if kind == "boolean":
        op = draw(st.sampled_from(["eq", "neq", "is_null", "is_not_null"]))
        return {"field": draw(st.sampled_from(BOOLEAN_FIELDS)), "operator": op, "value": draw(st.booleans())}
    if kind == "date":
        op = draw(st.sampled_from(NUMBER_OPS))
        dates = st.dates(dt.date(2024, 1, 1), dt.date(2024, 1, 10)).map(dt.date.isoformat)
        value: Any = draw(dates)
        if op in ("in", "not_in"):
            value = draw(st.lists(dates, min_size=1, max_size=3))
        elif op == "between":
            value = sorted([draw(dates), draw(dates)])
        return {"field": "custom.since", "operator": op, "value": value}
    if kind == "string":
        op = draw(st.sampled_from(STRING_OPS))
        value = draw(st.sampled_from(TEXT_VALUES + [v for v in INDUSTRIES + COUNTRIES + EMAILS + DOMAINS if v]))
        if op in ("in", "not_in"):
            value = draw(
                st.lists(st.sampled_from([*TEXT_VALUES, "Technology", "US", "acme.com"]), min_size=1, max_size=3)
            )
        return {"field": draw(st.sampled_from(STRING_FIELDS)), "operator": op, "value": value}
    op = draw(st.sampled_from(NUMBER_OPS))
    value = draw(numbers)
    if op in ("in", "not_in"):
        value = draw(st.lists(numbers, min_size=1, max_size=3))
    elif op == "between":
        value = sorted([draw(numbers), draw(numbers)])
    return {"field": draw(st.sampled_from(NUMBER_FIELDS)), "operator": op, "value": value}


def trees(audience_ids: list[int], segment_ids: list[int] | None = None) -> st.SearchStrategy[dict[str, Any]]:
    return st.recursive(
        conditions(audience_ids, segment_ids),
        lambda children: st.one_of(
            st.builds(
                lambda op, c: {"op": op, "children": c},
                st.sampled_from(["and", "or"]),
                st.lists(children, min_size=1, max_size=4),
            ),
            st.builds(lambda c: {"op": "not", "children": [c]}, children),
        ),
        max_leaves=10,
    )


def _measures(
    weekly: dict[dt.date, dict[tuple[str, int], int]], current: dt.date
) -> dict[tuple[str, int], dict[str, Any]]:
    """The multi-week measures in plain Python: max over the weeks in the last 4; current minus earliest in 12."""
    result: dict[tuple[str, int], dict[str, int]] = {}
    keys = {key for scores in weekly.values() for key in scores}
    for key in keys:
        in4 = [s[key] for w, s in weekly.items() if key in s and (current - w).days <= 21]
        in12 = sorted((w, s[key]) for w, s in weekly.items() if key in s and (current - w).days <= 77)
        values: dict[str, Any] = {}
        if in4:
            values["max_4w"] = max(in4)
        if len(in12) > 1 and in12[-1][0] == current:
            values["rise_12w"] = in12[-1][1] - in12[0][1]
        result[key] = values
    return result


def _people(
    batches: list[tuple[int, int, list[dict[str, Any]]]],
    bombora: dict[tuple[str, int], int],
    measures: dict[tuple[str, int], dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """The universe rule in plain Python: one person per email (latest version, first row), else per record."""
    flat = [(vid, row, aid, rec) for aid, vid, recs in batches for row, rec in enumerate(recs)]
    people: dict[Any, tuple[int, int, int, dict[str, Any]]] = {}
    memberships: dict[Any, set[int]] = {}
    for vid, row, aid, rec in flat:
        key = rec["email_normalized"] or ("rid", vid, row)
        memberships.setdefault(key, set()).add(aid)
        best = people.get(key)
        if best is None or (vid, -row) > (best[0], -best[1]):
            people[key] = (vid, row, aid, rec)
    result = []
    for key, (vid, row, _aid, rec) in people.items():
        person: dict[str, Any] = {k: v for k, v in rec.items() if k != "custom"}
        for name, value in rec["custom"].items():
            person[f"custom.{name}"] = dt.date.fromisoformat(value) if name == "since" else value
        for (domain, topic_id), score in bombora.items():
            if domain == rec["domain"]:
                person[f"bombora:{topic_id}"] = score
        for (domain, topic_id), values in (measures or {}).items():
            if domain == rec["domain"]:
                for measure, value in values.items():
                    person[f"bombora_{measure}:{topic_id}"] = value
        person["__audiences"] = memberships[key]
        person["email_sha256"] = uid2_hash(rec["email_normalized"]) if rec["email_normalized"] else None
        person["__rid"] = (vid << RID_SHIFT) | row
        result.append(person)
    return result


class _Rollback(Exception):
    pass


@settings(
    max_examples=int(os.environ.get("P360_PROPERTY_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_polars_sql_and_reference_counts_agree(acme: Any, data: Any) -> None:
    batches_raw = data.draw(st.lists(st.lists(record_strategy, min_size=0, max_size=12), min_size=1, max_size=3))
    for recs in batches_raw:  # the import derives the hash from the normalised email
        for rec in recs:
            rec["email_sha256"] = uid2_hash(rec["email_normalized"]) if rec["email_normalized"] else None
    profiles = data.draw(st.lists(profile_strategy, max_size=6))
    scores = data.draw(
        st.dictionaries(
            st.tuples(st.sampled_from(DOMAINS[1:]), st.sampled_from(TOPICS)), st.integers(0, 100), max_size=6
        )
    )
    # research volume and surge flag of this week's rows (None: the file did not carry them)
    signals = {
        key: data.draw(st.tuples(st.one_of(st.none(), st.integers(0, 5000)), st.one_of(st.none(), st.booleans())))
        for key in scores
    }
    history = {
        days: data.draw(
            st.dictionaries(
                st.tuples(st.sampled_from(DOMAINS[1:]), st.sampled_from(TOPICS)), st.integers(0, 100), max_size=4
            )
        )
        for days in HISTORY_DAYS
    }
    share = pytest.MonkeyPatch()
    try:
        with schema_context("org_acme"), transaction.atomic():
            cache.invalidate()
            batches = []
            segment_ids = _segments(profiles)
            for index, recs in enumerate(batches_raw):
                audience = make_imported(f"prop-{index}", recs, custom_types=CUSTOM_TYPES)
                batches.append((audience.pk, audience.current_version_id, recs))
            loaded = bool(scores) or any(history.values())
            if loaded:
                load_bombora([(d, t, s, *signals[(d, t)]) for (d, t), s in scores.items()])
                for days, older in history.items():
                    load_bombora([(d, t, s) for (d, t), s in older.items()], week=WEEK - dt.timedelta(days=days))
            from bombora.store import topic_by_name

            def ids(found: dict[tuple[str, str], int]) -> dict[tuple[str, int], int]:
                return {(d, topic_by_name(t).pk): s for (d, t), s in found.items()}  # type: ignore[union-attr]

            bombora = ids(scores)
            weekly = {WEEK: bombora, **{WEEK - dt.timedelta(days=d): ids(h) for d, h in history.items()}}
            measures = _measures(weekly, WEEK) if loaded else None
            for (d, t), (volume, surging) in signals.items():  # this week's signals, where the file had them
                found = (measures or {}).setdefault((d, topic_by_name(t).pk), {})  # type: ignore[union-attr]
                found.update({k: v for k, v in (("volume", volume), ("surge", surging)) if v is not None})
            people = _people(batches, bombora, measures)
            _segment_members(people, profiles, segment_ids)
            refs = audience_refs()
            audience_ids = [a for a, _, _ in batches]
            resolve = make_resolver(custom_fields())
            entry = cache.build()
            assert entry.height == len(people)
            # issue 17, session 10: the row indexes (per-category masks, sorted integer indexes), read by every leaf
            # they can answer (the builder's background thread builds them; here, on some examples)
            indexed = data.draw(st.booleans())
            if indexed:
                entry.warm_indexes()
                assert "revenue" in entry.indexes or all(p.get("revenue") is None for p in people)
            share.setattr(polars_engine, "SORTED_MAX_SHARE", 1.0 if indexed else polars_engine.SORTED_MAX_SHARE)
            ctx = SqlContext(week=WEEK if loaded else None, audiences=refs, lower=_lower())
            for _ in range(4):
                raw = data.draw(trees(audience_ids, segment_ids))
                try:
                    node = parse(raw, resolve, audience_ids=set(refs))
                except TreeError:
                    continue  # e.g. between [1, 0.5] after sorting mixed types; validation is tested elsewhere
                expected = reference.count(node, people)
                polars_count = evaluate_tree(entry, node).count
                sql, params = count_sql(node, ctx)
                with connection.cursor() as cursor:
                    cursor.execute(sql, params)
                    sql_count = cursor.fetchone()[0]
                assert (polars_count, sql_count) == (expected, expected), raw
            raise _Rollback
    except _Rollback:
        pass
    finally:
        share.undo()
        cache.invalidate()


def _segments(profiles: list[dict[str, Any]]) -> list[int]:
    """SEGMENTS event segments with the drawn users as current members, profiles written through the service path
    that keeps their identity keys (segments.identity.sync_profile)."""
    from django.utils import timezone

    from segments.identity import sync_profile
    from segments.models import Membership, Segment, UserProfile

    segments = [
        Segment.objects.create(name=f"prop segment {i}", kind="independent", event_type="orders", attribute="count",
                               operator="gt", value=0, window_minutes=60)
        for i in range(SEGMENTS)
    ]  # fmt: skip
    for index, raw in enumerate(profiles):
        user = f"prop-user-{index}"
        profile = UserProfile.objects.create(
            user_id=user, email=raw["email"], phone=raw["phone"], device_tokens=raw["device_tokens"]
        )
        sync_profile(profile)
        for i in sorted(raw["segments"]):
            Membership.objects.create(segment=segments[i], user_id=user, entered_at=timezone.now(), rule_version=1)
    return [s.pk for s in segments]


def _segment_members(people: list[dict[str, Any]], profiles: list[dict[str, Any]], segment_ids: list[int]) -> None:
    """The identity rule in plain Python: a person is in S when a member of S shares a normalised key with them."""
    for person in people:
        person["__member_of"] = {"segment": set()}
    for raw in profiles:
        email = normalize_email(raw["email"]) if raw["email"] else None
        phone = normalize_phone(raw["phone"]) if raw["phone"] else None
        keys = {("email_sha256", uid2_hash(email)) if email else None, ("phone_e164", phone) if phone else None}
        keys |= {("maid", m) for t in raw["device_tokens"] if (m := normalize_maid(t))}
        keys.discard(None)
        for person in people:
            if any(person.get(column) == value for column, value in keys if value):  # type: ignore[misc]
                person["__member_of"]["segment"] |= {segment_ids[i] for i in raw["segments"]}


def _lower() -> str:
    from audiences.logic.sql_engine import lower_template

    return lower_template()
