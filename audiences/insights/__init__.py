"""Audience insights (issue 18, story 5.3): composition, quality, freshness, similarity, usage and BI exports.

Every figure is computed from the builder's per-org polars cache (audiences/cache.py): exact counts over the
whole universe, never a sample. `selectors.py` is the one entry point pages, the API and exports call.
"""
