"""Compile a validated tree to SQL over the org's universe (materialisation of saved audiences, baselines).

The universe (`universe_sql`) is one row per person: every record of the current version of every imported
audience, deduplicated by `email_normalized` when present (the most recent version wins, then the first row),
else one person per record. `rid` identifies the representative record: `(version_id << 36) | row`.
The polars cache builds exactly the same rows (audiences/cache.py); tests hold the two to each other. The UID2
hashes are not stored: a condition on one computes it from its base column (`records.column_sql`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from audiences.logic.tree import AUDIENCE, BOMBORA, BOOLEAN, DATE, MEMBERSHIP, NUMBER, STRING_TYPES, Condition, Node
from audiences.records import DATA_COLUMNS, DERIVED, column_sql
from bombora.store import QUALIFIED, measure_sql

RID_SHIFT = 36  # rows per version < 2**36; version ids < 2**27

UNIVERSE_CTE = f"""
_cur AS (
  SELECT a.id AS audience_id, a.current_version_id AS vid FROM audiences_audience a
  WHERE a.kind = 'imported' AND a.current_version_id IS NOT NULL
),
_rec AS (
  SELECT r.*, (r.version_id << {RID_SHIFT}) | r.row AS rid FROM audiences_record r
  WHERE r.version_id IN (SELECT vid FROM _cur)
),
u AS (
  SELECT * FROM _rec WHERE email_normalized IS NULL
  UNION ALL
  (SELECT DISTINCT ON (email_normalized) * FROM _rec WHERE email_normalized IS NOT NULL
   ORDER BY email_normalized, version_id DESC, row)
)"""


@dataclass(frozen=True)
class AudienceRef:
    """An audience a tree may reference: imported ones by their current version, built ones by membership."""

    id: int
    kind: str
    version_id: int | None = None


@dataclass
class SqlContext:
    week: dt.date | None = None
    audiences: Mapping[int, AudienceRef] = field(default_factory=dict)
    # How strings are lowercased; PostgreSQL 18's pg_unicode_fast collation folds like Python and polars.
    lower: str = "lower({})"
    topics: set[int] = field(default_factory=set)  # Bombora topics the compiled tree reads (joined once each)
    measures: set[tuple[int, str]] = field(default_factory=set)  # issue 18: (topic, multi-week measure) joined


def custom_sql(alias: str, key: str, custom_type: str | None, lower: str | None = None) -> str:
    """A custom field as a typed SQL value (NULL when absent or of another JSON type). The cache loads the same."""
    safe = key.replace("'", "''")
    text = f"({alias}.custom ->> '{safe}')"
    kind = f"jsonb_typeof({alias}.custom -> '{safe}')"
    if custom_type == "integer":
        return f"(CASE WHEN {kind} = 'number' AND {text} ~ '^-?[0-9]{{1,18}}$' THEN {text}::bigint END)"
    if custom_type == "decimal":
        return f"(CASE WHEN {kind} = 'number' THEN {text}::float8 END)"
    if custom_type == "boolean":
        return f"(CASE WHEN {kind} = 'boolean' THEN {text}::boolean END)"
    if custom_type == "date":
        return f"(CASE WHEN {kind} = 'string' AND {text} ~ '^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}$' THEN {text}::date END)"
    return lower.format(text) if lower else text


def _column_sql(cond: Condition, ctx: SqlContext) -> str:
    ref = cond.field
    if ref.type == BOMBORA or ref.topic_id is not None:  # issue 18: volume (number), surge indicator (boolean)
        if ctx.week is None or ref.topic_id is None:
            return "NULL::boolean" if ref.type == BOOLEAN else "NULL::smallint"
        if ref.measure is not None:
            if ref.measure not in ("max_4w", "rise_12w", "volume", "surge"):
                raise ValueError(f"unknown Bombora measure {ref.measure!r}")
            ctx.measures.add((int(ref.topic_id), ref.measure))
            return f"bm_{ref.measure}_{int(ref.topic_id)}.v"
        ctx.topics.add(int(ref.topic_id))
        return f"bt_{int(ref.topic_id)}.score"
    if ref.column.startswith("custom."):
        return custom_sql(
            "u", ref.column.removeprefix("custom."), ref.custom_type, ctx.lower if ref.type in STRING_TYPES else None
        )
    if ref.column not in DATA_COLUMNS:  # never interpolate anything the catalogue did not produce
        raise ValueError(f"unknown column {ref.column!r}")
    if ref.type in STRING_TYPES:  # a UID2 hash is derived from its base column where it is read
        return ctx.lower.format(column_sql("u", ref.column))
    return column_sql("u", ref.column)


def _number(value: Any) -> Decimal:
    return Decimal(str(value)) if isinstance(value, float) else Decimal(int(value))


def _param(cond: Condition, value: Any) -> Any:
    if cond.field.type in (NUMBER, BOMBORA):
        return _number(value)
    return value


def _membership_sql(audience_id: int, ctx: SqlContext) -> str:
    ref = ctx.audiences.get(audience_id)
    if ref is None:
        return "false"
    if ref.kind == "built":
        return (
            f"EXISTS (SELECT 1 FROM audiences_builtmember bm WHERE bm.audience_id = {int(ref.id)} AND bm.rid = u.rid)"
        )
    if ref.kind == "imported" and ref.version_id is not None:
        vid = int(ref.version_id)
        return (
            f"(u.version_id = {vid} OR (u.email_normalized IS NOT NULL AND EXISTS (SELECT 1 FROM audiences_record r2 "
            f"WHERE r2.version_id = {vid} AND r2.email_normalized = u.email_normalized)))"
        )
    return "false"


def condition_sql(cond: Condition, ctx: SqlContext, params: list[Any]) -> str:
    ref, op, value = cond.field, cond.operator, cond.value
    if ref.type == AUDIENCE:
        hit = " OR ".join(_membership_sql(a, ctx) for a in value)
        return f"({hit})" if op == "in" else f"(NOT ({hit}))"
    if ref.type == MEMBERSHIP:  # issue 13: e.g. event segments, keys from the providing app
        from audiences.logic.membership import membership_sql

        hit = membership_sql(ref.column, tuple(value))
        return hit if op == "in" else f"(NOT {hit})"
    if op in ("is_null", "is_not_null") and ref.column in DERIVED and ref.topic_id is None:
        column = f"u.{DERIVED[ref.column]}"  # a hash is present exactly where its base is: nothing to compute
    else:
        column = _column_sql(cond, ctx)
    if op == "is_null":
        return f"({column} IS NULL)"
    if op == "is_not_null":
        return f"({column} IS NOT NULL)"
    is_float = ref.custom_type == "decimal"
    cast = "::float8" if is_float else ""
    if op in ("eq", "neq", "gt", "gte", "lt", "lte"):
        sign = {"eq": "=", "neq": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[op]
        params.append(_param(cond, value))
        expr = f"{column} {sign} %s{cast}"
    elif op in ("in", "not_in"):
        params.append([_param(cond, v) for v in value])
        array_cast = {NUMBER: "numeric[]", BOMBORA: "numeric[]", DATE: "date[]", BOOLEAN: "boolean[]"}.get(
            ref.type, "text[]"
        )
        if is_float:
            array_cast = "float8[]"
        expr = f"{column} = ANY(%s::{array_cast})" if op == "in" else f"{column} <> ALL(%s::{array_cast})"
    elif op == "between":
        params.extend([_param(cond, value[0]), _param(cond, value[1])])
        expr = f"{column} BETWEEN %s{cast} AND %s{cast}"
    elif op == "contains":
        params.append(value)
        expr = f"strpos({column}, %s) > 0"
    elif op == "starts_with":
        params.append(value)
        expr = f"starts_with({column}, %s)"
    elif op == "ends_with":
        params.extend([len(value), value])
        expr = f"right({column}, %s) = %s"
    else:
        raise ValueError(f"unknown operator {op!r}")
    return f"coalesce({expr}, false)"


def where_sql(node: Node, ctx: SqlContext, params: list[Any]) -> str:
    """The tree as a boolean SQL expression over the universe row `u` (never NULL)."""
    if isinstance(node, Condition):
        return condition_sql(node, ctx, params)
    parts = [where_sql(child, ctx, params) for child in node.children]
    if node.op == "not":
        return f"(NOT {parts[0]})"
    joiner = " AND " if node.op == "and" else " OR "
    return "(" + joiner.join(parts) + ")"


def _joins(ctx: SqlContext) -> str:
    """One LEFT JOIN per Bombora topic the tree reads: the week's score by domain (NULL when absent).

    A join rather than a scalar subquery per row: the score partition has no index to probe 10M
    times, and a hash join reads it once. `max` keeps one score per domain should a week hold duplicates
    (the cache does the same).
    """

    if ctx.week is None:
        return ""
    joins = "".join(
        f" LEFT JOIN (SELECT domain, max(score) AS score FROM {QUALIFIED} WHERE week = DATE '{ctx.week.isoformat()}' "
        f"AND topic_id = {topic} GROUP BY domain) bt_{topic} ON bt_{topic}.domain = u.domain"
        for topic in sorted(ctx.topics)
    )
    for topic, measure in sorted(ctx.measures):
        alias = f"bm_{measure}_{topic}"
        joins += f" LEFT JOIN ({measure_sql(topic, measure, ctx.week)}) {alias} ON {alias}.domain = u.domain"
    return joins


def count_sql(node: Node, ctx: SqlContext) -> tuple[str, list[Any]]:
    params: list[Any] = []
    ctx.topics = set()
    ctx.measures = set()
    where = where_sql(node, ctx, params)
    return f"WITH {UNIVERSE_CTE} SELECT count(*) FROM u{_joins(ctx)} WHERE {where}", params


def select_rids_sql(node: Node, ctx: SqlContext) -> tuple[str, list[Any]]:
    params: list[Any] = []
    ctx.topics = set()
    ctx.measures = set()
    where = where_sql(node, ctx, params)
    return f"WITH {UNIVERSE_CTE} SELECT u.rid FROM u{_joins(ctx)} WHERE {where}", params


def universe_count_sql() -> str:
    return f"WITH {UNIVERSE_CTE} SELECT count(*) FROM u"


_lower_by_database: dict[str, str] = {}


def lower_template() -> str:
    """`lower({})` with PostgreSQL 18's full Unicode case mapping when available (it folds like Python and
    polars); plain `lower` elsewhere (then only ASCII is guaranteed to fold the same in both engines)."""
    from django.db import connection

    key = f"{connection.settings_dict.get('HOST')}/{connection.settings_dict.get('NAME')}"
    if key not in _lower_by_database:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_collation WHERE collname = 'pg_unicode_fast'")
            fast = cursor.fetchone() is not None
        _lower_by_database[key] = 'lower({} COLLATE "pg_unicode_fast")' if fast else "lower({})"
    return _lower_by_database[key]
