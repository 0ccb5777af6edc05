"""The builder's field catalogue for one organisation: what a tree may name, with types and operators.

Record fields come from `audiences.fields.FIELDS`; custom fields from the org's imports (their inferred types,
merged across imports); Bombora topics are resolved by name (`bombora:<topic name>`) but never all listed;
`audience` is membership in any of the org's audiences. Runs in the org's schema (search path).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from audiences import fields as record_fields
from audiences.logic.sql_engine import AudienceRef
from audiences.logic.tree import (
    AUDIENCE,
    BOMBORA,
    BOOLEAN,
    CATEGORY,
    DATE,
    IDENTIFIER,
    MEMBERSHIP,
    NUMBER,
    OPERATORS_BY_TYPE,
    TEXT,
    FieldRef,
    Resolver,
)
from bombora.store import topic_by_name

_KIND_TO_TYPE = {
    record_fields.TEXT: TEXT,
    record_fields.IDENTIFIER: IDENTIFIER,
    record_fields.NUMBER: NUMBER,
    record_fields.CATEGORY: CATEGORY,
    record_fields.HASH: IDENTIFIER,
}
_CUSTOM_TO_TYPE = {"integer": NUMBER, "decimal": NUMBER, "boolean": BOOLEAN, "date": DATE, "text": TEXT}
BOMBORA_PREFIX = "bombora:"
# Issue 18: Bombora over several weeks. prefix -> measure (see FieldRef.measure).
BOMBORA_MEASURES = {
    "bombora_max_4w:": "max_4w",
    "bombora_rise_12w:": "rise_12w",
    "bombora_volume:": "volume",  # story 6.1: this week's research volume (a count), when the file carried it
    "bombora_surge:": "surge",  # story 6.1: Bombora's own surge indicator this week (true/false), likewise
}
MEASURE_TYPES = {"volume": NUMBER, "surge": BOOLEAN}  # the others are scores (type bombora)
CUSTOM_PREFIX = "custom."


@dataclass(frozen=True)
class RecordField:
    name: str
    label: str
    type: str
    column: str
    group: str  # Record | Custom
    custom_type: str | None = None
    description: str = ""

    def ref(self) -> FieldRef:
        return FieldRef(name=self.name, type=self.type, column=self.column, custom_type=self.custom_type)


RECORD_FIELDS: tuple[RecordField, ...] = tuple(
    RecordField(
        name=spec.name,
        label=spec.label,
        type=_KIND_TO_TYPE[spec.kind],
        column=spec.name,
        group="Record",
        description=spec.description,
    )
    for spec in record_fields.FIELDS
)
RECORD_FIELDS_BY_NAME = {f.name: f for f in RECORD_FIELDS}


def merge_custom_types(types: list[str]) -> str:
    """One type for a custom key typed by several imports: equal types stay, numbers widen, else text."""
    unique = set(types)
    if len(unique) == 1:
        return types[0]
    if unique <= {"integer", "decimal"}:
        return "decimal"
    return "text"


def custom_fields() -> dict[str, str]:
    """{custom key: custom type} over the imports that fed the org's current imported audiences."""
    from audiences.models import Audience, AudienceImport, AudienceKind, ImportStatus

    audience_ids = Audience.objects.filter(kind=AudienceKind.IMPORTED, current_version__isnull=False).values_list(
        "id", flat=True
    )
    seen: dict[str, list[str]] = {}
    imports = AudienceImport.objects.filter(status=ImportStatus.SUCCEEDED, audience_id__in=list(audience_ids))
    for custom_types in imports.values_list("custom_types", flat=True):
        names = record_fields.custom_field_names(custom_types or {})
        for header, type_name in (custom_types or {}).items():
            seen.setdefault(names[header], []).append(type_name)
    return {key: merge_custom_types(types) for key, types in sorted(seen.items())}


def custom_record_fields(custom: Mapping[str, str]) -> list[RecordField]:
    return [
        RecordField(
            name=f"{CUSTOM_PREFIX}{key}",
            label=key.replace("_", " ").capitalize(),
            type=_CUSTOM_TO_TYPE.get(type_name, TEXT),
            column=f"{CUSTOM_PREFIX}{key}",
            group="Custom",
            custom_type=type_name,
        )
        for key, type_name in custom.items()
    ]


def audience_refs() -> dict[int, AudienceRef]:
    from audiences.models import Audience

    rows = Audience.objects.values_list("id", "kind", "current_version_id")
    return {pk: AudienceRef(id=pk, kind=kind, version_id=vid) for pk, kind, vid in rows}


def make_resolver(custom: Mapping[str, str]) -> Resolver:
    """FIELD name -> FieldRef for this org (Bombora topics looked up by name, once per name)."""

    fields = {f.name: f.ref() for f in RECORD_FIELDS}
    fields.update({f.name: f.ref() for f in custom_record_fields(custom)})
    fields["audience"] = FieldRef(name="audience", type=AUDIENCE, column="audience")
    topics: dict[str, FieldRef | None] = {}

    def resolve(name: str) -> FieldRef | None:
        if name in fields:
            return fields[name]
        membership = membership_ref(name)
        if membership is not None:
            fields[name] = membership  # the org's ids are read once per resolver
            return membership
        lowered = name.lower()
        prefix = next((p for p in (BOMBORA_PREFIX, *BOMBORA_MEASURES) if lowered.startswith(p)), None)
        if prefix is not None:
            topic_name = name[len(prefix) :].strip()
            if not topic_name:
                return None
            if topic_name.lower() not in topics:
                topic = topic_by_name(topic_name)
                topics[topic_name.lower()] = (
                    None
                    if topic is None
                    else FieldRef(name=name, type=BOMBORA, column=f"bombora:{topic.pk}", topic_id=topic.pk)
                )
            ref = topics[topic_name.lower()]
            if ref is None:
                return None
            measure = BOMBORA_MEASURES.get(prefix)
            if measure is None:
                return FieldRef(name=name, type=BOMBORA, column=ref.column, topic_id=ref.topic_id)
            return FieldRef(
                name=name,
                type=MEASURE_TYPES.get(measure, BOMBORA),
                column=f"bombora_{measure}:{ref.topic_id}",
                topic_id=ref.topic_id,
                measure=measure,
            )
        return None

    return resolve


def membership_ref(name: str) -> FieldRef | None:
    """A membership field a higher app registered (issue 13: `segment`), with the ids this org may name."""
    from p360.core.registry import builder_field

    provider = builder_field(name)
    if provider is None:
        return None
    return FieldRef(name=name, type=MEMBERSHIP, column=name, choices=frozenset(int(i) for i in provider.ids()))


def membership_entries() -> list[dict[str, Any]]:
    """The catalogue entries of the registered membership fields, the org's choices listed like audiences'."""
    from p360.core.registry import builder_fields

    return [
        {
            "name": provider.name,
            "label": provider.label,
            "type": MEMBERSHIP,
            "operators": operators_for(MEMBERSHIP),
            "examples": [],
            "values": provider.choices(),
            "group": provider.group,
            "description": provider.description,
        }
        for provider in builder_fields()
    ]


def operators_for(type_name: str) -> list[str]:
    return list(OPERATORS_BY_TYPE[type_name])


def bombora_entry(week: Any, topic_count: int) -> dict[str, Any]:
    return {
        "name": "bombora:<topic>",
        "label": "Bombora intent score",
        "type": BOMBORA,
        "operators": operators_for(BOMBORA),
        "examples": [60, 80],
        "values": [],
        "min": 0,
        "max": 100,
        "group": "Bombora",
        "pattern": "bombora:<topic name>",
        "search": "fields/bombora?q=<text>&limit=20",
        "week": week.isoformat() if week else None,
        "topics": topic_count,
        "description": "This week's composite score (0-100) of the record's domain on a topic; 60+ is surging.",
    }


def bombora_window_entries(week: Any) -> list[dict[str, Any]]:
    """Issue 18: the Bombora fields over several weeks (patterns, like `bombora:<topic>`)."""
    return [
        {
            **bombora_entry(week, 0),
            "name": "bombora_max_4w:<topic>",
            "label": "Bombora: highest score in the last 4 weeks",
            "pattern": "bombora_max_4w:<topic name>",
            "examples": [60],
            "description": "The highest weekly composite score of the record's domain on a topic over the last 4 "
            "loaded weeks; `gte 60` = surging in any of the last 4 weeks.",
        },
        {
            **bombora_entry(week, 0),
            "name": "bombora_rise_12w:<topic>",
            "label": "Bombora: score rise over 12 weeks",
            "pattern": "bombora_rise_12w:<topic name>",
            "min": -100,
            "examples": [10, 20],
            "description": "This week's score minus the score of the earliest of the last 12 weeks with one; "
            "`gte N` = the score rose by at least N over 12 weeks (empty with fewer than two weeks of scores).",
        },
        {
            **bombora_entry(week, 0),
            "name": "bombora_volume:<topic>",
            "label": "Bombora: research volume this week",
            "type": NUMBER,
            "operators": operators_for(NUMBER),
            "pattern": "bombora_volume:<topic name>",
            "min": 0,
            "max": None,
            "examples": [100, 1000],
            "description": "How much research the record's domain did on a topic this week (Bombora's research "
            "volume); empty when the week's file did not carry it.",
        },
        {
            **bombora_entry(week, 0),
            "name": "bombora_surge:<topic>",
            "label": "Bombora: surge indicator this week",
            "type": BOOLEAN,
            "operators": operators_for(BOOLEAN),
            "pattern": "bombora_surge:<topic name>",
            "min": None,
            "max": None,
            "examples": [True],
            "description": "Bombora's own surge flag for the record's domain on a topic this week (the file's Surge "
            "column); empty when the file did not carry it. `bombora:<topic> gte 60` is surging by score.",
        },
    ]
