"""Ingestion runs and quarantined rows (built by the ingestion issues)."""
