"""Metrics, summaries and attribution (built by the reporting issues)."""
