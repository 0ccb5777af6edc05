"""Lineage of built audiences: which audiences a tree references (`audience in [...]`, also under NOT), and which
event segments it follows (`segment in [...]`, issue 13).

`Audience.parent_ids` keeps the audience ids for every built audience (maintained by `Audience.save`, GIN-indexed),
so "which audiences are derived from X" is one indexed query (`parent_ids @> ARRAY[X]`) instead of reading every
built audience's tree on each view. `Audience.segment_ids` does the same for the `segment` membership field, so
"which built audiences follow segment S" is one indexed query too (segments/audience_refresh.py asks it).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

SEGMENT_FIELD = "segment"  # the membership field segments registers (p360.core.registry.BuilderField)


def audience_ids_in(tree: Any, field: str = "audience") -> Iterator[int]:
    """Every id a `field` condition of the tree names (`audience` by default; any depth; repeats possible)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict):
            continue
        if node.get("field") == field and isinstance(node.get("value"), list):
            yield from (v for v in node["value"] if isinstance(v, int) and not isinstance(v, bool))
        children = node.get("children")
        if isinstance(children, list):
            stack.extend(children)


def parent_ids(tree: Any) -> list[int]:
    """The distinct referenced ids, sorted (what `Audience.parent_ids` stores; empty for no tree)."""
    return sorted({i for i in audience_ids_in(tree) if 0 < i < 2**31})


def segment_ids(tree: Any) -> list[int]:
    """The distinct event segment ids the tree's `segment` conditions name (`in` and `not_in`), sorted."""
    return sorted({i for i in audience_ids_in(tree, SEGMENT_FIELD) if 0 < i < 2**63})
