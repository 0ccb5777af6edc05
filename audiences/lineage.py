"""Lineage of built audiences: which audiences a tree references (`audience in [...]`, also under NOT).

`Audience.parent_ids` keeps these ids for every built audience (maintained by `Audience.save`, GIN-indexed), so
"which audiences are derived from X" is one indexed query (`parent_ids @> ARRAY[X]`) instead of reading every
built audience's tree on each view.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def audience_ids_in(tree: Any) -> Iterator[int]:
    """Every audience id an `audience` condition of the tree names (any depth; repeats possible)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict):
            continue
        if node.get("field") == "audience" and isinstance(node.get("value"), list):
            yield from (v for v in node["value"] if isinstance(v, int) and not isinstance(v, bool))
        children = node.get("children")
        if isinstance(children, list):
            stack.extend(children)


def parent_ids(tree: Any) -> list[int]:
    """The distinct referenced ids, sorted (what `Audience.parent_ids` stores; empty for no tree)."""
    return sorted({i for i in audience_ids_in(tree) if 0 < i < 2**31})
