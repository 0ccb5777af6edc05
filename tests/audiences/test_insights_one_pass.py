"""Issue 18 at 10M people: the analytics page's one pass over the cache (`composition.summary`: dictionary codes,
one mask, labels of the shown values only) gives exactly the figures of the per-chart frames it replaced, for the
whole universe and a part of it, with ties between counts broken by value, and reuses its counts in the quality
score."""

from __future__ import annotations

import random
from typing import Any

import polars as pl
import pytest
from django_tenants.utils import schema_context

from audiences import cache
from audiences.insights import composition as comp
from audiences.insights import quality
from tests.audiences.builder_helpers import fresh_cache, load_bombora, make_imported  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_cache")]


def _rows(n: int) -> list[dict[str, Any]]:
    rng = random.Random(7)
    return [
        {
            "email_normalized": f"p{i}@x.com" if i % 4 else None,
            "domain": rng.choice([*(f"d{k}.com" for k in range(60)), "bad domain", None]),
            "industry": rng.choice(["Software", "Retail", "Finance", None]),
            "country": rng.choice(["US", "GB", "usa", None]),
            "job_title": rng.choice([f"T{k}" for k in range(40)] + [None]),  # many ties at the cut (25 shown)
            "revenue": rng.choice([None, -3, 0, 999_999, 1_000_000, 5_000_000_000]),
            "employee_count": rng.choice([None, 0, 10, 11, 10_001]),
            "company_name": rng.choice(["Acme", None]),
        }
        for i in range(n)
    ]


@pytest.mark.parametrize("sorted_categories", [True, False])
def test_one_pass_equals_the_per_chart_frames(acme: Any, monkeypatch: Any, sorted_categories: bool) -> None:
    if not sorted_categories:  # the fallback when the cache's category order is not the value order
        monkeypatch.setattr(comp, "_categories_sorted", lambda entry, column: False)
    with schema_context("org_acme"):
        make_imported("One pass", _rows(1500))
        load_bombora([(f"d{k}.com", t, (k * 7) % 101) for k in range(60) for t in ("Cloud", "Payroll")])
        entry, _ = cache.get(wait=True)
        everyone = pl.repeat(True, entry.height, eager=True)
        part = pl.int_range(0, entry.height, eager=True) % 3 == 0
        ctx = quality.Context(data_changed_at=None, stale_days=30)
        for mask in (everyone, part):
            shown, meta, counted = comp.summary(entry, mask)
            frames = comp.composition_frames(entry, mask)
            assert shown == comp.capped(frames)
            assert meta == comp.meta(frames)
            assert counted.size == int(mask.sum())
            assert quality.score(entry, mask, ctx, counted) == quality.score(entry, mask, ctx)
            assert shown[comp.SURGE_FIELD], "the Bombora chart has topics"
