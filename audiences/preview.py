"""Reads for the builder: the field catalogue, Bombora topic search, previews, overlap (re-exported by selectors)."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import numpy as np
import polars as pl

from audiences import cache
from audiences.catalogue import (
    RECORD_FIELDS,
    audience_refs,
    bombora_entry,
    bombora_window_entries,
    custom_record_fields,
    make_resolver,
    membership_entries,
    operators_for,
)
from audiences.logic import bits
from audiences.logic.membership import column_name, entry_mask
from audiences.logic.polars_engine import Evaluation, audience_column, evaluate
from audiences.logic.sql_engine import AudienceRef
from audiences.logic.tree import AUDIENCE, BOMBORA, CATEGORY, MEMBERSHIP, NUMBER, Node, TreeError, conditions, parse
from bombora.models import BomboraTopic
from bombora.store import SURGE_THRESHOLD, current_week, search_topics

MAX_SAMPLE = 100
SAMPLE_EXCLUDE = frozenset({"__rid", "version_id"})


def parse_tree(tree: Any, *, custom: dict[str, str] | None = None, refs: dict[int, AudienceRef] | None = None) -> Node:
    """Validate a tree against the org's catalogue (raises TreeError with node paths)."""
    from audiences.catalogue import custom_fields

    refs = audience_refs() if refs is None else refs
    return parse(tree, make_resolver(custom_fields() if custom is None else custom), audience_ids=set(refs))


def _frame_for(entry: cache.Entry, node: Node, refs: dict[int, AudienceRef]) -> pl.DataFrame:
    """The entry's columns the tree reads, plus its Bombora topic and audience membership columns."""
    needed: list[str] = []
    extra: list[pl.Series] = []
    # columns only tested for nulls: a deferred column still being read (a first build) serves its presence
    null_tests = {c.field.column for c in conditions(node) if c.operator in ("is_null", "is_not_null")}
    null_tests -= {c.field.column for c in conditions(node) if c.operator not in ("is_null", "is_not_null")}
    for cond in conditions(node):
        ref = cond.field
        if ref.topic_id is not None and (ref.type == BOMBORA or ref.measure is not None):  # issue 18: volume, surge
            if ref.column not in needed and all(s.name != ref.column for s in extra):
                column = (
                    entry.topic_column(ref.topic_id)
                    if ref.measure is None
                    else entry.measure_column(ref.topic_id, ref.measure)
                )
                extra.append(column.alias(ref.column))
        elif ref.type == AUDIENCE:
            for audience_id in cond.value:
                name = audience_column(audience_id)
                if any(s.name == name for s in extra):
                    continue
                extra.append(_membership(entry, refs.get(audience_id)).alias(name))
        elif ref.type == MEMBERSHIP:  # issue 13: resolved now (membership changes constantly), memoised per version
            name = column_name(ref.column, cond.value)
            if all(s.name != name for s in extra):
                extra.append(entry_mask(entry, ref.column, tuple(cond.value)).alias(name))
        elif ref.column not in needed:
            needed.append(ref.column)
    # Built from the series (no select over the entry's frame: its lazy plan would build every Enum dtype)
    columns = [entry.column(name, presence=name in null_tests) for name in needed] + extra
    return pl.DataFrame(columns or [entry.column("__rid")])


def _membership(entry: cache.Entry, ref: AudienceRef | None) -> pl.Series:
    if ref is not None and ref.kind == "imported" and ref.id in entry.imported_masks:
        return entry.imported_masks[ref.id]
    if ref is not None and ref.kind == "built":
        from audiences.models import Audience

        stamp = Audience.objects.filter(pk=ref.id).values_list("materialized_at", flat=True).first()
        return entry.built_mask(ref.id, stamp.isoformat() if stamp else "")
    return pl.repeat(False, entry.height, dtype=pl.Boolean, eager=True)


def evaluate_tree(entry: cache.Entry, node: Node, *, per_node: bool = True, memo: bool = True) -> Evaluation:
    """The tree over the entry; leaves seen before in this data generation come from the entry's leaf memo."""
    refs = audience_refs() if any(c.field.type == AUDIENCE for c in conditions(node)) else {}
    return evaluate(
        _frame_for(entry, node, refs),
        node,
        entry.strings,
        per_node=per_node,
        memo=entry.leaf_memo if memo else None,
        indexes=entry.indexes,
    )


def _has_hash_bits(entry: cache.Entry) -> np.ndarray | None:
    """The people with a UID2 hash as packed bits, kept with the entry (the UID2-ready count is then a popcount)."""
    if entry.has_hash is None:
        return None
    found = entry.stats.get("has_hash_bits")
    if found is None:
        found = entry.stats["has_hash_bits"] = bits.from_series(entry.has_hash)
    return found  # type: ignore[no-any-return]


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def sample_records(entry: cache.Entry, positions: list[int], *, wait: bool = True) -> list[dict[str, Any]]:
    """The records at `positions`. The frame is assembled from the entry's series and gathered natively (a select
    over the entry's frame is a lazy plan that resolves every column's dtype; an Enum of millions of categories is
    slow to build, and polars' Series methods are lazy plans of their own, one per call).

    Without `wait`, the columns a first build is still reading (entry.deferred: emails, hashes) are left out."""
    if not positions:
        return []
    frame = entry.frame if wait else entry.ready_frame
    columns = [frame.get_column(name) for name in frame.columns if name not in SAMPLE_EXCLUDE]
    rows = pl.DataFrame(columns)[positions].to_dicts()
    result = []
    for row in rows:
        record: dict[str, Any] = {}
        custom: dict[str, Any] = {}
        for key, value in row.items():
            if key.startswith("custom."):
                if value is not None:
                    custom[key.removeprefix("custom.")] = _jsonable(value)
            else:
                record[key] = _jsonable(value)
        record["custom"] = custom
        result.append(record)
    return result


def _mentions_audience(tree: Any, depth: int = 0) -> bool:
    """Whether the raw tree has an `audience` leaf (at any depth the validator would accept, or deeper)."""
    if isinstance(tree, dict):
        if tree.get("field") == "audience":
            return True
        children = tree.get("children")
        return isinstance(children, list) and depth < 64 and any(_mentions_audience(c, depth + 1) for c in children)
    return False


def audience_preview(*, tree: Any, sample: int = 10) -> dict[str, Any]:
    """Exact count, per-node counts, a sample and the UID2-ready share of a tree (raises TreeError)."""
    started = time.perf_counter()
    entry, stale = cache.get()
    # The audience list is read only for a tree that names audiences (one database round trip less per edit).
    refs = audience_refs() if _mentions_audience(tree) else {}
    node = parse(tree, entry.resolver(), audience_ids=set(refs))
    frame = _frame_for(entry, node, refs)
    # An edit changes one or two leaves: the others come from the memo of this data generation.
    result = evaluate(frame, node, entry.strings, memo=entry.leaf_memo, indexes=entry.indexes)
    hashed = _has_hash_bits(entry)
    uid2 = bits.count(result.bits & hashed) if hashed is not None else 0
    # A first build's emails and hashes may still be read (cache.build): the sample goes without them then.
    pending = sorted(entry.deferred)
    records = sample_records(entry, bits.positions(result.bits, max(0, min(int(sample), MAX_SAMPLE))), wait=False)
    if pending:
        for record in records:
            record.update(dict.fromkeys(pending))
    return {
        "count": result.count,
        "sample": records,
        "elapsed_ms": round((time.perf_counter() - started) * 1000, 3),
        "universe": entry.height,
        "uid2_ready": uid2,
        "uid2_ready_share": round(uid2 / result.count, 6) if result.count else 0.0,
        "nodes": result.nodes,
        "stale": stale,
        "generation": entry.stamp.generation,
        "bombora_week": entry.week.isoformat() if entry.week else None,
        "sample_pending": pending,
    }


# --- the field catalogue -------------------------------------------------------------------------------------
def _field_stats(entry: cache.Entry) -> dict[str, dict[str, Any]]:
    """Known values, examples, min and max per column; computed once per cache entry and column. Columns a first
    build is still reading (emails, hashes: cache.build) are added by a later call: the page does not wait for them."""
    with entry.lock:
        stats: dict[str, dict[str, Any]] = dict(entry.stats.get("fields", {}))
    frame = entry.ready_frame
    if all(name in stats or name in SAMPLE_EXCLUDE for name in frame.columns):
        return stats
    for name in frame.columns:
        if name in SAMPLE_EXCLUDE or name in stats:
            continue
        series = frame.get_column(name)
        info: dict[str, Any] = {"values": [], "examples": []}
        string = entry.strings.get(name)  # (an Enum's dtype is slow to read: see StringColumn.categories)
        if string is not None and string.lowered_categories is not None:
            counts = series.drop_nulls().value_counts(sort=True).head(200)
            values = [str(v) for v in counts.get_column(name).to_list()]
            info["values"], info["examples"] = values, values[:5]
        elif string is not None:
            info["examples"] = [str(v) for v in series.drop_nulls().head(5).to_list()]
        elif series.dtype == pl.Boolean:
            info["values"] = [True, False]
        elif series.dtype.is_numeric() or series.dtype == pl.Date:
            present = series.drop_nulls()
            if present.len():
                info["min"], info["max"] = _jsonable(present.min()), _jsonable(present.max())
                info["examples"] = [_jsonable(v) for v in present.head(3).to_list()]
        stats[name] = info
    with entry.lock:
        entry.stats["fields"] = stats
    return stats


def field_catalogue() -> dict[str, Any]:
    """GET .../fields: record, custom, Bombora (pattern only) and audience fields."""

    entry, stale = cache.get()
    stats = _field_stats(entry)
    fields: list[dict[str, Any]] = []
    for spec in [*RECORD_FIELDS, *custom_record_fields(entry.custom)]:
        info = stats.get(spec.column, {})
        item: dict[str, Any] = {
            "name": spec.name,
            "label": spec.label,
            "type": spec.type,
            "operators": operators_for(spec.type),
            "examples": info.get("examples", []),
            "values": info.get("values", []) if spec.type in (CATEGORY, "boolean") else [],
            "group": spec.group,
            "description": spec.description,
        }
        if spec.type in (NUMBER, "date"):
            item["min"], item["max"] = info.get("min"), info.get("max")
        fields.append(item)
    topics = BomboraTopic.objects.count()
    fields.append(bombora_entry(entry.week, topics))
    fields.extend(bombora_window_entries(entry.week))
    fields.append(
        {
            "name": "audience",
            "label": "Audience membership",
            "type": AUDIENCE,
            "operators": operators_for(AUDIENCE),
            "examples": [],
            "values": audience_choices(),
            "group": "Audience",
            "description": "Membership in an imported or saved audience (a person in any of the listed ones).",
        }
    )
    fields.extend(membership_entries())  # issue 13: event segments (registered by the segments app)
    return {
        "fields": fields,
        "bombora": {"week": entry.week.isoformat() if entry.week else None, "topics": topics},
        # the data generation these known values come from, and whether a newer one is being built: the page
        # asks again when a preview reports another generation, or shortly while this one is stale
        "generation": entry.stamp.generation,
        "stale": stale,
    }


def audience_choices() -> list[dict[str, Any]]:
    from audiences.models import Audience

    rows = Audience.objects.order_by("name").values_list("id", "name", "kind", "record_count")
    return [{"id": pk, "name": name, "kind": kind, "count": count} for pk, name, kind, count in rows]


def bombora_topics(*, q: str = "", limit: int = 20) -> dict[str, Any]:
    """GET .../fields/bombora: matching topics with how many of the org's domains surge on each this week."""

    week = current_week()
    topics = search_topics(q, max(1, min(limit, 200)))
    surging: dict[int, int] = {}
    entry = cache._entries.get(_schema())
    if entry is not None and entry.bombora_ready and entry.bombora.height:  # never waits for the week's scores
        found = (
            entry.bombora.filter(
                pl.col("topic_id").is_in([t.pk for t in topics]) & (pl.col("score") >= SURGE_THRESHOLD)
            )
            .group_by("topic_id")
            .agg(pl.len())
        )
        surging = dict(zip(found.get_column("topic_id").to_list(), found.get_column("len").to_list(), strict=True))
    return {
        "week": week.isoformat() if week else None,
        "topics": [
            {
                "name": t.name,
                "field": f"bombora:{t.name}",
                "category": t.category,
                "surging_domains": surging.get(t.pk, 0) if entry is not None else None,
            }
            for t in topics
        ],
    }


def _schema() -> str:
    from django.db import connection

    return connection.schema_name  # type: ignore[attr-defined]


def audience_overlap(ids: list[int]) -> dict[str, Any]:
    """People in each exclusive region of two or three audiences (Venn), and in all of them.

    Counts are people of the universe (the preview's unit): built audiences by their materialised members.
    Raises LookupError for an id that is not an audience of this org.
    """
    import itertools

    from audiences.models import Audience

    names = dict(Audience.objects.filter(pk__in=ids).values_list("id", "name"))
    missing = [i for i in ids if i not in names]
    if missing:
        raise LookupError(f"no audience with id {missing[0]} in this organisation")
    entry, _ = cache.get()
    refs = audience_refs()
    masks = {i: _membership(entry, refs.get(i)) for i in ids}
    regions = []
    for size in range(1, len(ids) + 1):
        for subset in itertools.combinations(ids, size):
            inside = [masks[i] for i in subset]
            outside = [~masks[i] for i in ids if i not in subset]
            mask = inside[0]
            for other in [*inside[1:], *outside]:
                mask = mask & other
            regions.append({"ids": list(subset), "count": int(mask.sum())})
    everyone = masks[ids[0]]
    for i in ids[1:]:
        everyone = everyone & masks[i]
    return {
        "audiences": [{"id": i, "name": names[i], "count": int(masks[i].sum())} for i in ids],
        "regions": regions,
        "intersection": int(everyone.sum()),
    }


def built_audience_detail(audience: Any) -> dict[str, Any]:
    """A saved audience as the API shows it, with definition versions and count history."""
    payload = audience_summary(audience)
    payload["versions"] = [
        {
            "number": d.number,
            "created_by": d.created_by_email,
            "created_at": d.created_at.isoformat(),
            "note": d.note,
            "changes": d.changes,
            "tree": d.tree,
        }
        for d in audience.definitions.order_by("-number")
    ]
    payload["count_history"] = [
        {"at": c.at.isoformat(), "count": c.count, "reason": c.reason}
        for c in audience.count_history.order_by("at", "id")
    ]
    return payload


def audience_summary(audience: Any) -> dict[str, Any]:
    return {
        "id": audience.pk,
        "name": audience.name,
        "description": audience.description,
        "kind": audience.kind,
        "status": audience.status,
        "tree": audience.tree,
        "count": audience.record_count,
        "record_count": audience.record_count,
        "version": audience.definition_number if audience.kind == "built" else _imported_version(audience),
        "materialized_at": audience.materialized_at.isoformat() if audience.materialized_at else None,
        "refresh_error": audience.refresh_error,
        "created_at": audience.created_at.isoformat(),
        "updated_at": audience.updated_at.isoformat(),
    }


def _imported_version(audience: Any) -> int | None:
    version = audience.current_version
    return version.number if version is not None else None


__all__ = [
    "TreeError",
    "audience_overlap",
    "audience_preview",
    "audience_summary",
    "bombora_topics",
    "built_audience_detail",
    "field_catalogue",
    "parse_tree",
]
