"""Membership fields that higher apps provide (issue 13: `segment`), resolved for the SQL and polars engines.

A membership field is registered with `p360.core.registry.register_builder_field` (audiences never imports the
providing app). A person of the universe is in `field in [ids]` when one of their representative record's
identity keys is among the keys of the current members of any of those ids:

| universe column | key the provider gives                                             |
|-----------------|--------------------------------------------------------------------|
| `email_sha256`  | UID2 hash of the normalised email (`normalize_email` + `uid2_hash`) |
| `phone_e164`    | the E.164 phone (`normalize_phone`)                                 |
| `maid`          | the lowercase hyphenated device id (`normalize_maid`)               |

Both sides use `audiences/normalize.py`, so an import and a provider agree on every key. `not_in` is the negation
(never missing). Membership changes constantly, so it is resolved at query time and never baked into the cache
frame; the polars mask is memoised per (field, ids, the provider's membership version) in the cache entry.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import polars as pl

from audiences.records import column_sql
from p360.core.registry import BuilderField, builder_field

IDENTITY_COLUMNS = ("email_sha256", "phone_e164", "maid")
MEMO_KEY = "membership_masks"
MEMO_MAX = 32


def provider(name: str) -> BuilderField:
    found = builder_field(name)
    if found is None:  # the catalogue only resolves registered fields; this is a programming error
        raise ValueError(f"no builder field provider {name!r}")
    return found


def column_name(field: str, ids: Iterable[int]) -> str:
    """The frame column holding `field in ids` (one per distinct id set in a tree)."""
    return f"{field}:" + ",".join(str(int(i)) for i in sorted(set(ids)))


def _checked(columns: Iterable[str]) -> None:
    unknown = sorted(set(columns) - set(IDENTITY_COLUMNS))
    if unknown:  # never interpolate a column the engines do not know
        raise ValueError(f"unknown identity column(s) {unknown}")


def membership_sql(field: str, ids: tuple[int, ...]) -> str:
    """`field in ids` over the universe row `u`, never NULL: one hashed semi-join per identity column."""
    subqueries = provider(field).keys_sql(tuple(int(i) for i in ids))
    _checked(subqueries)
    parts = [f"coalesce({column_sql('u', column)} IN ({sql}), false)" for column, sql in sorted(subqueries.items())]
    return "(" + " OR ".join(parts) + ")" if parts else "false"


def mask(frame: pl.DataFrame, keys: Mapping[str, Any]) -> pl.Series:
    """Rows of `frame` whose identity columns hold one of `keys` ({column: keys}); Enum columns matched by code."""
    _checked(keys)
    result = pl.repeat(False, frame.height, dtype=pl.Boolean, eager=True)
    for column, values in sorted(keys.items()):
        wanted = pl.Series(list(values), dtype=pl.String)
        if wanted.len() == 0:
            continue
        if column not in frame.columns:  # a wrong count would be worse than an error
            raise ValueError(f"the builder frame has no identity column {column!r}")
        series = frame.get_column(column)
        if isinstance(series.dtype, pl.Enum):
            # Keys are case-sensitive (a Base64 hash): match the categories themselves, not the lowered ones.
            categories = series.dtype.categories
            codes = categories.is_in(wanted.implode()).arg_true().cast(pl.UInt32)
            hit = series.to_physical().is_in(codes.implode())
        else:
            hit = series.is_in(wanted.implode())
        result = result | hit.fill_null(False)
    return result


def entry_mask(entry: Any, field: str, ids: tuple[int, ...]) -> pl.Series:
    """`field in ids` over a cache entry's frame, memoised per membership version in the entry (`entry.stats`)."""
    source = provider(field)
    key = (field, tuple(sorted(set(ids))), source.version())
    with entry.lock:
        memo = entry.stats.setdefault(MEMO_KEY, {})
        if key in memo:
            return memo[key]  # type: ignore[no-any-return]
    result = mask(entry.frame, source.keys(key[1]))
    with entry.lock:
        memo = entry.stats.setdefault(MEMO_KEY, {})
        for old in [k for k in memo if k[:2] == key[:2]]:
            del memo[old]  # an older membership version of the same ids is never asked for again
        while len(memo) >= MEMO_MAX:
            del memo[next(iter(memo))]
        memo[key] = result
    return result
