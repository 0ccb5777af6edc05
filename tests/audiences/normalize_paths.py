"""Forcing each of `normalize_batch`'s three evaluation paths, so that property tests run all of them."""

from __future__ import annotations

import pytest

import audiences.normalize_batch as normalize_batch_module

PATHS = ["per-row", "per-distinct-value", "coded"]


def force_path(monkeypatch: pytest.MonkeyPatch, path: str) -> None:
    """`per-row`: every row; `per-distinct-value`: distinct values (`unique`) joined back; `coded`: distinct values
    numbered by a categorical cast and gathered back. Thresholds opened so that tiny batches take the path."""
    assert path in PATHS
    monkeypatch.setattr(normalize_batch_module, "DISTINCT_MIN_ROWS", 1 << 62 if path == "per-row" else 0)
    monkeypatch.setattr(normalize_batch_module, "DISTINCT_SHARE", 1.0)
    # A sample always has more than a negative share of distinct values: never coded.
    monkeypatch.setattr(normalize_batch_module, "FEW_SHARE", 1.0 if path == "coded" else -1.0)


def force_split(monkeypatch: pytest.MonkeyPatch, halves: bool) -> None:
    """`halves`: even a tiny batch is normalised as two halves of rows on two threads; else in one pass."""
    monkeypatch.setattr(normalize_batch_module, "SPLIT_MIN_ROWS", 2 if halves else 1 << 62)
